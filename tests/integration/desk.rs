//! The desk over real HTTP: signed links open a unit's page and its cases' pages,
//! refuse other units, tampered and expired links; no applicant identity anywhere.

use crate::metrics::{now, shared_with_cases};
use crate::scratch;
use slawatch::clock::Clock;
use slawatch::desk::token::{sign, Scope};
use slawatch::state::{Context, Shared};
use std::sync::Arc;

const SECRET: &[u8] = b"khoa-ky-thu-nghiem";
const API_TOKEN: &str = "ma-api-quan-tri";

/// The cases of the metrics fixture, served with the desk on 127.0.0.1, its clock
/// pinned at Fri 15/03/2024 10:00.
async fn serve(name: &str) -> (String, Arc<Shared>) {
    let dir = scratch(name);
    let sh = shared_with_cases(&dir, now()).await;
    let s = slawatch::store::open(&format!("sqlite://{}/slawatch.db", dir.display()))
        .await
        .unwrap();
    let ctx: Context = (*sh.context()).clone();
    let pinned = Arc::new(Shared::new(s, ctx, "salt".into()).with_clock(Clock::starting_at(now())));
    pinned.load(now()).await.unwrap();
    pinned.refresh_metrics(now()).await.unwrap();
    let app = slawatch::http::router(pinned.clone(), vec![], 1 << 20, None).merge(
        slawatch::desk::routes(
            pinned.clone(),
            Some(SECRET.to_vec()),
            slawatch::config::AlertsConfig::default(),
            Some(API_TOKEN.to_string()),
        ),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}"), pinned)
}

fn link_for(units: &[&str], expires: i64) -> String {
    sign(
        &Scope {
            who: "giamdoc@stp.example.gov.vn".into(),
            name: "Giám đốc Sở Tư pháp".into(),
            units: units.iter().map(|u| u.to_string()).collect(),
            expires,
        },
        SECRET,
    )
}

async fn get(url: String) -> (u16, String) {
    let r = reqwest::get(&url).await.unwrap();
    let out = (r.status().as_u16(), r.text().await.unwrap());
    // `SLAWATCH_DESK_DUMP=DIR` keeps each page (with the stylesheet inlined) for a look
    // in a browser; it changes nothing tested.
    if let Some(dir) = std::env::var_os("SLAWATCH_DESK_DUMP") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        let name: String = url
            .split("/desk/")
            .nth(1)
            .unwrap_or("page")
            .split('?')
            .next()
            .unwrap_or("page")
            .replace('/', "_");
        let lang = if url.contains("lang=en") { ".en" } else { "" };
        let css = include_str!("../../templates/desk/desk.css");
        let html = out.1.replace(
            "<link rel=\"stylesheet\" href=\"/desk/desk.css\">",
            &format!("<style>{css}</style>"),
        );
        std::fs::write(dir.join(format!("{name}{lang}.{}.html", out.0)), html).unwrap();
    }
    out
}

