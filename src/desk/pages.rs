//! The desk's pages (server-rendered HTML, no script): a unit's page (counts by state,
//! then its cases by urgency) and a case's page (due, state, the full trace, steps,
//! history, who was notified, acknowledgements). Each request carries a signed link
//! (`?t=`, [`super::token`]); a page outside the link's scope is refused with 403.
//!
//! What a page shows of a case is an allow-list of fields: never the applicant.

use super::token::{self, Scope, TokenError};
use crate::sla::explain::{explain_case, Lang};
use crate::sla::model::{Case, Kind};
use crate::sla::State;
use crate::state::{Entry, Shared};
use crate::store::EvalSummary;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use minijinja::Environment;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

const TEMPLATES: [(&str, &str); 6] = [
    (
        "province.html",
        include_str!("../../templates/desk/province.html"),
    ),
    (
        "login.html",
        include_str!("../../templates/desk/login.html"),
    ),
    (
        "layout.html",
        include_str!("../../templates/desk/layout.html"),
    ),
    (
        "refused.html",
        include_str!("../../templates/desk/refused.html"),
    ),
    ("unit.html", include_str!("../../templates/desk/unit.html")),
    ("case.html", include_str!("../../templates/desk/case.html")),
];
const CSS: &str = include_str!("../../templates/desk/desk.css");

/// Cases listed per section of a unit's page; the rest are counted.
pub const PAGE_LIMIT: usize = 200;

#[derive(Clone)]
struct Desk {
    shared: Arc<Shared>,
    secret: Option<Arc<[u8]>>,
    env: Arc<Environment<'static>>,
    /// The ladder's settings: which rules fire for a case now (what can be
    /// acknowledged).
    alerts: Arc<crate::config::AlertsConfig>,
    /// The API token: an administrator signs in with it.
    api_token: Option<Arc<str>>,
}

/// The administrator's session cookie (a signed scope over every unit).
const SESSION: &str = "slawatch_desk";
/// How long an administrator's session lasts.
const SESSION_SECONDS: i64 = 12 * 3600;

/// The `/desk` routes. Without a secret every page says the desk is not set up.
pub fn routes(
    shared: Arc<Shared>,
    secret: Option<Vec<u8>>,
    alerts: crate::config::AlertsConfig,
    api_token: Option<String>,
) -> Router {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    crate::notify::templates::set_html_formatter(&mut env);
    for (name, text) in TEMPLATES {
        env.add_template(name, text).expect("valid desk template");
    }
    let desk = Desk {
        shared,
        secret: secret.filter(|s| !s.is_empty()).map(Arc::from),
        env: Arc::new(env),
        alerts: Arc::new(alerts),
        api_token: api_token.filter(|t| !t.is_empty()).map(Arc::from),
    };
    Router::new()
        .route("/desk/desk.css", get(css))
        .route("/desk/unit/{code}", get(unit_page))
        .route("/desk/case/{source}/{case_id}", get(case_page))
        .route(
            "/desk/case/{source}/{case_id}/ack",
            axum::routing::post(acknowledge),
        )
        .route("/desk/province", get(province_page))
        .route("/desk/province/report", get(province_report))
        .route("/desk/login", get(login_page).post(login))
        .with_state(desk)
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

fn lang_of(q: &HashMap<String, String>) -> Lang {
    if q.get("lang").map(String::as_str) == Some("en") {
        Lang::En
    } else {
        Lang::Vi
    }
}

fn lang_code(lang: Lang) -> &'static str {
    match lang {
        Lang::Vi => "vi",
        Lang::En => "en",
    }
}

fn pick(lang: Lang, vi: &str, en: &str) -> String {
    match lang {
        Lang::Vi => vi,
        Lang::En => en,
    }
    .to_string()
}

