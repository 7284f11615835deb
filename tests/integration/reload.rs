//! Reloading the directory and catalogue without a restart, and quarantine retry after
//! a mapping fix — through the real daemon and CLI processes.

use crate::scratch;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn count(dir: &Path, sql: &str) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let Ok(mut c) = sqlx::SqliteConnection::connect(&format!(
            "sqlite://{}/slawatch.db?mode=ro",
            dir.display()
        ))
        .await
        else {
            return -1;
        };
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&mut c)
            .await
            .unwrap_or(-1)
    })
}

fn wait_for(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn a_new_unit_alias_is_picked_up_without_a_restart_and_a_bad_file_is_refused() {
    let dir = scratch("reload");
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(
        dir.join("units.toml"),
        "[[unit]]\ncode = \"STP\"\nname = \"Sở Tư pháp\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("slawatch.toml"),
        format!(
            "[directory]\nfile = \"units.toml\"\n[store]\nurl = \"sqlite://{d}/slawatch.db\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [[source]]\nname = \"inbox\"\ntype = \"file\"\ndir = \"{d}/inbox\"\nschedule = \"*/1 * * * * *\"\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let mut child = crate::slawatch()
        .args(["--config", "slawatch.toml", "run"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rec = |id: &str| {
        format!("{{\"MaHoSo\":\"{id}\",\"TrangThaiHoSo\":\"4\",\"NgayTiepNhan\":\"20240102080000\",\"NgayHenTra\":\"20240110170000\",\"DonViXuLy\":\"UBND phường Mới\"}}\n")
    };
    std::fs::write(inbox.join("a.ndjson"), rec("R-1")).unwrap();
    wait_for(Duration::from_secs(30), "R-1", || {
        count(&dir, "SELECT COUNT(*) FROM cases") == 1
    });
    assert_eq!(
        count(&dir, "SELECT COUNT(*) FROM cases WHERE unit_code IS NULL"),
        1
    );

    // A broken directory is refused: the daemon keeps the old one and goes on.
    std::fs::write(
        dir.join("units.toml"),
        "[[unit]]\ncode = \"STP\"\nname = \n",
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(6));
    // The fixed directory names the new ward: picked up on change, no restart.
    std::fs::write(
        dir.join("units.toml"),
        "[[unit]]\ncode = \"STP\"\nname = \"Sở Tư pháp\"\n[[unit]]\ncode = \"PM\"\nname = \"UBND phường Mới\"\n",
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(6));
    std::fs::write(inbox.join("b.ndjson"), rec("R-2")).unwrap();
    wait_for(Duration::from_secs(30), "R-2 with its unit", || {
        count(
            &dir,
            "SELECT COUNT(*) FROM cases WHERE case_id = 'R-2' AND unit_code = 'PM'",
        ) == 1
    });
    assert!(child.try_wait().unwrap().is_none(), "still running");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn quarantine_retry_ingests_after_a_mapping_fix() {
    let dir = scratch("retry");
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    // Tasks whose status words slawatch does not know yet.
    std::fs::write(
        inbox.join("tasks.json"),
        r#"[{"MaHoSo":"T-1","TrangThaiHoSo":"dang-lam","NgayTiepNhan":"20240102080000","NgayHenTra":"20240110170000","ChuHoSo":"Nguyễn Văn A"}]"#,
    )
    .unwrap();
    let config = |status_map: &str| {
        format!(
            "[store]\nurl = \"sqlite://{d}/slawatch.db\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [[source]]\nname = \"tasks\"\ntype = \"file\"\ncase_kind = \"task\"\ndir = \"{d}/inbox\"\nschedule = \"*/1 * * * * *\"\n{status_map}",
            d = dir.display()
        )
    };
    std::fs::write(dir.join("slawatch.toml"), config("")).unwrap();
    let mut child = crate::slawatch()
        .args(["--config", "slawatch.toml", "run"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(30), "the quarantine", || {
        count(&dir, "SELECT COUNT(*) FROM quarantine") == 1
    });
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().unwrap();

    let cli = |args: &[&str]| {
        let o = crate::slawatch()
            .args(["--config", "slawatch.toml"])
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).to_string(),
        )
    };
    let (_, shown) = cli(&["quarantine", "show", "1"]);
    assert!(shown.contains("unknown status `dang-lam`"), "{shown}");
    assert!(
        !shown.contains("Nguyễn Văn A"),
        "applicant redacted: {shown}"
    );
    // Retrying unchanged fails again, and says why.
    let (code, out) = cli(&["quarantine", "retry"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("still rejected"), "{out}");
    // With the mapping fixed, the retry ingests it and resolves the row.
    std::fs::write(
        dir.join("slawatch.toml"),
        config("status_map = { dang-lam = 4 }\n"),
    )
    .unwrap();
    let (code, out) = cli(&["quarantine", "retry"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("1 ingested"), "{out}");
    assert_eq!(
        count(
            &dir,
            "SELECT COUNT(*) FROM cases WHERE case_id = 'T-1' AND kind = 'task'"
        ),
        1
    );
    assert_eq!(
        count(&dir, "SELECT COUNT(*) FROM quarantine WHERE resolved"),
        1
    );
    let (_, listed) = cli(&["quarantine", "list"]);
    assert!(listed.contains("0 record(s)"), "{listed}");
}

#[test]
fn sighup_applies_a_new_calendar_and_refuses_a_broken_one() {
    // A dossier received Mon 15/02/2027 08:00 under a 10-workday procedure, no due from
    // the source: 16–19/02 = 4, 22–26 = 9, Mon 01/03/2027 08:00 = 10 (01:00 UTC). With
    // Saturday 27/02 worked it is the 10th workday: 27/02/2027 08:00.
    let dir = scratch("reload-calendar");
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/calendar/vn-official-days.csv"),
    )
    .unwrap();
    std::fs::write(dir.join("days.csv"), &shipped).unwrap();
    std::fs::write(
        dir.join("procedures.toml"),
        "[[procedure]]\ncode = \"P10\"\nname = \"Mười ngày\"\nduration = \"10 workdays\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("slawatch.toml"),
        format!(
            "[calendar]\nofficial_days = \"days.csv\"\n[catalogue]\nfile = \"procedures.toml\"\n\
             [store]\nurl = \"sqlite://{d}/slawatch.db\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [[source]]\nname = \"inbox\"\ntype = \"file\"\ndir = \"{d}/inbox\"\nschedule = \"*/1 * * * * *\"\n",
            d = dir.display()
        ),
    )
    .unwrap();
    std::fs::write(
        inbox.join("a.ndjson"),
        "{\"MaHoSo\":\"C-1\",\"MaTTHC\":\"P10\",\"TrangThaiHoSo\":\"4\",\"NgayTiepNhan\":\"20270215080000\"}\n",
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("daemon.log")).unwrap();
    let mut child = crate::slawatch()
        .args(["--config", "slawatch.toml", "run"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let due = |d: &str| {
        count(
            &dir,
            &format!(
                "SELECT COUNT(*) FROM cases WHERE case_id = 'C-1' AND effective_due LIKE '{d}%'"
            ),
        ) == 1
    };
    wait_for(Duration::from_secs(30), "C-1 due 01/03/2027", || {
        due("2027-03-01")
    });
    let pid = child.id().to_string();
    let hup = || Command::new("kill").args(["-HUP", &pid]).status().unwrap();

    // A broken line: refused, the daemon keeps its calendar and runs on.
    std::fs::write(
        dir.join("days.csv"),
        format!("{shipped}2027-02-30,workday,Ngày không có,confirmed\n"),
    )
    .unwrap();
    hup();
    std::thread::sleep(Duration::from_secs(3));
    assert!(child.try_wait().unwrap().is_none(), "still running");
    assert!(due("2027-03-01"));

    // The make-up Saturday, applied on SIGHUP: the stored due moves to 27/02.
    std::fs::write(
        dir.join("days.csv"),
        format!("{shipped}2027-02-27,workday,Làm bù,confirmed\n"),
    )
    .unwrap();
    hup();
    wait_for(Duration::from_secs(30), "C-1 due 27/02/2027", || {
        due("2027-02-27")
    });
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let raw = std::fs::read_to_string(dir.join("daemon.log")).unwrap();
    // Without the terminal colours.
    let mut log = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            log.push(c);
        }
    }
    assert!(
        log.contains("days.csv:"),
        "the refusal names the file: {log}"
    );
    assert!(log.contains("calendar reloaded"), "{log}");
    assert!(log.contains("dues_moved=1"), "{log}");
}
