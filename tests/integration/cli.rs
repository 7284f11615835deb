//! The `slawatch` binary as a user runs it. Expected dues are worked by hand in the
//! comments (built-in hours 07:30–11:30, 13:30–17:30 unless the shipped Hà Tĩnh
//! profile is named).

use crate::scratch;
use std::path::Path;
use std::process::Output;

fn slawatch(dir: &Path, args: &[&str]) -> Output {
    crate::slawatch()
        .args(args)
        .current_dir(dir)
        .env_remove("SLAWATCH_LOG")
        .output()
        .expect("the binary runs")
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn deadline_json_from_the_shipped_config() {
    // Hà Tĩnh summer hours: Fri 15/09/2023 14:30 is inside 14:00–17:30; 15 workdays →
    // Fri 06/10/2023 14:30.
    let o = slawatch(
        repo(),
        &[
            "deadline",
            "--received",
            "2023-09-15 14:30",
            "--duration",
            "15 workdays",
            "--format",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["start"], "2023-09-15T14:30:00+07:00");
    assert_eq!(v["due"], "2023-10-06T14:30:00+07:00");
    assert!(v["calendar_version"]
        .as_str()
        .unwrap()
        .starts_with("vn-official@"));
    let trace: Vec<&str> = v["trace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(trace[0], "tiếp nhận 15/09/2023 14:30");
    assert!(trace
        .last()
        .unwrap()
        .starts_with("hạn 06/10/2023 14:30 (lịch vn-official@"));
}

#[test]
fn deadline_without_a_config_uses_built_in_defaults() {
    // No config/ here: built-in hours. Tue 30/01/2024 17:40 → Wed 31/01 07:30; Tết
    // 08–14/02 → 28/02 07:30.
    let dir = scratch("no-config");
    let o = slawatch(
        &dir,
        &[
            "deadline",
            "--received",
            "2024-01-30 17:40",
            "--duration",
            "15 workdays",
            "--lang",
            "en",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("start:    2024-01-31T07:30:00+07:00"), "{out}");
    assert!(out.contains("due:      2024-02-28T07:30:00+07:00"), "{out}");
    assert!(out.contains("days off: Tết 08–14/02"), "{out}");
}

#[test]
fn a_due_across_tet_2027_uses_the_announced_days_off() {
    // Mon 21/12/2026 08:00, 40 workdays, counted by hand from Tue 22/12: 8 in December
    // (31/12 included), 1/1 off, 20 from 4 to 29/01, 3 on 1–3/02, Tết 4–10/02 off, 2 on
    // 11–12/02, 5 on 15–19/02, then Mon 22 (39) and Tue 23/02 (40): 23/02/2027 08:00.
    let dir = scratch("tet-2027");
    let o = slawatch(
        &dir,
        &[
            "deadline",
            "--received",
            "21/12/2026 08:00",
            "--duration",
            "40 workdays",
            "--lang",
            "en",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("due:      2027-02-23T08:00:00+07:00"), "{out}");
    assert!(out.contains("days off: Tết 04–10/02/2027"), "{out}");
    assert!(!out.contains("estimate"), "2027 is announced: {out}");
    let json = |dir: &std::path::Path, received: &str, duration: &str| {
        let o = slawatch(
            dir,
            &[
                "deadline",
                "--received",
                received,
                "--duration",
                duration,
                "--format",
                "json",
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap()
    };
    let v = json(&dir, "21/12/2026 08:00", "40 workdays");
    assert_eq!(v["calendar_estimated"], false);

    // The same case with the 2027 rows taken out of the official file: the generated
    // 2027 has the same Tết (Thu 4–Wed 10/02: lunar 1/1 is Saturday 06/02, taken on
    // Thursday 4; Sunday 7 taken on Wednesday 10), so the same due, now estimated.
    let without = scratch("tet-2027-generated");
    std::fs::create_dir_all(without.join("config/calendar")).unwrap();
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config/calendar/vn-official-days.csv"),
    )
    .unwrap();
    let kept: String = shipped
        .lines()
        .filter(|l| !l.starts_with("2027-"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(without.join("config/calendar/days.csv"), kept).unwrap();
    std::fs::write(
        without.join("config/slawatch.toml"),
        "[calendar]\nofficial_days = \"calendar/days.csv\"\n",
    )
    .unwrap();
    let v = json(&without, "21/12/2026 08:00", "40 workdays");
    assert_eq!(v["due"], "2027-02-23T08:00:00+07:00");
    assert_eq!(v["calendar_estimated"], true);
    let trace: Vec<&str> = v["trace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        trace.contains(&"lịch năm 2027 là ước tính, chưa có công bố chính thức"),
        "{trace:?}"
    );

    // 15 workdays from Mon 06/03/2028 08:00 (no official 2028): 7–10 = 4, 13–17 = 9,
    // 20–24 = 14, Mon 27 = 15 → 27/03/2028 08:00, estimated.
    let v = json(&dir, "06/03/2028 08:00", "15 workdays");
    assert_eq!(v["due"], "2028-03-27T08:00:00+07:00");
    assert_eq!(v["calendar_estimated"], true);
    assert!(v["trace"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l == "lịch năm 2028 là ước tính, chưa có công bố chính thức"));
}

#[test]
fn deadline_flags_hours_cutoff_and_operator_calendar() {
    let dir = scratch("flags");
    // --hours with a shorter afternoon: Mon 18/09/2023 16:30 is after 16:00 → Tue 07:30;
    // 4 workhours → 11:30 (lands on the close and stays).
    let o = slawatch(
        &dir,
        &[
            "deadline",
            "--received",
            "2023-09-18 16:30",
            "--duration",
            "4 workhours",
            "--hours",
            "07:30-11:30,13:30-16:00",
            "--format",
            "json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["due"], "2023-09-19T11:30:00+07:00");
    // A season on top: 01/06 uses 07:00–11:30,14:00–17:30, so 13:45 snaps to 14:00.
    let o = slawatch(
        &dir,
        &[
            "deadline",
            "--received",
            "2024-06-03 13:45",
            "--duration",
            "0 workdays",
            "--hours",
            "07:30-11:30,13:30-17:30",
            "--hours",
            "04-16..10-15=07:00-11:30,14:00-17:30",
            "--format",
            "json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["start"], "2024-06-03T14:00:00+07:00");
    assert_eq!(v["due"], "2024-06-03T17:30:00+07:00");
    // The 15:00 cut-off: Mon 15:10 counts from Tue 07:30; 1 workday → Wed 07:30.
    let o = slawatch(
        &dir,
        &[
            "deadline",
            "--received",
            "2023-09-18 15:10",
            "--duration",
            "1 workdays",
            "--cutoff",
            "15:00",
            "--format",
            "json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["due"], "2023-09-20T07:30:00+07:00");
    // An operator file declaring Tue 19/09/2023 a provincial day off: → Thu 21/09 07:30.
    std::fs::write(
        dir.join("ops.csv"),
        "date,kind,name\n2023-09-19,holiday,ngày nghỉ của tỉnh\n",
    )
    .unwrap();
    let o = slawatch(
        &dir,
        &[
            "deadline",
            "--received",
            "2023-09-18 15:10",
            "--duration",
            "1 workdays",
            "--cutoff",
            "15:00",
            "--calendar",
            "ops.csv",
            "--format",
            "json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["start"], "2023-09-20T07:30:00+07:00");
    assert_eq!(v["due"], "2023-09-21T07:30:00+07:00");
}

#[test]
fn deadline_rejects_bad_flags_with_one_clear_line() {
    let dir = scratch("bad-flags");
    let o = slawatch(
        &dir,
        &[
            "deadline",
            "--received",
            "2023-13-45 10:00",
            "--duration",
            "15 workdays",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.starts_with("error: --received: `2023-13-45 10:00` is not a date-time"),
        "{e}"
    );
    let o = slawatch(
        &dir,
        &[
            "deadline",
            "--received",
            "2023-09-15 10:00",
            "--duration",
            "15 weeks",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--duration: `15 weeks` is not a duration: unknown unit"));
    let o = slawatch(
        &dir,
        &[
            "deadline",
            "--received",
            "2023-09-15 10:00",
            "--duration",
            "1 workdays",
            "--hours",
            "17:00-08:00",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--hours `17:00-08:00`"));
}

#[test]
fn batch_reports_bad_rows_and_keeps_going() {
    let dir = scratch("batch");
    std::fs::write(
        dir.join("cases.csv"),
        "id,received_at,duration\n\
         A,2023-09-15 14:30,15 workdays\n\
         B,not a date,15 workdays\n\
         C,20240130174000,15 workdays\n\
         D,2024-04-26 09:00,3 weeks\n\
         \"E, quoted\",26/04/2024 09:00,3 workdays\n\
         F,2024-01-31T08:00:00+07:00,1 months\n\
         G,2024-04-26 09:00\n",
    )
    .unwrap();
    let o = slawatch(
        &dir,
        &["deadline", "--input", "cases.csv", "--output", "due.csv"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("cases.csv:3: received_at: `not a date`"),
        "{err}"
    );
    assert!(err.contains("cases.csv:5: duration:"), "{err}");
    assert!(err.contains("cases.csv:8: expected 3 fields"), "{err}");
    assert!(
        err.contains("4 row(s) computed, 3 failed (calendar vn-official@"),
        "{err}"
    );
    let out = std::fs::read_to_string(dir.join("due.csv")).unwrap();
    // A: built-in hours, 06/10 14:30. C: Tết 2024 → 28/02 07:30. E: make-up Saturday
    // 04/05. F: 31/01 + 1 month → Thu 29/02 23:59:59.
    assert_eq!(
        out,
        "id,start,due\n\
         A,2023-09-15T14:30:00+07:00,2023-10-06T14:30:00+07:00\n\
         C,2024-01-31T07:30:00+07:00,2024-02-28T07:30:00+07:00\n\
         \"E, quoted\",2024-04-26T09:00:00+07:00,2024-05-04T09:00:00+07:00\n\
         F,2024-01-31T08:00:00+07:00,2024-02-29T23:59:59+07:00\n"
    );
}

#[test]
fn calendar_show_csv_and_table() {
    let dir = scratch("show");
    let o = slawatch(&dir, &["calendar", "show", "2025", "--format", "csv"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "date,kind,name,origin");
    assert!(lines.contains(&"2025-04-26,workday,làm bù cho ngày 02/05/2025,official"));
    assert!(lines.contains(
        &"2025-05-02,holiday,hoán đổi ngày làm việc (làm bù thứ Bảy 26/04/2025),official"
    ));
    assert_eq!(*lines.last().unwrap(), "# 250 workdays in 2025 (official)");
    // 2028, estimated: Tết Wed 26/01/2028 → eve Tue 25 … Sat 29 → back to Mon 24.
    let o = slawatch(&dir, &["calendar", "show", "2028"]);
    let out = stdout(&o);
    assert!(out.contains("2028 (estimated)"), "{out}");
    assert!(
        out.contains("2028-01-24  Mon  holiday  generated  Tết Nguyên đán (nghỉ bù)"),
        "{out}"
    );
    let o = slawatch(&dir, &["calendar", "show", "2200"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn check_config_accepts_the_shipped_config_and_names_faults() {
    let o = slawatch(repo(), &["check-config"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("procedures: 58"));
    assert!(
        stderr(&o).contains("unconfirmed"),
        "unconfirmed rows are warned about"
    );

    let dir = scratch("check");
    std::fs::create_dir_all(dir.join("config")).unwrap();
    std::fs::write(
        dir.join("config/slawatch.toml"),
        "[calendar]\nname = \"x\"\n\n[calendar.office_hours]\ndefault = \"07:30-11:30,13:30-17:30\"\n\n[sla]\nstuck_after = \"3 fortnights\"\n",
    )
    .unwrap();
    let o = slawatch(&dir, &["check-config"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.starts_with(
            "error: config/slawatch.toml:8: sla.stuck_after: `3 fortnights` is not a duration"
        ),
        "{e}"
    );

    std::fs::write(
        dir.join("config/slawatch.toml"),
        "[catalogue]\nfile = \"procedures.toml\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("config/procedures.toml"),
        "[[procedure]]\ncode = \"1.1\"\nduration = \"15 workdays\"\nname = 3\n",
    )
    .unwrap();
    let e = stderr(&slawatch(&dir, &["check-config"]));
    assert!(e.contains("config/procedures.toml:4:"), "{e}");

    std::fs::write(
        dir.join("config/slawatch.toml"),
        "[calendar]\noperator_days = [\"ops.csv\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("config/ops.csv"),
        "date,kind,name\n2027-01-01,holiday,x\n2027-02-30,holiday,y\n",
    )
    .unwrap();
    let e = stderr(&slawatch(&dir, &["check-config"]));
    assert!(
        e.contains("config/ops.csv:3: `date`: `2027-02-30` is not a date"),
        "{e}"
    );
    // A template override with an undefined variable fails check-config, by name.
    std::fs::write(
        dir.join("config/slawatch.toml"),
        "[alerts]\ntemplates_dir = \"tpl\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("config/tpl")).unwrap();
    std::fs::write(
        dir.join("config/tpl/alert.en.subject"),
        "{{ cases[0].no_such_field }}",
    )
    .unwrap();
    let o = slawatch(&dir, &["check-config"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("error: template alert.en.subject:"), "{e}");
    std::fs::write(
        dir.join("config/tpl/alert.en.subject"),
        "[{{ cases|length }}] {{ headline }}",
    )
    .unwrap();
    let o = slawatch(&dir, &["check-config"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("templates: 24 rendered"));
    // A copy address that is not one is caught before any e-mail is built.
    std::fs::write(
        dir.join("config/slawatch.toml"),
        "[alerts.copies]\nescalated = [\"thanhtra@ubnd.example.gov.vn\", \"thanh tra\"]\n",
    )
    .unwrap();
    let e = stderr(&slawatch(&dir, &["check-config"]));
    assert!(
        e.contains("alerts.copies.escalated: `thanh tra` is not an e-mail address"),
        "{e}"
    );
}

#[test]
fn notify_test_sends_through_the_configured_transport() {
    let dir = scratch("notify-test");
    std::fs::create_dir_all(dir.join("config")).unwrap();
    std::fs::write(
        dir.join("config/slawatch.toml"),
        "[alerts]\ntransport = \"file\"\nfile_dir = \"mail\"\nfrom = \"slawatch <slawatch@pvhcc.example.gov.vn>\"\n",
    )
    .unwrap();
    let o = slawatch(&dir, &["notify", "test", "--to", "it@example.gov.vn"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("sent a test message to it@example.gov.vn through file"));
    let files: Vec<_> = std::fs::read_dir(dir.join("mail"))
        .unwrap()
        .filter_map(Result::ok)
        .collect();
    assert_eq!(files.len(), 1);
    let raw = std::fs::read(files[0].path()).unwrap();
    let m = mail_parser::MessageParser::default().parse(&raw).unwrap();
    assert!(m
        .subject()
        .unwrap()
        .starts_with("[slawatch thử] Sở Tư pháp: 1 hồ sơ quá hạn mới"));
    // A bad transport is a clear error.
    std::fs::write(
        dir.join("config/slawatch.toml"),
        "[alerts]\ntransport = \"pigeon\"\n",
    )
    .unwrap();
    let o = slawatch(&dir, &["notify", "test", "--to", "it@example.gov.vn"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("alerts.transport must be file, smtp, webhook or none, not `pigeon`")
    );
}

/// `units import` and `procedures import` from the CSV and XLSX sheets a province
/// keeps (Vietnamese headers, `;` or `,`, a list cell with `;`) give the hand-written
/// expected TOML, which the loader accepts.
#[test]
fn imports_from_csv_and_xlsx_match_the_hand_written_toml() {
    let dir = scratch("cli-import");
    let fx = repo().join("tests/fixtures/import");
    for (verb, name) in [("units", "units"), ("procedures", "procedures")] {
        let expected = std::fs::read_to_string(fx.join(format!("{name}.expected.toml"))).unwrap();
        for ext in ["csv", "xlsx"] {
            let input = fx.join(format!("{name}.{ext}"));
            let o = slawatch(
                &dir,
                &[verb, "import", input.to_str().unwrap(), "--output", "-"],
            );
            assert!(o.status.success(), "{verb} {ext}: {}", stderr(&o));
            assert_eq!(stdout(&o), expected, "{verb} from {ext}");
        }
        // Written to a file: refused over an existing one without --force.
        let out = dir.join(format!("{name}.toml"));
        let input = fx.join(format!("{name}.csv"));
        let args = |force: bool| {
            let mut a = vec![
                verb,
                "import",
                input.to_str().unwrap(),
                "--output",
                out.to_str().unwrap(),
            ];
            if force {
                a.push("--force");
            }
            a.into_iter().map(str::to_string).collect::<Vec<_>>()
        };
        let run =
            |a: Vec<String>| slawatch(&dir, &a.iter().map(String::as_str).collect::<Vec<_>>());
        let o = run(args(false));
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stderr(&o).contains("5 "), "{}", stderr(&o));
        assert_eq!(std::fs::read_to_string(&out).unwrap(), expected);
        let o = run(args(false));
        assert!(!o.status.success());
        assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
        assert!(run(args(true)).status.success());
    }
    // The imported files load as the daemon's directory and catalogue.
    std::fs::write(
        dir.join("slawatch.toml"),
        "[directory]\nfile = \"units.toml\"\n[catalogue]\nfile = \"procedures.toml\"\n",
    )
    .unwrap();
    let o = slawatch(&dir, &["--config", "slawatch.toml", "check-config"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("procedures: 5"), "{}", stdout(&o));
}

/// Bad rows are refused with file:line:column and the header, all of them at once,
/// and nothing is written.
#[test]
fn imports_refuse_bad_rows_with_their_line_and_column() {
    let dir = scratch("cli-import-bad");
    let fx = repo().join("tests/fixtures/import");
    let out = dir.join("units.toml");
    let bad = fx.join("units.bad.csv");
    let o = slawatch(
        &dir,
        &[
            "units",
            "import",
            bad.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    let f = bad.display().to_string();
    for line in [
        format!("{f}:3:2 (name): is empty; it is required"),
        format!("{f}:4:3 (parent): `ZZZ` is not the code of a unit in this file"),
        format!("{f}:4:4 (level): `one` is not a level 0–9"),
        format!("{f}:4:5 (head_email): `not-an-address` is not an e-mail address"),
        format!("{f}:4:6 (tags): `centre` is not a tag: one of service_centre, provincial_office, province, home_affairs"),
        format!("{f}:5:1 (code): unit `A` is listed twice (first on line 2)"),
    ] {
        assert!(e.contains(&line), "missing `{line}` in:\n{e}");
    }
    assert!(e.contains("6 faults; nothing written"), "{e}");
    assert!(!out.exists());

    let bad = fx.join("procedures.bad.csv");
    let o = slawatch(
        &dir,
        &[
            "procedures",
            "import",
            bad.to_str().unwrap(),
            "--output",
            "-",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains(&format!("{}:1:4: unknown column `Cột lạ`", bad.display())),
        "{e}"
    );
    // An XLSX whose code column holds numbers: the cell is named by its letter.
    let num = fx.join("procedures.numeric.xlsx");
    let o = slawatch(
        &dir,
        &[
            "procedures",
            "import",
            num.to_str().unwrap(),
            "--output",
            "-",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains(&format!(
            "{}:2:A (Mã thủ tục): is a number in the sheet",
            num.display()
        )),
        "{e}"
    );
}

/// `check-config` in a folder holding `config/slawatch.toml` = `toml` (and
/// `config/units.toml` = `units` when given), with `env` set: it must fail, and its
/// errors must contain `want`.
fn refused(name: &str, toml: &str, units: Option<&str>, env: &[(&str, &str)], want: &str) {
    let dir = scratch(&format!("check-config-{name}"));
    std::fs::create_dir_all(dir.join("config")).unwrap();
    std::fs::write(dir.join("config/slawatch.toml"), toml).unwrap();
    if let Some(u) = units {
        std::fs::write(dir.join("config/units.toml"), u).unwrap();
    }
    let mut cmd = crate::slawatch();
    cmd.arg("check-config")
        .current_dir(&dir)
        .env_remove("SLAWATCH_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().expect("the binary runs");
    assert!(!o.status.success(), "{name}: accepted\n{}", stdout(&o));
    let e = stderr(&o);
    assert!(e.contains(want), "{name}: want {want:?} in\n{e}");
}

const UNITS_BAD_HEAD: &str = "[[unit]]\ncode = \"TTPVHCC\"\nname = \"Trung tâm Phục vụ hành chính công\"\n\
head = { name = \"Giám đốc Trung tâm\", email = \"giamdoc@pvhcc.example.gov.vn\" }\ntags = [\"service_centre\"]\n\n\
[[unit]]\ncode = \"STP\"\nname = \"Sở Tư pháp\"\nhead = { name = \"Giám đốc Sở Tư pháp\", email = \"giamdoc.stp.example.gov.vn\" }\n";

#[test]
fn check_config_refuses_a_five_field_cron() {
    refused(
        "cron5",
        "[alerts]\ndigest_schedule = \"30 7 * * *\"\n",
        None,
        &[],
        "error: config/slawatch.toml:2: alerts.digest_schedule: `30 7 * * *`: ",
    );
}

#[test]
fn check_config_refuses_hour_25() {
    refused(
        "hour25",
        "[daemon]\nevaluate_schedule = \"0 0 25 * * *\"\n",
        None,
        &[],
        "error: config/slawatch.toml:2: daemon.evaluate_schedule: `0 0 25 * * *`: ",
    );
}

#[test]
fn check_config_refuses_an_unknown_transport() {
    refused(
        "smpt",
        "[alerts]\nfrom = \"slawatch <canhbao@tinh.example.gov.vn>\"\ntransport = \"smpt\"\n",
        None,
        &[],
        "error: config/slawatch.toml:3: alerts.transport: `smpt` is not one of file, smtp, webhook, none",
    );
}

#[test]
fn check_config_refuses_port_99999() {
    refused(
        "port",
        "[alerts]\ntransport = \"smtp\"\nsmtp_port = 99999\n",
        None,
        &[],
        "error: config/slawatch.toml:3: alerts.smtp_port: invalid value: integer `99999`, expected u16",
    );
}

#[test]
fn check_config_names_the_variable_of_a_bad_override() {
    refused(
        "env-port",
        "[alerts]\ntransport = \"smtp\"\n",
        None,
        &[("SLAWATCH__ALERTS__SMTP_PORT", "99999")],
        "error: environment SLAWATCH__ALERTS__SMTP_PORT: alerts.smtp_port: invalid value",
    );
}

#[test]
fn check_config_refuses_a_head_e_mail_without_at() {
    refused(
        "head-email",
        "[directory]\nfile = \"units.toml\"\n",
        Some(UNITS_BAD_HEAD),
        &[],
        "error: config/units.toml:10: unit `STP`.head.email: `giamdoc.stp.example.gov.vn` is not an e-mail address",
    );
}

#[test]
fn check_config_refuses_an_unknown_link_placeholder() {
    refused(
        "link",
        "[alerts]\nlink_template = \"https://motcua.example.gov.vn/hoso/{caseid}\"\n",
        None,
        &[],
        "error: config/slawatch.toml:2: alerts.link_template: unknown placeholder {caseid} (known: {case_id}, {source})",
    );
}

#[test]
fn check_config_refuses_a_listen_address_without_a_port() {
    refused(
        "listen",
        "[http]\nlisten = \"localhost\"\n",
        None,
        &[],
        "error: config/slawatch.toml:2: http.listen: `localhost` is not an address and port",
    );
}

#[test]
fn check_config_refuses_a_source_secret_unset_in_the_environment() {
    refused(
        "secret",
        "[[source]]\nname = \"vendor\"\ntype = \"push\"\ntoken_env = \"SLAWATCH_TEST_PUSH_TOKEN_UNSET\"\n",
        None,
        &[],
        "error: config/slawatch.toml:4: source `vendor`.token_env: the environment variable `SLAWATCH_TEST_PUSH_TOKEN_UNSET` is not set",
    );
}

#[test]
fn check_config_refuses_an_smtp_user_without_a_password() {
    refused(
        "smtp-credentials",
        "[alerts]\ntransport = \"smtp\"\nsmtp_username_env = \"SLAWATCH_TEST_SMTP_U\"\nsmtp_password_env = \"SLAWATCH_TEST_SMTP_P_UNSET\"\n",
        None,
        &[("SLAWATCH_TEST_SMTP_U", "canhbao")],
        "error: config/slawatch.toml:4: alerts.smtp_password_env: the environment variable `SLAWATCH_TEST_SMTP_P_UNSET` is not set",
    );
}

#[test]
fn check_config_refuses_a_sender_that_is_not_an_address() {
    refused(
        "from",
        "[alerts]\nfrom = \"slawatch\"\n",
        None,
        &[],
        "error: config/slawatch.toml:2: alerts.from: `slawatch` is not an address",
    );
}

/// Units without a head are a warning naming them (their mail goes to the service
/// centre), and the summary names sources, store, transport, units and recipients.
#[test]
fn check_config_warns_of_headless_units_and_sums_up() {
    let o = slawatch(repo(), &["check-config"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("warning: config/units.toml: head.email: 2 unit(s) without a head e-mail: SKHCN, XNX; their mail goes to the service centre (giamdoc@pvhcc.example.gov.vn)"),
        "{e}"
    );
    let out = stdout(&o);
    for line in [
        "sources: 1 — demo (demo)\n",
        "store: sqlite://data/slawatch.db (a relative SQLite path is from the working directory)\n",
        "transport: file → data/outbox (relative to the working directory), from slawatch <slawatch@localhost>\n",
        "units: 21, recipients: 21\n",
    ] {
        assert!(out.contains(line), "{line:?} in\n{out}");
    }
}

#[test]
fn check_config_refuses_a_source_the_daemon_cannot_build() {
    refused(
        "source-url",
        "[[source]]\nname = \"portal\"\ntype = \"http\"\nurl = \"ftp://motcua.example.gov.vn/hoso\"\n",
        None,
        &[],
        "error: config/slawatch.toml:3: source `portal`: url `ftp://motcua.example.gov.vn/hoso` is not http(s)",
    );
}

#[test]
fn check_config_refuses_a_public_url_that_is_not_one() {
    refused(
        "public-url",
        "[http]\npublic_url = \"slawatch.tinh.example.gov.vn\"\n",
        None,
        &[],
        "error: config/slawatch.toml:2: http.public_url: `slawatch.tinh.example.gov.vn` is not an http(s) address",
    );
}