impl Desk {
    fn render(&self, status: StatusCode, name: &str, ctx: Value) -> Response {
        match self.env.get_template(name).and_then(|t| t.render(&ctx)) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(error = %e, template = name, "desk page failed to render");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Html("internal error".to_string()),
                )
                    .into_response()
            }
        }
    }

    fn refused(&self, status: StatusCode, lang: Lang, message: String) -> Response {
        self.render(
            status,
            "refused.html",
            json!({
                "lang": lang_code(lang),
                "who": null,
                "title": pick(lang, "Không mở được trang", "This page cannot be opened"),
                "message": message,
                "hint": pick(
                    lang,
                    "Hãy mở lại đường dẫn trong thư mới nhất của slawatch; nếu vẫn không được, liên hệ bộ phận CNTT.",
                    "Open the link in slawatch's latest e-mail again; if that fails, ask the IT staff.",
                ),
            }),
        )
    }

    /// The scope the request's link grants, or the page that refuses it.
    fn scope(
        &self,
        q: &HashMap<String, String>,
        headers: &axum::http::HeaderMap,
        lang: Lang,
    ) -> Result<Scope, Box<Response>> {
        let Some(secret) = &self.secret else {
            return Err(Box::new(self.refused(
                StatusCode::SERVICE_UNAVAILABLE,
                lang,
                pick(
                    lang,
                    "Trang làm việc chưa được cài đặt (thiếu khóa ký đường dẫn).",
                    "The desk is not set up (no signing secret).",
                ),
            )));
        };
        let Some(t) = token_of(q, headers) else {
            return Err(Box::new(self.refused(
                StatusCode::FORBIDDEN,
                lang,
                pick(
                    lang,
                    "Đường dẫn thiếu mã truy cập.",
                    "The link carries no access token.",
                ),
            )));
        };
        token::verify(&t, secret, self.shared.now().timestamp()).map_err(|e| {
            let message = match (e, lang) {
                (TokenError::Expired, Lang::Vi) => "Đường dẫn đã hết hạn.",
                (TokenError::BadSignature, Lang::Vi) => {
                    "Đường dẫn không hợp lệ (đã bị sửa, hoặc đã được thay khóa)."
                }
                (TokenError::Malformed, Lang::Vi) => "Đường dẫn bị hỏng hoặc bị cắt mất.",
                (e, Lang::En) => {
                    return Box::new(self.refused(StatusCode::FORBIDDEN, lang, format!("{e}.")))
                }
            };
            Box::new(self.refused(StatusCode::FORBIDDEN, lang, message.to_string()))
        })
    }

    fn outside(&self, lang: Lang, unit: &str) -> Response {
        self.refused(
            StatusCode::FORBIDDEN,
            lang,
            match lang {
                Lang::Vi => format!("Đường dẫn này không mở được đơn vị {unit}."),
                Lang::En => format!("This link does not open unit {unit}."),
            },
        )
    }
}

/// The request's link: `?t=` (or the form's `t`), else the administrator's session
/// cookie.
fn token_of(q: &HashMap<String, String>, headers: &axum::http::HeaderMap) -> Option<String> {
    if let Some(t) = q.get("t").filter(|t| !t.is_empty()) {
        return Some(t.clone());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(&format!("{SESSION}="))
                .map(str::to_string)
        })
        .filter(|t| !t.is_empty())
}

/// The form token of a link: bound to it (an HMAC of the link under the desk secret),
/// so a form posted from another site, which cannot read the page, is refused.
fn form_token(secret: &[u8], link: &str) -> String {
    use base64::Engine;
    use hmac::Mac;
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
    m.update(b"ack\x1f");
    m.update(link.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
}

/// The rules that fire for a case now (each once): what its page can acknowledge.
fn firing(desk: &Desk, case: &Case, ev: &EvalSummary) -> Vec<&'static str> {
    let ctx = desk.shared.context();
    let cfg = &desk.alerts;
    let ladder = crate::alert::Ladder {
        directory: &ctx.directory,
        modes: &cfg.rules,
        escalate_every: cfg.escalate_every,
        copies: &cfg.copies,
    };
    let mut rules: Vec<&'static str> = crate::alert::wanted(case, ev, &ladder, desk.shared.now())
        .into_iter()
        .map(|w| w.rule)
        .collect();
    rules.dedup();
    rules
}

fn rule_label(rule: &str, lang: Lang) -> String {
    crate::notify::templates::rule_label(rule, lang_code(lang)).to_string()
}

/// A case's section on a unit's page: its most urgent one, or none.
pub fn section_of(e: &EvalSummary) -> Option<&'static str> {
    if e.state == Some(State::Overdue)
        || (e.state == Some(State::Paused) && e.flags.has("supplement_after_due"))
    {
        Some("overdue")
    } else if e.flags.has("apology_due") {
        Some("apology_due")
    } else if e.state == Some(State::DueSoon) {
        Some("due_soon")
    } else if e.flags.has("step_overdue") {
        Some("step_overdue")
    } else if e.stuck {
        Some("stuck")
    } else if e.state == Some(State::Paused) {
        Some("paused")
    } else {
        None
    }
}

/// The sections of a unit's page, most urgent first.
pub const SECTIONS: [&str; 6] = [
    "overdue",
    "apology_due",
    "due_soon",
    "step_overdue",
    "stuck",
    "paused",
];

fn section_title(s: &str, lang: Lang) -> String {
    match s {
        "overdue" => pick(lang, "Quá hạn", "Overdue"),
        "apology_due" => pick(lang, "Cần văn bản xin lỗi", "Apology letter due"),
        "due_soon" => pick(lang, "Sắp đến hạn", "Due soon"),
        "step_overdue" => pick(lang, "Có bước quá hạn", "A step overdue"),
        "stuck" => pick(lang, "Chưa cập nhật tiến độ", "No progress recorded"),
        _ => pick(lang, "Tạm dừng", "Paused"),
    }
}

fn state_label(s: Option<State>, lang: Lang) -> String {
    match s {
        Some(State::NotStarted) => pick(lang, "Chưa bắt đầu", "Not started"),
        Some(State::OnTrack) => pick(lang, "Trong hạn", "On track"),
        Some(State::DueSoon) => pick(lang, "Sắp đến hạn", "Due soon"),
        Some(State::Overdue) => pick(lang, "Quá hạn", "Overdue"),
        Some(State::Paused) => pick(lang, "Tạm dừng", "Paused"),
        Some(State::NoDeadline) => pick(lang, "Không có thời hạn", "No deadline"),
        None => pick(lang, "Đã kết thúc", "Ended"),
    }
}

