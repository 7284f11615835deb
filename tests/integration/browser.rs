//! The desk in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) driven over WebDriver against a real daemon. A head opens the
//! signed link of a delivered `.eml`, sees the unit's overdue cases in the hand-worked
//! order, opens a case, acknowledges `overdue` and sees it recorded; the next digest
//! marks the case; another unit, a tampered and an expired link are refused; the
//! administrator signs in.
//!
//! `SLAWATCH_SCREENSHOTS=docs` also writes the unit page and the digest at 1280 and
//! 400 px into `docs/` (the README's pictures).

use crate::{scratch, Timeline};
use crate::{wait_until, Daemon};
use fantoccini::{ClientBuilder, Locator};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const PUBLIC: &str = "https://slawatch.tinh.example.gov.vn";
const SECRET: &str = "khoa-ky-trinh-duyet";
const ADMIN: &str = "ma-quan-tri-trinh-duyet";
/// Sun 06/12/2026 22:00 (Hà Nội): no digest is due, alerts go out (`always`).
const AT: &str = "2026-12-06T22:00:00+07:00";

struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// chromedriver on a free port, or none (then the test says so, and fails in CI).
fn driver(dir: &Path) -> Option<Driver> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("chromedriver.log")).ok()?)
        .spawn()
        .ok()?;
    let d = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(d);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn write_config(dir: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::write(
        dir.join("slawatch.toml"),
        format!(
            "[catalogue]\nfile = \"{root}/config/procedures.toml\"\n[directory]\nfile = \"{root}/config/units.toml\"\n\
             [store]\nurl = \"sqlite://{dir}/slawatch.db\"\n[http]\nlisten = \"127.0.0.1:0\"\npublic_url = \"{PUBLIC}\"\n\
             [daemon]\nevaluate_schedule = \"*/5 * * * * *\"\n\
             [alerts]\ntransport = \"file\"\nfile_dir = \"mail\"\nsend_window = \"always\"\n\
             from = \"slawatch <canhbao@tinh.example.gov.vn>\"\n\
             [[source]]\nname = \"vendor\"\ntype = \"push\"\ntoken_env = \"PUSH_TOKEN\"\n",
            root = root.display(),
            dir = dir.display(),
        ),
    )
    .unwrap();
}

fn screenshots() -> Option<PathBuf> {
    std::env::var_os("SLAWATCH_SCREENSHOTS").map(|d| {
        let p = PathBuf::from(d);
        if p.is_absolute() {
            p
        } else {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
        }
    })
}

/// The page's source once it contains `needle` (a click's navigation finishes after
/// the click returns), or a failure naming what was there after 10 s.
async fn page_with(c: &fantoccini::Client, needle: &str) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        last = c.source().await.unwrap_or_default();
        if last.contains(needle) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no `{needle}` in the page after 10 s:\n{last}");
}