#[tokio::test]
async fn a_signed_link_opens_its_unit_and_cases_and_nothing_else() {
    let (base, _sh) = serve("desk-pages").await;
    let in_a_week = now().timestamp() + 7 * 86_400;
    let t = link_for(&["STP"], in_a_week);
    let (status, html) = get(format!("{base}/desk/unit/STP?t={t}")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<h1>Sở Tư pháp</h1>"), "{html}");
    // M-OVERDUE (4 workdays late) in the overdue section, linking to its page.
    let overdue = html
        .find("<h2 id=\"overdue\">Quá hạn (1)</h2>")
        .expect(&html);
    let late = html.find("<b>M-OVERDUE</b>").expect(&html);
    assert!(overdue < late, "{html}");
    assert!(html.contains("quá hạn 4 ngày làm việc"), "{html}");
    assert!(
        html.contains(&format!("href=\"/desk/case/portal/M-OVERDUE?t={t}\"")),
        "{html}"
    );
    // No applicant identity on the page.
    assert!(!html.contains("Nguyễn Văn A"), "{html}");

    let (status, html) = get(format!("{base}/desk/case/portal/M-OVERDUE?t={t}")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<h1>M-OVERDUE</h1>"), "{html}");
    // The full trace, with years.
    assert!(
        html.contains("<li>tiếp nhận 01/03/2024 08:00</li>"),
        "{html}"
    );
    // The history names the portal's statuses (TrangThaiHoSo 4 = Đang xử lý).
    assert!(
        html.contains("<td>01/03/2024 08:00</td><td>Đang xử lý (trạng thái 4)</td>"),
        "{html}"
    );
    assert!(!html.contains("Nguyễn Văn A"), "{html}");
    let (status, html) = get(format!("{base}/desk/case/portal/M-OVERDUE?t={t}&lang=en")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("<li>received 01/03/2024 08:00</li>"),
        "{html}"
    );

    // Another unit, and another unit's case, are refused.
    let (status, html) = get(format!("{base}/desk/unit/SXD?t={t}")).await;
    assert_eq!(status, 403);
    assert!(
        html.contains("Đường dẫn này không mở được đơn vị SXD."),
        "{html}"
    );
    let (status, _) = get(format!("{base}/desk/case/portal/M-UNKNOWN?t={t}")).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn tampered_expired_and_missing_links_are_refused_with_a_page() {
    let (base, _sh) = serve("desk-refused").await;
    let t = link_for(&["STP"], now().timestamp() + 86_400);
    // The scope widened by hand, the signature kept.
    let (_, sig) = t.split_once('.').unwrap();
    let wider = link_for(&["STP", "SXD"], now().timestamp() + 86_400);
    let (payload, _) = wider.split_once('.').unwrap();
    let forged = format!("{payload}.{sig}");
    let (status, html) = get(format!("{base}/desk/unit/SXD?t={forged}")).await;
    assert_eq!(status, 403);
    assert!(html.contains("Đường dẫn không hợp lệ"), "{html}");
    // Expired a second before the daemon's now.
    let old = link_for(&["STP"], now().timestamp() - 1);
    let (status, html) = get(format!("{base}/desk/unit/STP?t={old}")).await;
    assert_eq!(status, 403);
    assert!(html.contains("Đường dẫn đã hết hạn."), "{html}");
    let (status, html) = get(format!("{base}/desk/unit/STP?t={old}&lang=en")).await;
    assert_eq!(status, 403);
    assert!(html.contains("the link has expired."), "{html}");
    let (status, html) = get(format!("{base}/desk/unit/STP")).await;
    assert_eq!(status, 403);
    assert!(html.contains("Đường dẫn thiếu mã truy cập."), "{html}");
    // Pages are HTML, readable on a phone, styled by one small file.
    assert!(html.contains("<meta name=\"viewport\""), "{html}");
    let css = reqwest::get(format!("{base}/desk/desk.css")).await.unwrap();
    assert_eq!(css.status(), 200);
    assert!(css.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
}

/// Acknowledging from the case's page: only the rules that fire for the case now are
/// offered; the form carries a token bound to the link (a forged post without it is
/// refused); the acknowledgement is recorded with the link's person as `by`, shown on
/// the page, and the morning digest marks the case.
#[tokio::test]
async fn a_head_acknowledges_from_the_case_page() {
    let (base, sh) = serve("desk-ack").await;
    let t = link_for(&["STP"], now().timestamp() + 86_400);
    let page = format!("{base}/desk/case/portal/M-OVERDUE?t={t}");
    let (status, html) = get(page.clone()).await;
    assert_eq!(status, 200);
    // M-OVERDUE, 4 workdays late on Fri 15/03: overdue, escalated (≥ 3) and stuck fire.
    for rule in ["overdue", "escalated", "stuck"] {
        assert!(
            html.contains(&format!("<option value=\"{rule}\">")),
            "{rule}: {html}"
        );
    }
    assert!(!html.contains("<option value=\"due_soon\">"), "{html}");
    let field = |name: &str| -> String {
        let at = html
            .find(&format!("name=\"{name}\" value=\""))
            .unwrap_or_else(|| panic!("no {name} in {html}"));
        let rest = &html[at + name.len() + 15..];
        rest[..rest.find('"').unwrap()].to_string()
    };
    let csrf = field("csrf");
    let action = format!("{base}/desk/case/portal/M-OVERDUE/ack");
    let client = reqwest::Client::new();
    // Without the form token (a post from another site): refused, nothing recorded.
    let r = client
        .post(&action)
        .form(&[("t", t.as_str()), ("rule", "overdue"), ("note", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("Biểu mẫu không hợp lệ"));
    // A rule that does not fire now is refused.
    let r = client
        .post(&action)
        .form(&[
            ("t", t.as_str()),
            ("csrf", csrf.as_str()),
            ("rule", "due_soon"),
            ("note", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(sh
        .store
        .acks("portal", "M-OVERDUE")
        .await
        .unwrap()
        .is_empty());
    // The real form: recorded, and the page says so.
    let r = client
        .post(&action)
        .form(&[
            ("t", t.as_str()),
            ("csrf", csrf.as_str()),
            ("rule", "overdue"),
            ("note", "Đã gửi văn bản xin lỗi và đề nghị gia hạn"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "followed the redirect to the case page");
    let html = r.text().await.unwrap();
    assert!(html.contains("Đã ghi nhận xác nhận «Quá hạn»"), "{html}");
    assert!(html.contains("<td>overdue</td><td>Giám đốc Sở Tư pháp &lt;giamdoc@stp.example.gov.vn&gt;</td><td>Đã gửi văn bản xin lỗi và đề nghị gia hạn</td>"), "{html}");
    let acks = sh.store.acks("portal", "M-OVERDUE").await.unwrap();
    assert_eq!(acks.len(), 1);
    assert_eq!(
        acks[0].by,
        "Giám đốc Sở Tư pháp <giamdoc@stp.example.gov.vn>"
    );
    // The next morning's digest lists the case as acknowledged by that person.
    let morning = chrono::DateTime::parse_from_rfc3339("2024-03-18T07:30:00+07:00")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let digests =
        slawatch::jobs::build_digests(&sh, &slawatch::config::AlertsConfig::default(), morning)
            .await
            .unwrap();
    let stp = digests.iter().find(|d| d.unit == "STP").unwrap();
    let first = &stp.context["sections"][0]["cases"][0];
    assert_eq!(first["case_id"], "M-OVERDUE");
    assert_eq!(
        first["ack"]["by"],
        "Giám đốc Sở Tư pháp <giamdoc@stp.example.gov.vn>"
    );
}

/// The province's page opens for a link over every unit (the chairman's) and ranks the
/// units; a department's link is refused. An administrator signs in with the API token
/// (an HttpOnly, SameSite=Strict cookie) and reaches it; a wrong token does not.
#[tokio::test]
async fn the_province_page_and_the_administrators_sign_in() {
    let (base, sh) = serve("desk-province").await;
    let all: Vec<String> = sh
        .context()
        .directory
        .units()
        .iter()
        .map(|u| u.code.clone())
        .collect();
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let chairman = link_for(&refs, now().timestamp() + 86_400);
    let (status, html) = get(format!("{base}/desk/province?t={chairman}")).await;
    assert_eq!(status, 200, "{html}");
    // STP holds the one open overdue case: first by overdue; its quarter ratio is 2/4
    // (the metrics fixture's hand count): 50,0 %.
    let by_overdue = html.find("Xếp theo số hồ sơ quá hạn").unwrap();
    let first_row = &html[by_overdue..];
    assert!(
        first_row.contains(&format!("<td>1</td><td><a href=\"/desk/unit/STP?t={chairman}\">Sở Tư pháp</a></td><td><b>1</b></td>")),
        "{html}"
    );
    assert!(html.contains("<td><b>50,0%</b></td><td>2/4</td>"), "{html}");
    // It links this month's and last month's Biểu 06, as a page and as XLSX.
    let links: Vec<String> = html
        .split("href=\"")
        .skip(1)
        .filter_map(|h| h.split('"').next())
        .filter(|h| h.starts_with("/desk/province/report"))
        .map(|h| h.replace("&amp;", "&"))
        .collect();
    assert_eq!(links.len(), 4, "{html}");
    let month = slawatch::report::ReportPeriod::month_of(
        now().with_timezone(&crate::vietnam()).date_naive(),
    )
    .label;
    assert!(
        links[1].ends_with(&format!("&period={month}&format=xlsx")),
        "{links:?}"
    );
    let r = reqwest::get(format!("{base}{}", links[1])).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    {
        use calamine::Reader;
        let bytes = r.bytes().await.unwrap().to_vec();
        let book = calamine::Xlsx::new(std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(book.sheet_names()[0], "Biểu 06");
    }
    let (status, page) = get(format!("{base}{}", links[0])).await;
    assert_eq!(status, 200);
    assert!(page.contains("Biểu số 06"), "{page}");
    let stp = link_for(&["STP"], now().timestamp() + 86_400);
    let (status, _) = get(format!("{base}/desk/province?t={stp}")).await;
    assert_eq!(status, 403);
    let (status, _) = get(format!(
        "{base}/desk/province/report?t={stp}&period={month}&format=xlsx"
    ))
    .await;
    assert_eq!(status, 403);

    // Sign-in: a wrong token is refused, the right one sets the session cookie.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (status, html) = get(format!("{base}/desk/login")).await;
    assert_eq!(status, 200);
    assert!(html.contains("type=\"password\" name=\"token\""), "{html}");
    let r = client
        .post(format!("{base}/desk/login"))
        .form(&[("token", "not-it")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("set-cookie").is_none());
    let r = client
        .post(format!("{base}/desk/login"))
        .form(&[("token", API_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/desk/province");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/desk"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    let session = cookie.split(';').next().unwrap().to_string();
    let r = client
        .get(format!("{base}/desk/province"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("slawatch · Quản trị viên"));
    // The session opens any unit's case, and acknowledging needs its form token too.
    let r = client
        .get(format!("{base}/desk/case/portal/M-OVERDUE"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("name=\"csrf\" value=\""), "{html}");
    let r = client
        .post(format!("{base}/desk/case/portal/M-OVERDUE/ack"))
        .header("cookie", &session)
        .form(&[("rule", "overdue"), ("note", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "no form token");
}

/// Assigned tasks are listed apart from dossiers, under their own heading.
#[tokio::test]
async fn tasks_are_listed_apart_on_the_unit_page() {
    let (base, sh) = serve("desk-tasks").await;
    let mut mapping = slawatch::source::normalize::Mapping::dvcqg();
    mapping.kind = slawatch::sla::model::Kind::Task;
    let task = serde_json::json!({
        "MaHoSo": "NV-01", "TrangThaiHoSo": "4", "NgayTiepNhan": "20240301080000",
        "NgayHenTra": "20240307170000", "DonViXuLy": "Sở Tư pháp",
    });
    slawatch::daemon::ingest(
        &sh,
        "tasks",
        &mapping,
        slawatch::daemon::Delivery::records(vec![slawatch::source::RawRecord::json(task, "t")]),
        now(),
    )
    .await
    .unwrap();
    let t = link_for(&["STP"], now().timestamp() + 86_400);
    let (status, html) = get(format!("{base}/desk/unit/STP?t={t}")).await;
    assert_eq!(status, 200, "{html}");
    let dossiers = html
        .find("<h2 id=\"overdue\">Quá hạn (1)</h2>")
        .expect(&html);
    let tasks = html.find("<h2>Nhiệm vụ được giao</h2>").expect(&html);
    let task_section = html
        .find("<h3 id=\"task-overdue\">Quá hạn (1)</h3>")
        .expect(&html);
    let nv = html.find("<b>NV-01</b>").expect(&html);
    let m = html.find("<b>M-OVERDUE</b>").expect(&html);
    assert!(
        dossiers < m && m < tasks && tasks < task_section && task_section < nv,
        "{html}"
    );
}