/// A DVCQG status code (`TrangThaiHoSo`, 1–10) as the portal names it.
fn status_label(code: u8, lang: Lang) -> String {
    let (vi, en) = match code {
        1 => ("Mới đăng ký", "submitted, not yet accepted"),
        2 => ("Được tiếp nhận", "accepted"),
        3 => ("Không được tiếp nhận", "refused at intake"),
        4 => ("Đang xử lý", "being processed"),
        5 => ("Yêu cầu bổ sung giấy tờ", "supplement requested"),
        6 => (
            "Yêu cầu thực hiện nghĩa vụ tài chính",
            "waiting for payment",
        ),
        7 => ("Công dân yêu cầu rút hồ sơ", "withdrawn"),
        8 => ("Dừng xử lý", "processing stopped"),
        9 => ("Đã xử lý xong", "result ready"),
        10 => ("Đã trả kết quả", "result handed over"),
        _ => return format!("{code}"),
    };
    pick(lang, vi, en)
}

fn kind_label(k: Kind, lang: Lang) -> String {
    match k {
        Kind::Task => pick(lang, "Nhiệm vụ", "Task"),
        Kind::Feedback => pick(lang, "Phản ánh", "Petition"),
        _ => pick(lang, "Hồ sơ", "Dossier"),
    }
}

fn badges(e: &EvalSummary, lang: Lang) -> Vec<String> {
    let mut out = Vec::new();
    if e.state == Some(State::Overdue) {
        out.push(match lang {
            Lang::Vi => format!("quá hạn {} ngày làm việc", e.overdue_workdays),
            Lang::En => format!("overdue by {} workdays", e.overdue_workdays),
        });
    }
    for (flag, vi, en) in [
        ("apology_due", "cần văn bản xin lỗi", "apology letter due"),
        ("step_overdue", "bước xử lý quá hạn", "a step is overdue"),
        (
            "supplement_after_due",
            "yêu cầu bổ sung khi đã quá hạn",
            "supplement requested after the due",
        ),
    ] {
        if e.flags.has(flag) {
            out.push(pick(lang, vi, en));
        }
    }
    if e.stuck {
        out.push(pick(lang, "chưa cập nhật tiến độ", "no progress recorded"));
    }
    out
}

fn query(t: &str, lang: Lang) -> String {
    let mut q = format!("?t={t}");
    if lang == Lang::En {
        q.push_str("&lang=en");
    }
    q
}