#[test]
fn a_head_works_from_the_desk_in_a_real_browser() {
    let dir = scratch("browser");
    let Some(driver) = driver(&dir) else {
        assert!(
            std::env::var_os("CI_REQUIRE_PROMTOOL").is_none(),
            "chromedriver is required here (Debian: chromium, chromium-driver)"
        );
        eprintln!("chromedriver is not installed: browser test not run");
        return;
    };
    write_config(&dir);
    let clock = Timeline::from(AT);
    let d = Daemon::start_at(
        &dir,
        &[
            ("PUSH_TOKEN", "tk"),
            ("SLAWATCH_DESK_SECRET", SECRET),
            ("SLAWATCH_API_TOKEN", ADMIN),
        ],
        Some(&clock.now()),
    );
    // Three overdue dossiers of STP and one of SXD. Hand-worked order on Sunday
    // 06/12/2026: BR-1 (due Fri 20/11) before BR-3 (Fri 27/11) before BR-2 (Tue 01/12).
    d.push(&json!([
        {"MaHoSo": "BR-2", "TrangThaiHoSo": "4", "NgayTiepNhan": "20261116080000",
         "NgayHenTra": "20261201170000", "DonViXuLy": "Sở Tư pháp", "ChuHoSo": "Nguyễn Văn A"},
        {"MaHoSo": "BR-1", "TrangThaiHoSo": "4", "NgayTiepNhan": "20261102080000",
         "NgayHenTra": "20261120170000", "DonViXuLy": "Sở Tư pháp"},
        {"MaHoSo": "BR-3", "TrangThaiHoSo": "4", "NgayTiepNhan": "20261109080000",
         "NgayHenTra": "20261127170000", "DonViXuLy": "Sở Tư pháp"},
        {"MaHoSo": "BR-X", "TrangThaiHoSo": "4", "NgayTiepNhan": "20261109080000",
         "NgayHenTra": "20261127170000", "DonViXuLy": "Sở Xây dựng"}
    ]));
    wait_until(Duration::from_secs(30), "the head's e-mail", || {
        crate::delivered_text(&dir.join("mail"), "giamdoc@stp.example.gov.vn").is_some()
    });
    let text = crate::delivered_text(&dir.join("mail"), "giamdoc@stp.example.gov.vn").unwrap();
    let link = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Trang làm việc của đơn vị: "))
        .unwrap_or_else(|| panic!("no desk link in {text}"))
        .trim()
        .replacen(PUBLIC, &format!("http://{}", d.addr), 1);
    let token = link.split("?t=").nth(1).unwrap().to_string();
    let base = format!("http://{}", d.addr);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let shots = screenshots();
    rt.block_on(async {
        let caps: serde_json::Map<String, serde_json::Value> = serde_json::from_value(json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"]
            }
        }))
        .unwrap();
        let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .expect("a WebDriver session");
        // The unit's page from the e-mail's link: the overdue cases in order.
        c.goto(&link).await.unwrap();
        let h1 = c.find(Locator::Css("h1")).await.unwrap().text().await.unwrap();
        assert_eq!(h1, "Sở Tư pháp");
        let mut ids = Vec::new();
        for e in c.find_all(Locator::Css(".case a b")).await.unwrap() {
            ids.push(e.text().await.unwrap());
        }
        assert_eq!(ids, ["BR-1", "BR-3", "BR-2"]);
        let page = c.source().await.unwrap();
        assert!(!page.contains("BR-X") && !page.contains("Nguyễn Văn A"), "{page}");
        if let Some(out) = &shots {
            std::fs::create_dir_all(out).unwrap();
            for w in [1280u32, 400] {
                c.set_window_size(w, 900).await.unwrap();
                std::fs::write(out.join(format!("desk-unit-{w}.png")), c.screenshot().await.unwrap()).unwrap();
            }
        }
        // The first case: its trace, then acknowledge `overdue`.
        c.find(Locator::LinkText("BR-1")).await.unwrap().click().await.unwrap();
        page_with(&c, "<h1>BR-1</h1>").await;
        let first = c.find(Locator::Css("ol li")).await.unwrap().text().await.unwrap();
        assert_eq!(first, "tiếp nhận 02/11/2026 08:00");
        c.find(Locator::Css("select[name=rule]"))
            .await
            .unwrap()
            .select_by_value("overdue")
            .await
            .unwrap();
        c.find(Locator::Css("textarea[name=note]"))
            .await
            .unwrap()
            .send_keys("Đã gửi văn bản xin lỗi và đề nghị gia hạn (Mẫu 04)")
            .await
            .unwrap();
        c.find(Locator::Css("form button")).await.unwrap().click().await.unwrap();
        let page = page_with(&c, "Đã ghi nhận xác nhận «Quá hạn»").await;
        assert!(page.contains("Đã gửi văn bản xin lỗi và đề nghị gia hạn (Mẫu 04)"), "{page}");
        // Another unit with the same link, a tampered and an expired link: refused.
        c.goto(&format!("{base}/desk/unit/SXD?t={token}")).await.unwrap();
        let page = c.source().await.unwrap();
        assert!(page.contains("Đường dẫn này không mở được đơn vị SXD."), "{page}");
        let mut tampered = token.clone().into_bytes();
        tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        c.goto(&format!("{base}/desk/unit/STP?t={tampered}")).await.unwrap();
        assert!(c.source().await.unwrap().contains("Không mở được trang"));
        let expired = slawatch::desk::token::sign(
            &slawatch::desk::token::Scope {
                who: "giamdoc@stp.example.gov.vn".into(),
                name: String::new(),
                units: vec!["STP".into()],
                expires: chrono::DateTime::parse_from_rfc3339(AT).unwrap().timestamp() - 3600,
            },
            SECRET.as_bytes(),
        );
        c.goto(&format!("{base}/desk/unit/STP?t={expired}")).await.unwrap();
        assert!(c.source().await.unwrap().contains("Đường dẫn đã hết hạn."));
        // A forged acknowledgement (no form token) is refused.
        let r = reqwest::Client::new()
            .post(format!("{base}/desk/case/vendor/BR-3/ack"))
            .form(&[("t", token.as_str()), ("rule", "overdue"), ("note", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        // The administrator signs in and reaches the province's page.
        c.goto(&format!("{base}/desk/login")).await.unwrap();
        c.find(Locator::Css("input[name=token]"))
            .await
            .unwrap()
            .send_keys(ADMIN)
            .await
            .unwrap();
        c.find(Locator::Css("form button")).await.unwrap().click().await.unwrap();
        page_with(&c, "<h1>Toàn tỉnh</h1>").await;
        c.close().await.unwrap();
    });

    // The next morning's digest (Mon 07/12/2026 07:40) marks BR-1 as acknowledged.
    let eml = dir.join("preview");
    let o = crate::slawatch_at("2026-12-07T07:40:00+07:00")
        .args([
            "--config",
            "slawatch.toml",
            "notify",
            "preview",
            "digest",
            "--unit",
            "STP",
        ])
        .arg("--eml")
        .arg(&eml)
        .current_dir(&dir)
        .env_remove("SLAWATCH_LOG")
        .env("SLAWATCH_DESK_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let raw = std::fs::read(eml.join("giamdoc@stp.example.gov.vn.eml")).unwrap();
    let m = mail_parser::MessageParser::default().parse(&raw).unwrap();
    let text = m.body_text(0).unwrap().replace("\r\n", "\n");
    assert!(
        text.contains("- BR-1: Hạn 20/11/2026 17:00")
            && text.contains("  Đã xác nhận: Giám đốc Sở Tư pháp <giamdoc@stp.example.gov.vn>, 06/12/2026 22:00: ")
            && text.contains(&format!("Trang làm việc của đơn vị: {PUBLIC}/desk/unit/STP?t=")),
        "{text}"
    );
    if let Some(out) = &shots {
        let html = dir.join("digest.html");
        std::fs::write(&html, m.body_html(0).unwrap().as_bytes()).unwrap();
        for w in [1280u32, 400] {
            let o = Command::new("chromium")
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--hide-scrollbars",
                ])
                .arg(format!("--window-size={w},1100"))
                .arg(format!(
                    "--screenshot={}",
                    out.join(format!("digest-{w}.png")).display()
                ))
                .arg(format!("file://{}", html.display()))
                .output()
                .unwrap();
            assert!(o.status.success());
        }
    }
    drop(d);
}
