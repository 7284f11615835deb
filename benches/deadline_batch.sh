#!/usr/bin/env bash
# Load harness for `slawatch deadline --input` (issue target: 1,000,000 rows in ≤ 1 s
# for the whole process, release build).
#
# Rows: instants uniform over 2020–2030 including outside office hours, durations
# uniform in 1–60 workdays, the shipped Hà Tĩnh profile. The input is generated once
# with a fixed seed; the run is timed with hyperfine when installed, else with `time`.
#
#   bash benches/deadline_batch.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
work=target/bench-batch
mkdir -p "$work"
input="$work/cases-$rows.csv"
if [ ! -s "$input" ]; then
  python3 - "$rows" "$input" <<'PY'
import random, sys, datetime as dt
rows, path = int(sys.argv[1]), sys.argv[2]
rng = random.Random(20261125)
start = dt.datetime(2020, 1, 1)
span = int((dt.datetime(2030, 12, 31) - start).total_seconds())
with open(path, "w") as f:
    f.write("id,received_at,duration\n")
    for i in range(rows):
        t = start + dt.timedelta(seconds=rng.randrange(span))
        f.write(f"000.00.12.H22-{i:07d},{t:%Y-%m-%d %H:%M:%S},{rng.randint(1, 60)} workdays\n")
PY
fi
cargo build --release --quiet
bin=target/release/slawatch
if command -v hyperfine >/dev/null; then
  hyperfine --warmup 1 --runs 5 "$bin deadline --input $input --output $work/due.csv"
else
  time "$bin" deadline --input "$input" --output "$work/due.csv"
fi
wc -l "$work/due.csv"