pub(crate) fn url_part(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The link to a case's page.
pub fn case_href(source: &str, case_id: &str, q: &str) -> String {
    format!("/desk/case/{}/{}{q}", url_part(source), url_part(case_id))
}

async fn unit_page(
    AxState(desk): AxState<Desk>,
    Path(code): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let lang = lang_of(&q);
    let scope = match desk.scope(&q, &headers, lang) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    if !scope.covers(&code) {
        return desk.outside(lang, &code);
    }
    let ctx = desk.shared.context();
    let kind = q.get("kind").and_then(|k| match k.as_str() {
        "dossier" => Some(Kind::Dossier),
        "task" => Some(Kind::Task),
        "feedback" => Some(Kind::Feedback),
        _ => None,
    });
    let field = q.get("field").cloned();
    let entries: Vec<Entry> = desk.shared.select_open(|e| {
        e.case.unit_code.as_deref() == Some(code.as_str())
            && kind.is_none_or(|k| e.case.kind == k)
            && field
                .as_ref()
                .is_none_or(|f| e.case.field_code.as_deref() == Some(f))
    });
    let mut by_state: HashMap<Option<State>, usize> = HashMap::new();
    for e in &entries {
        *by_state
            .entry(e.eval.as_ref().and_then(|v| v.state))
            .or_default() += 1;
    }
    let counts: Vec<Value> = State::ALL
        .iter()
        .filter_map(|s| {
            let n = by_state.get(&Some(*s)).copied().unwrap_or(0);
            (n > 0).then(|| {
                json!({"label": state_label(Some(*s), lang), "count": n, "urgent": *s == State::Overdue})
            })
        })
        .collect();
    let t = q.get("t").cloned().unwrap_or_default();
    let qs = query(&t, lang);
    let vi = lang == Lang::Vi;
    // What `case_item` needs of the alert settings: the language of its words.
    let words = crate::config::AlertsConfig {
        language: lang_code(lang).into(),
        ..Default::default()
    };
    // Dossiers and petitions first, assigned tasks in sections of their own.
    let mut sections = Vec::new();
    let mut tasks = Vec::new();
    for (s, task) in SECTIONS.iter().flat_map(|s| [(*s, false), (*s, true)]) {
        let mut listed: Vec<(&Entry, &EvalSummary)> = entries
            .iter()
            .filter_map(|e| Some((e, e.eval.as_ref()?)))
            .filter(|(e, v)| section_of(v) == Some(s) && (e.case.kind == Kind::Task) == task)
            .collect();
        if listed.is_empty() {
            continue;
        }
        listed.sort_by_key(|(e, v)| {
            (
                -v.overdue_workdays,
                v.due.map(|d| d.timestamp()).unwrap_or(i64::MAX),
                e.case.case_id.clone(),
            )
        });
        let cases: Vec<Value> = listed
            .iter()
            .take(PAGE_LIMIT)
            .map(|(e, v)| {
                let item = crate::alert::message::case_item(&e.case, v, &ctx, &words);
                json!({
                    "case_id": e.case.case_id,
                    "procedure": item["procedure"],
                    "short": item["short"],
                    "badges": badges(v, lang),
                    "href": case_href(&e.case.source, &e.case.case_id, &qs),
                })
            })
            .collect();
        let more = listed.len().saturating_sub(PAGE_LIMIT);
        let key = if task {
            format!("task-{s}")
        } else {
            s.to_string()
        };
        (if task { &mut tasks } else { &mut sections }).push(json!({
            "key": key,
            "title": section_title(s, lang),
            "count": listed.len(),
            "urgent": matches!(s, "overdue" | "apology_due"),
            "cases": cases,
            "more": more,
            "more_text": if vi { format!("… và {more} hồ sơ khác.") } else { format!("… and {more} more.") },
        }));
    }
    let href = |k: Option<&str>| {
        let mut h = format!("/desk/unit/{}{qs}", url_part(&code));
        if let Some(k) = k {
            h.push_str(&format!("&kind={k}"));
        }
        h
    };
    let kinds: Vec<Value> = [
        (None, pick(lang, "Tất cả", "All")),
        (Some("dossier"), pick(lang, "Hồ sơ", "Dossiers")),
        (Some("task"), pick(lang, "Nhiệm vụ", "Tasks")),
        (Some("feedback"), pick(lang, "Phản ánh", "Petitions")),
    ]
    .into_iter()
    .map(|(k, label)| {
        let on = q.get("kind").map(String::as_str) == k;
        json!({"label": label, "href": href(k), "on": on})
    })
    .collect();
    let name = ctx
        .directory
        .get(&code)
        .map(|u| u.name.clone())
        .unwrap_or_else(|| code.clone());
    desk.render(
        StatusCode::OK,
        "unit.html",
        json!({
            "lang": lang_code(lang),
            "who": scope.display_name(),
            "title": name,
            "unit": {"code": code, "name": name},
            "counts": counts,
            "kinds": kinds,
            "sections": sections,
            "tasks": tasks,
            "t": {
                "kind": pick(lang, "Loại", "Kind"),
                "nothing": pick(lang, "Không có hồ sơ nào cần chú ý.", "Nothing needs attention."),
                "tasks": pick(lang, "Nhiệm vụ được giao", "Assigned tasks"),
            },
        }),
    )
}

async fn case_page(
    AxState(desk): AxState<Desk>,
    Path((source, case_id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let lang = lang_of(&q);
    let scope = match desk.scope(&q, &headers, lang) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let found: Option<(Case, Option<EvalSummary>)> = match desk.shared.open_case(&source, &case_id)
    {
        Some(e) => Some((e.case, e.eval)),
        None => match desk.shared.store.find_case(&case_id).await {
            Ok(v) => v.into_iter().find(|(c, _)| *c.source == *source),
            Err(e) => {
                tracing::error!(error = %e, "desk: reading a case from the store");
                return desk.refused(
                    StatusCode::SERVICE_UNAVAILABLE,
                    lang,
                    pick(
                        lang,
                        "Không đọc được dữ liệu; thử lại sau.",
                        "The store could not answer; try again later.",
                    ),
                );
            }
        },
    };
    // A case outside the scope and a case that does not exist are refused alike, so a
    // link cannot probe for other units' case ids.
    let Some((case, stored)) =
        found.filter(|(c, _)| c.unit_code.as_deref().is_some_and(|u| scope.covers(u)))
    else {
        return desk.refused(
            StatusCode::FORBIDDEN,
            lang,
            pick(
                lang,
                "Đường dẫn này không mở được hồ sơ này.",
                "This link does not open this case.",
            ),
        );
    };
    let ctx = desk.shared.context();
    let cal = &ctx.calendar;
    let now = desk.shared.now();
    let fmt = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| crate::timefmt::minutes(t, cal))
            .unwrap_or_else(|| "—".into())
    };
    let trace = explain_case(&case, ctx.procedure(&case), cal, &ctx.policy, now, lang)
        .map(|(_, t)| t)
        .unwrap_or_else(|e| vec![e.to_string()]);
    let unit = case.unit_code.clone().unwrap_or_default();
    let unit_name = ctx
        .directory
        .get(&unit)
        .map(|u| u.name.clone())
        .or_else(|| case.unit_name.as_deref().map(str::to_string))
        .unwrap_or_default();
    let mut history: Vec<(chrono::DateTime<chrono::Utc>, String)> = Vec::new();
    for h in &case.status_history {
        history.push((
            h.at,
            match lang {
                Lang::Vi => format!("{} (trạng thái {})", status_label(h.status, lang), h.status),
                Lang::En => format!("{} (status {})", status_label(h.status, lang), h.status),
            },
        ));
    }
    for d in &case.due_history {
        history.push((
            d.at,
            match lang {
                Lang::Vi => format!("hạn đổi {} → {}", fmt(d.from), fmt(d.to)),
                Lang::En => format!("due moved {} → {}", fmt(d.from), fmt(d.to)),
            },
        ));
    }
    for s in &case.supplements {
        history.push((
            s.requested_at,
            match lang {
                Lang::Vi => format!("yêu cầu bổ sung; nhận đủ {}", fmt(s.resumed_at)),
                Lang::En => format!("supplement requested; received back {}", fmt(s.resumed_at)),
            },
        ));
    }
    history.sort_by_key(|(t, _)| *t);
    let store = &desk.shared.store;
    let notifications = store
        .notifications(&case.source, &case.case_id)
        .await
        .unwrap_or_default();
    let acks = store
        .acks(&case.source, &case.case_id)
        .await
        .unwrap_or_default();
    let t = q.get("t").cloned().unwrap_or_default();
    let qs = query(&t, lang);
    let ev = stored.as_ref();
    let rules: Vec<Value> = ev
        .map(|e| firing(&desk, &case, e))
        .unwrap_or_default()
        .into_iter()
        .map(|r| json!({"rule": r, "label": rule_label(r, lang)}))
        .collect();
    let secret = desk.secret.as_deref().unwrap_or_default();
    let acked = q.get("acked").map(|r| match lang {
        Lang::Vi => format!(
            "Đã ghi nhận xác nhận «{}». Cảnh báo này không nhắc lại cho hạn hiện tại.",
            rule_label(r, lang)
        ),
        Lang::En => format!(
            "Acknowledged «{}»: this alert is not repeated for the current due.",
            rule_label(r, lang)
        ),
    });
    desk.render(
        StatusCode::OK,
        "case.html",
        json!({
            "ack_form": (!rules.is_empty()).then(|| json!({
                "action": format!("{}/ack", case_href(&case.source, &case.case_id, "")),
                "t": t,
                "lang": lang_code(lang),
                "csrf": form_token(secret, &token_of(&q, &headers).unwrap_or_default()),
                "rules": rules,
                "by": scope.signature(),
            })),
            "acked": acked,
            "lang": lang_code(lang),
            "who": scope.display_name(),
            "title": case.case_id,
            "unit_href": format!("/desk/unit/{}{qs}", url_part(&unit)),
            "case": {
                "case_id": case.case_id,
                "procedure": case.procedure_name.as_deref().or(case.procedure_code.as_deref()),
                "kind_label": kind_label(case.kind, lang),
                "unit_name": unit_name,
                "state_label": state_label(ev.and_then(|e| e.state), lang),
                "urgent": ev.is_some_and(|e| e.state == Some(State::Overdue)),
                "due": ev.and_then(|e| e.due).map(|d| crate::alert::message::due_phrase(d, cal, lang == Lang::Vi)).unwrap_or_else(|| "—".into()),
                "badges": ev.map(|e| badges(e, lang)).unwrap_or_default(),
            },
            "trace": trace,
            "steps": case.steps.iter().map(|s| json!({
                "title": s.title.as_deref().unwrap_or("—"),
                "department": match (s.department.as_deref(), s.unit_code.as_deref().and_then(|u| ctx.directory.get(u))) {
                    (Some(d), Some(u)) if u.name != d => format!("{d} ({})", u.name),
                    (Some(d), _) => d.to_string(),
                    (None, Some(u)) => u.name.clone(),
                    (None, None) => "—".into(),
                },
                "started": fmt(s.started_at),
                "due": fmt(s.step_due_at),
                "acted": fmt(s.acted_at),
            })).collect::<Vec<_>>(),
            "history": history.iter().map(|(at, what)| json!({"at": crate::timefmt::minutes(*at, cal), "what": what})).collect::<Vec<_>>(),
            "notifications": notifications.iter().map(|n| json!({
                "at": crate::timefmt::minutes(n.at, cal), "rule": n.rule, "recipient": n.recipient, "status": n.status,
            })).collect::<Vec<_>>(),
            "acks": acks.iter().map(|a| json!({
                "at": crate::timefmt::minutes(a.at, cal), "rule": a.rule, "by": a.by, "note": a.note,
            })).collect::<Vec<_>>(),
            "t": {
                "due": pick(lang, "Hạn", "Due"),
                "trace": pick(lang, "Cách tính hạn", "How the due is reckoned"),
                "steps": pick(lang, "Các bước xử lý", "Steps"),
                "step": pick(lang, "Bước", "Step"),
                "department": pick(lang, "Bộ phận", "Department"),
                "started": pick(lang, "Bắt đầu", "Started"),
                "step_due": pick(lang, "Hạn bước", "Step due"),
                "acted": pick(lang, "Hoàn thành", "Done"),
                "history": pick(lang, "Diễn biến", "History"),
                "at": pick(lang, "Lúc", "At"),
                "what": pick(lang, "Nội dung", "What"),
                "notified": pick(lang, "Đã thông báo", "Who was told"),
                "rule": pick(lang, "Cảnh báo", "Alert"),
                "recipient": pick(lang, "Người nhận", "Recipient"),
                "status": pick(lang, "Tình trạng", "Status"),
                "acks": pick(lang, "Xác nhận", "Acknowledgements"),
                "by": pick(lang, "Người xác nhận", "By"),
                "note": pick(lang, "Ghi chú", "Note"),
                "ack": pick(lang, "Xác nhận đã xử lý", "Acknowledge"),
                "ack_hint": pick(lang, "Xác nhận dừng nhắc lại cảnh báo đã chọn cho hạn hiện tại; ghi rõ đã làm gì (ví dụ: đã gửi văn bản xin lỗi, Mẫu 04).", "Stops repeats of the chosen alert for the current due; say what was done (e.g. the apology letter, form 04, was sent)."),
                "ack_button": pick(lang, "Xác nhận", "Acknowledge"),
            },
        }),
    )
}

/// `POST /desk/case/…/ack` (a form: `t`, `csrf`, `rule`, `note`, `lang`): the same
/// acknowledgement as the API's, recorded with the link's person as `by`; then back
/// to the case's page, which says it was recorded.
async fn acknowledge(
    AxState(desk): AxState<Desk>,
    Path((source, case_id)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    let lang = lang_of(&form);
    let scope = match desk.scope(&form, &headers, lang) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let t = form.get("t").cloned().unwrap_or_default();
    let secret = desk.secret.as_deref().unwrap_or_default();
    let sent = form.get("csrf").map(String::as_str).unwrap_or("");
    let used = token_of(&form, &headers).unwrap_or_default();
    if !crate::http::same_secret(sent, &form_token(secret, &used)) {
        return desk.refused(
            StatusCode::FORBIDDEN,
            lang,
            pick(
                lang,
                "Biểu mẫu không hợp lệ (không gửi từ trang làm việc).",
                "The form is not valid (it was not sent from the desk).",
            ),
        );
    }
    let Some(entry) = desk
        .shared
        .open_case(&source, &case_id)
        .filter(|e| e.case.unit_code.as_deref().is_some_and(|u| scope.covers(u)))
    else {
        return desk.refused(
            StatusCode::FORBIDDEN,
            lang,
            pick(
                lang,
                "Đường dẫn này không mở được hồ sơ này.",
                "This link does not open this case.",
            ),
        );
    };
    let Some(ev) = entry.eval.as_ref() else {
        return desk.refused(
            StatusCode::BAD_REQUEST,
            lang,
            pick(
                lang,
                "Hồ sơ chưa được đánh giá.",
                "The case is not evaluated yet.",
            ),
        );
    };
    let rule = form.get("rule").map(String::as_str).unwrap_or("");
    let note = form.get("note").map(|n| n.trim()).unwrap_or("");
    let Some(rule) = firing(&desk, &entry.case, ev)
        .into_iter()
        .find(|r| *r == rule)
    else {
        return desk.refused(
            StatusCode::BAD_REQUEST,
            lang,
            pick(
                lang,
                "Cảnh báo đã chọn không còn áp dụng cho hồ sơ này.",
                "The chosen alert does not apply to this case now.",
            ),
        );
    };
    if note.is_empty() || note.chars().count() > 2000 {
        return desk.refused(
            StatusCode::BAD_REQUEST,
            lang,
            pick(
                lang,
                "Hãy ghi rõ đã làm gì (1 đến 2.000 ký tự).",
                "Say what was done (1 to 2,000 characters).",
            ),
        );
    }
    let ack = crate::store::Ack {
        source: entry.case.source.to_string(),
        case_id: entry.case.case_id.clone(),
        rule: rule.to_string(),
        due_at: ev.due,
        note: note.to_string(),
        by: scope.signature(),
        at: desk.shared.now(),
    };
    if let Err(e) = desk.shared.store.ack_add(&ack).await {
        tracing::error!(error = %e, "desk: recording an acknowledgement");
        return desk.refused(
            StatusCode::SERVICE_UNAVAILABLE,
            lang,
            pick(
                lang,
                "Không ghi được xác nhận; thử lại sau.",
                "The acknowledgement could not be recorded; try again later.",
            ),
        );
    }
    tracing::info!(source = %ack.source, case_id = %ack.case_id, rule = %ack.rule, "alert acknowledged on the desk");
    let back = format!(
        "{}&acked={rule}",
        case_href(&entry.case.source, &entry.case.case_id, &query(&t, lang))
    );
    (StatusCode::SEE_OTHER, [(header::LOCATION, back)]).into_response()
}

/// `/desk/province`: units ranked by open overdue cases and by the quarter's on-time
/// ratio (dossiers), each linking to its page; for links that cover every unit (the
/// province's head, the provincial office, an administrator).
/// The scope of a link or sign-in that covers every unit (the province's pages).
fn province_scope(
    desk: &Desk,
    q: &HashMap<String, String>,
    headers: &axum::http::HeaderMap,
    lang: Lang,
) -> Result<Scope, Box<Response>> {
    let scope = desk.scope(q, headers, lang)?;
    let ctx = desk.shared.context();
    if !ctx.directory.units().iter().all(|u| scope.covers(&u.code)) {
        return Err(Box::new(desk.refused(
            StatusCode::FORBIDDEN,
            lang,
            pick(
                lang,
                "Đường dẫn này không mở được trang toàn tỉnh.",
                "This link does not open the province's page.",
            ),
        )));
    }
    Ok(scope)
}

/// Biểu 06 of a month (`period`, default this month to date), as a page (`format`
/// html) or a file to file (`xlsx`, `csv`), for those who see the province's page.
async fn province_report(
    AxState(desk): AxState<Desk>,
    Query(q): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
) -> Response {
    use crate::report::render::ReportFormat;
    let lang = lang_of(&q);
    if let Err(r) = province_scope(&desk, &q, &headers, lang) {
        return *r;
    }
    let ctx = desk.shared.context();
    let now = desk.shared.now();
    let today = ctx.calendar.local(now).date();
    let period = match q.get("period") {
        Some(p) => match crate::report::ReportPeriod::parse(p) {
            Ok(p) => p,
            Err(e) => return desk.refused(StatusCode::BAD_REQUEST, lang, e),
        },
        None => crate::report::ReportPeriod::month_of(today),
    };
    let format = match q.get("format").map(String::as_str) {
        None => ReportFormat::Html,
        Some(f) => match ReportFormat::parse(f) {
            Some(ReportFormat::Json) | None => {
                return desk.refused(
                    StatusCode::BAD_REQUEST,
                    lang,
                    pick(
                        lang,
                        "Định dạng: html, xlsx hoặc csv.",
                        "Format: html, xlsx or csv.",
                    ),
                )
            }
            Some(f) => f,
        },
    };
    let req = crate::jobs::report::TthcRequest {
        period,
        by: crate::report::tthc::By::Unit,
        unit: None,
        kind: crate::sla::model::Kind::Dossier,
        options: Default::default(),
    };
    let report = match crate::jobs::report::tthc(desk.shared.store.as_ref(), &ctx, &req, now).await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "desk report failed");
            return desk.refused(
                StatusCode::SERVICE_UNAVAILABLE,
                lang,
                pick(
                    lang,
                    "Chưa lập được báo cáo; thử lại sau.",
                    "The report could not be made; try again later.",
                ),
            );
        }
    };
    match crate::http::reports::response(&report, &ctx.calendar, format) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "desk report failed");
            desk.refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                lang,
                "internal error".into(),
            )
        }
    }
}

