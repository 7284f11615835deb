#!/usr/bin/env bash
# Tests the running API against openapi.yaml with schemathesis: a real daemon (the
# shipped config's demo province plus a push source that seeds known cases), the
# bearer token configured, every operation exercised with generated and example
# requests, every response checked against the description.
#
# Usage: tests/api/schemathesis.sh PATH/TO/slawatch   (schemathesis on PATH)
set -euo pipefail
bin=$(realpath "$1")
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT

sed -e "s#^file = \"procedures.toml\"#file = \"$root/config/procedures.toml\"#" \
    -e "s#^file = \"units.toml\"#file = \"$root/config/units.toml\"#" \
    -e "s#^official_days = \"calendar/vn-official-days.csv\"#official_days = \"$root/config/calendar/vn-official-days.csv\"#" \
    -e "s#^listen = \"127.0.0.1:9464\"#listen = \"127.0.0.1:$port\"#" \
    -e "s#^url = \"sqlite://data/slawatch.db\"#url = \"sqlite://$dir/slawatch.db\"#" \
    "$root/config/slawatch.toml" > "$dir/slawatch.toml"
cat >> "$dir/slawatch.toml" <<TOML

[[source]]
name = "seed"
type = "push"
token_env = "SEED_TOKEN"
TOML

export SLAWATCH_API_TOKEN=api-secret SEED_TOKEN=seed-secret SLAWATCH_LOG=warn
(cd "$dir" && exec "$bin" --config slawatch.toml run) > "$dir/daemon.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null

# The cases the description's examples name: overdue since March 2024, and one
# finished late.
curl -fsS -X POST "http://127.0.0.1:$port/api/v1/ingest/dvcqg" \
  -H "Authorization: Bearer $SEED_TOKEN" -H 'content-type: application/json' -d '[
  {"MaHoSo":"API-SEED-OVERDUE","MaTTHC":"1.004227","TenTTHC":"Cấp giấy phép xây dựng","DonViXuLy":"Sở Tư pháp",
   "TrangThaiHoSo":"4","NgayTiepNhan":"20240301080000","NgayHenTra":"20240308170000","NgayKetThucXuLy":"","NgayTra":"",
   "DanhSachHoSoBoSung":[{"NgayBoSung":"20240304090000","NgayTiepNhanBoSung":"20240305090000"}],
   "QuaTrinhXuLy":[{"NoiDungXuLy":"Thẩm định","PhongBanXuLy":"Sở Tư pháp","NgayBatDau":"20240301090000","NgayKetThucTheoQuyDinh":"20240306170000"}]},
  {"MaHoSo":"API-SEED-LATE","MaTTHC":"1.004227","DonViXuLy":"Sở Tư pháp","TrangThaiHoSo":"10",
   "NgayTiepNhan":"20240301080000","NgayHenTra":"20240308170000","NgayKetThucXuLy":"20240312100000","NgayTra":"20240312100000"}
]' >/dev/null
# Wait until the seeded case is visible, so the checks reach real responses.
for _ in $(seq 1 50); do
  curl -fsS -H "Authorization: Bearer $SLAWATCH_API_TOKEN" \
    "http://127.0.0.1:$port/api/v1/cases/API-SEED-OVERDUE" >/dev/null 2>&1 && break
  sleep 0.2
done
test "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/api/v1/cases")" = 401

st run "$root/openapi.yaml" \
  --url "http://127.0.0.1:$port" \
  -H "Authorization: Bearer $SLAWATCH_API_TOKEN" \
  --checks all \
  --max-examples 60 \
  --workers 2 \
  --suppress-health-check all \
  --no-color