async fn province_page(
    AxState(desk): AxState<Desk>,
    Query(q): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let lang = lang_of(&q);
    let scope = match province_scope(&desk, &q, &headers, lang) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let t = q.get("t").cloned().unwrap_or_default();
    let qs = query(&t, lang);
    let summaries = desk.shared.unit_summaries();
    let percent = |v: f64| {
        let p = format!("{:.1}%", v * 100.0);
        if lang == Lang::Vi {
            p.replace('.', ",")
        } else {
            p
        }
    };
    let rows: Vec<Value> = summaries
        .iter()
        .filter(|u| u.unit != crate::metrics::UNKNOWN_UNIT)
        .map(|u| {
            let sum = |state: &str| -> i64 {
                u.kinds
                    .values()
                    .map(|k| k.open.get(state).copied().unwrap_or(0))
                    .sum()
            };
            let open: i64 = u.kinds.values().map(|k| k.open.values().sum::<i64>()).sum();
            let r = u
                .kinds
                .get("dossier")
                .and_then(|k| k.on_time.get("quarter"))
                .copied()
                .unwrap_or_default();
            json!({
                "unit": u.unit,
                "name": u.name,
                "href": format!("/desk/unit/{}{qs}", url_part(&u.unit)),
                "overdue": sum("overdue"),
                "due_soon": sum("due_soon"),
                "open": open,
                "ratio_value": r.ratio,
                "ratio": r.ratio.map(percent).unwrap_or_else(|| "—".into()),
                "on_time": r.on_time,
                "population": r.population,
            })
        })
        .collect();
    let mut by_overdue: Vec<Value> = rows
        .iter()
        .filter(|r| r["open"].as_i64().unwrap_or(0) > 0)
        .cloned()
        .collect();
    by_overdue.sort_by_key(|r| {
        (
            -r["overdue"].as_i64().unwrap_or(0),
            -r["open"].as_i64().unwrap_or(0),
            r["name"].as_str().unwrap_or("").to_string(),
        )
    });
    let mut by_ratio: Vec<Value> = rows
        .iter()
        .filter(|r| r["ratio_value"].is_number())
        .cloned()
        .collect();
    by_ratio.sort_by(|a, b| {
        a["ratio_value"]
            .as_f64()
            .partial_cmp(&b["ratio_value"].as_f64())
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a["name"].as_str().cmp(&b["name"].as_str()))
    });
    let today = desk
        .shared
        .context()
        .calendar
        .local(desk.shared.now())
        .date();
    let this = crate::report::ReportPeriod::month_of(today).label;
    let last = crate::report::ReportPeriod::previous_month(today).label;
    let link = |p: &str, f: &str| format!("/desk/province/report{qs}&period={p}&format={f}");
    let reports = json!([
        {"label": pick(lang, &format!("Tháng {} (đến nay)", month_words(&this)), &format!("{this} (to date)")),
         "html": link(&this, "html"), "xlsx": link(&this, "xlsx")},
        {"label": pick(lang, &format!("Tháng {}", month_words(&last)), &last),
         "html": link(&last, "html"), "xlsx": link(&last, "xlsx")},
    ]);
    desk.render(
        StatusCode::OK,
        "province.html",
        json!({
            "lang": lang_code(lang),
            "who": scope.display_name(),
            "title": pick(lang, "Toàn tỉnh", "The province"),
            "by_overdue": by_overdue,
            "by_ratio": by_ratio,
            "reports": reports,
            "t": {
                "reports": pick(lang, "Biểu 06 (Thông tư 01/2020/TT-VPCP) và chỉ số 2.1", "Biểu 06 (Circular 01/2020/TT-VPCP) and indicator 2.1"),
                "view": pick(lang, "Xem", "View"),
                "period": pick(lang, "Hồ sơ đang mở theo đơn vị; tỷ lệ đúng hạn (chỉ số 2.1, Quyết định 766) của quý này, hồ sơ TTHC.", "Open cases by unit; the quarter's on-time ratio (indicator 2.1, Decision 766), dossiers."),
                "by_overdue": pick(lang, "Xếp theo số hồ sơ quá hạn", "By open overdue cases"),
                "by_ratio": pick(lang, "Xếp theo tỷ lệ đúng hạn, thấp nhất trước", "By on-time ratio, lowest first"),
                "unit": pick(lang, "Đơn vị", "Unit"),
                "overdue": pick(lang, "Quá hạn", "Overdue"),
                "due_soon": pick(lang, "Sắp đến hạn", "Due soon"),
                "open": pick(lang, "Đang giải quyết", "Open"),
                "ratio": pick(lang, "Tỷ lệ đúng hạn", "On time"),
                "on_time": pick(lang, "Đúng hạn / tổng", "On time / all"),
            },
        }),
    )
}

/// `2026-11` as "11/2026".
fn month_words(label: &str) -> String {
    match label.split_once('-') {
        Some((y, m)) => format!("{m}/{y}"),
        None => label.to_string(),
    }
}

fn login_context(lang: Lang, message: Option<String>) -> Value {
    json!({
        "lang": lang_code(lang),
        "who": null,
        "title": pick(lang, "Đăng nhập quản trị", "Administrator sign-in"),
        "hint": pick(lang, "Nhập mã API của hệ thống (biến môi trường SLAWATCH_API_TOKEN).", "Enter the system's API token (the SLAWATCH_API_TOKEN environment variable)."),
        "button": pick(lang, "Đăng nhập", "Sign in"),
        "message": message,
    })
}

async fn login_page(
    AxState(desk): AxState<Desk>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let lang = lang_of(&q);
    desk.render(StatusCode::OK, "login.html", login_context(lang, None))
}

/// `POST /desk/login` (`token`): the API token opens a session over every unit, kept in
/// an HttpOnly, SameSite=Strict cookie for twelve hours.
async fn login(
    AxState(desk): AxState<Desk>,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    let lang = lang_of(&form);
    let (Some(secret), Some(expected)) = (desk.secret.as_deref(), desk.api_token.as_deref()) else {
        return desk.refused(
            StatusCode::SERVICE_UNAVAILABLE,
            lang,
            pick(
                lang,
                "Chưa cài đặt mã API hoặc khóa ký đường dẫn: không đăng nhập được.",
                "No API token or signing secret is set: sign-in is not available.",
            ),
        );
    };
    let given = form.get("token").map(|t| t.trim()).unwrap_or("");
    if !crate::http::same_secret(given, expected) {
        tracing::warn!("desk: a sign-in with a wrong token");
        return desk.render(
            StatusCode::FORBIDDEN,
            "login.html",
            login_context(
                lang,
                Some(pick(lang, "Mã không đúng.", "The token is not right.")),
            ),
        );
    }
    let ctx = desk.shared.context();
    let scope = Scope {
        who: "admin".into(),
        name: pick(lang, "Quản trị viên", "Administrator"),
        units: ctx
            .directory
            .units()
            .iter()
            .map(|u| u.code.clone())
            .collect(),
        expires: desk.shared.now().timestamp() + SESSION_SECONDS,
    };
    let cookie = format!(
        "{SESSION}={}; Path=/desk; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECONDS}",
        token::sign(&scope, secret)
    );
    let to = if lang == Lang::En {
        "/desk/province?lang=en"
    } else {
        "/desk/province"
    };
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, to.to_string()),
        ],
    )
        .into_response()
}
