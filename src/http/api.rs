//! The JSON API under `/api/v1` (SPEC §8), described in `openapi.yaml` at the
//! repository's root.
//!
//! Open cases are answered from memory (the daemon holds them all); one case that is
//! not open is read from the store. Times are RFC 3339 with the calendar's offset
//! (`+07:00`). Nothing here returns applicant identity: no names, no ID numbers, no
//! raw bodies except quarantined ones with the applicant's fields redacted.
//!
//! A bearer token, when one is configured (from the environment), guards every route
//! under `/api/v1` except the push endpoint, which has the portal's own scheme.
//! Errors are `{"error": message}`; a store failure is logged with its cause and
//! answered with a plain message.

use crate::sla::explain::{explain_case, Lang};
use crate::sla::model::Case;
use crate::sla::State;
use crate::state::{Entry, Shared};
use crate::store::{Ack, EvalSummary, StoreError};
use crate::timefmt::rfc3339;
use axum::extract::{Path, Query, Request, State as AxState};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Largest page of a list.
pub const MAX_LIMIT: usize = 1000;
const DEFAULT_LIMIT: usize = 100;
/// Largest offset into a list.
pub const MAX_OFFSET: usize = 1_000_000;

/// The alert rules a case's alert can be acknowledged for (SPEC §10).
pub const ACK_RULES: [&str; 6] = [
    "due_soon",
    "apology_due",
    "overdue",
    "escalated",
    "stuck",
    "step_overdue",
];

/// An API error: the status and a message safe to show.
#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    NotFound(String),
    Unauthorized,
    Store(StoreError),
    /// A bug or a panic behind the request: logged, answered with a plain message.
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Store(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "a valid bearer token is required".to_string(),
            ),
            ApiError::Internal(e) => {
                tracing::error!(error = %e, "API request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error".to_string(),
                )
            }
            ApiError::Store(e) => {
                tracing::error!(error = %e, "API request failed in the store");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the store could not answer; try again later".to_string(),
                )
            }
        };
        let mut r = (status, Json(json!({ "error": message }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        r
    }
}

#[derive(Clone)]
pub(super) struct Api {
    pub(super) shared: Arc<Shared>,
    token: Option<Arc<str>>,
    /// One scan of the open cases (or one report) at a time.
    pub(super) scans: Arc<tokio::sync::Semaphore>,
}

/// The `/api/v1` routes (without the push endpoint), guarded by `token` when set.
pub fn routes(shared: Arc<Shared>, token: Option<String>) -> Router {
    let api = Api {
        shared,
        token: token.filter(|t| !t.is_empty()).map(Arc::from),
        scans: Arc::new(tokio::sync::Semaphore::new(1)),
    };
    Router::new()
        .route("/api/v1/cases", get(list_cases))
        .route("/api/v1/cases/{case_id}", get(one_case))
        .route("/api/v1/cases/{case_id}/ack", post(acknowledge))
        .route("/api/v1/cases/{case_id}/notifications", get(notifications))
        .route("/api/v1/units", get(units))
        .route("/api/v1/units/{code}", get(one_unit))
        .route("/api/v1/quarantine", get(quarantine))
        .route("/api/v1/sources", get(sources))
        .route("/api/v1/reports/tthc", get(super::reports::tthc))
        .route_layer(axum::middleware::from_fn_with_state(api.clone(), auth))
        .with_state(api)
}

async fn auth(AxState(api): AxState<Api>, req: Request, next: Next) -> Response {
    if let Some(want) = &api.token {
        let given = req
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or("");
        if !super::same_secret(want, given) {
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(req).await
}

/// Query parameters, checked by hand so every mistake gets a precise message.
pub(super) struct Params {
    map: HashMap<String, String>,
}

impl Params {
    pub(super) fn new(map: HashMap<String, String>, allowed: &[&str]) -> Result<Params, ApiError> {
        let mut unknown: Vec<&str> = map
            .keys()
            .map(String::as_str)
            .filter(|k| !allowed.contains(k))
            .collect();
        if !unknown.is_empty() {
            unknown.sort_unstable();
            return Err(ApiError::BadRequest(format!(
                "unknown query parameter(s): {}; allowed: {}",
                unknown.join(", "),
                allowed.join(", ")
            )));
        }
        Ok(Params { map })
    }

    pub(super) fn text(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    pub(super) fn one_of(
        &self,
        key: &str,
        allowed: &[&'static str],
    ) -> Result<Option<&'static str>, ApiError> {
        match self.text(key) {
            None => Ok(None),
            Some(v) => allowed
                .iter()
                .find(|a| **a == v)
                .copied()
                .map(Some)
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "`{key}` must be one of {}, not `{v}`",
                        allowed.join(", ")
                    ))
                }),
        }
    }

    pub(super) fn number(
        &self,
        key: &str,
        default: usize,
        min: usize,
        max: usize,
    ) -> Result<usize, ApiError> {
        match self.text(key) {
            None => Ok(default),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::BadRequest(format!(
                    "`{key}` must be a whole number from {min} to {max}, not `{v}`"
                ))),
            },
        }
    }

    pub(super) fn flag(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.text(key) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(v) => Err(ApiError::BadRequest(format!(
                "`{key}` must be true or false, not `{v}`"
            ))),
        }
    }

    fn lang(&self) -> Result<Lang, ApiError> {
        Ok(match self.one_of("lang", &["vi", "en"])? {
            Some("en") => Lang::En,
            _ => Lang::Vi,
        })
    }
}

const STATES: [&str; 6] = [
    "not_started",
    "on_track",
    "due_soon",
    "overdue",
    "paused",
    "no_deadline",
];
const KINDS: [&str; 3] = ["dossier", "task", "feedback"];
const FLAGS: [&str; 8] = [
    "late_supplement_request",
    "multiple_supplements",
    "apology_due",
    "reappointed_twice",
    "due_beyond_legal",
    "step_overdue",
    "returned_late",
    "supplement_after_due",
];
const SORTS: [&str; 4] = ["urgency", "due", "received", "id"];

/// Most urgent first: overdue (oldest first), then due soon, on track, not started by
/// due; paused and no-deadline cases last.
fn urgency(e: &Entry) -> (u8, i64, i64) {
    let eval = e.eval.as_ref();
    let rank = match eval.and_then(|e| e.state).map(State::as_str) {
        Some("overdue") => 0,
        Some("due_soon") => 1,
        Some("on_track") => 2,
        Some("not_started") => 3,
        Some("paused") => 4,
        _ => 5,
    };
    let age = -(eval.map(|e| e.overdue_workdays).unwrap_or(0) as i64);
    let due = eval
        .and_then(|e| e.due)
        .map(|d| d.timestamp())
        .unwrap_or(i64::MAX);
    (rank, age, due)
}

fn at(t: Option<DateTime<Utc>>, cal: &crate::calendar::Calendar) -> Value {
    t.map(|t| Value::String(rfc3339(t, cal)))
        .unwrap_or(Value::Null)
}

fn flags_of(e: Option<&EvalSummary>) -> Vec<&str> {
    e.map(|e| e.flags.names().collect()).unwrap_or_default()
}

fn summary_json(
    c: &Case,
    e: Option<&EvalSummary>,
    open: bool,
    cal: &crate::calendar::Calendar,
) -> Value {
    json!({
        "source": &*c.source,
        "case_id": c.case_id,
        "kind": c.kind.as_str(),
        "procedure_code": c.procedure_code.as_deref(),
        "procedure_name": c.procedure_name.as_deref(),
        "unit": c.unit_code.as_deref(),
        "unit_name": c.unit_name.as_deref(),
        "status": c.status,
        "open": open,
        "received_at": at(c.received_at, cal),
        "due_at": at(e.and_then(|e| e.due), cal),
        "calendar_estimated": e.is_some_and(|e| e.calendar_estimated),
        "state": e.and_then(|e| e.state),
        "outcome": e.and_then(|e| e.outcome),
        "stuck": e.is_some_and(|e| e.stuck),
        "flags": flags_of(e),
        "overdue_workdays": e.map(|e| e.overdue_workdays).unwrap_or(0),
        "evaluated_at": at(e.map(|e| e.evaluated_at), cal),
    })
}

async fn list_cases(
    AxState(api): AxState<Api>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    if q.contains_key("finished_from") || q.contains_key("finished_to") || q.contains_key("outcome")
    {
        return finished_cases(&api, q).await;
    }
    let p = Params::new(
        q,
        &[
            "unit",
            "state",
            "flag",
            "kind",
            "procedure",
            "source",
            "stuck",
            "sort",
            "limit",
            "offset",
        ],
    )?;
    let state = p.one_of("state", &STATES)?;
    let kind = p.one_of("kind", &KINDS)?;
    let flag = p.one_of("flag", &FLAGS)?;
    let sort = p.one_of("sort", &SORTS)?.unwrap_or("urgency");
    let stuck = p.flag("stuck")?;
    let limit = p.number("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)?;
    let offset = p.number("offset", 0, 0, MAX_OFFSET)?;
    let unit = p.text("unit").map(str::to_string);
    let procedure = p.text("procedure").map(str::to_string);
    let source = p.text("source").map(str::to_string);
    // The scan runs on the blocking pool, one at a time, so scrapes and ingest keep
    // the async workers (and a core) however many list calls arrive.
    let _turn = api.scans.acquire().await.expect("scan semaphore");
    let shared = api.shared.clone();
    let (total, page) = tokio::task::spawn_blocking(move || {
        let (unit, procedure, source) = (unit.as_deref(), procedure.as_deref(), source.as_deref());
        scan(&shared, sort, offset, limit, |e: &Entry| {
            let c = &e.case;
            let ev = e.eval.as_ref();
            unit.is_none_or(|u| match c.unit_code.as_deref() {
                Some(code) => code == u,
                None => u == crate::metrics::UNKNOWN_UNIT,
            }) && state.is_none_or(|s| ev.and_then(|e| e.state).map(State::as_str) == Some(s))
                && kind.is_none_or(|k| c.kind.as_str() == k)
                && flag.is_none_or(|f| flags_of(ev).contains(&f))
                && procedure.is_none_or(|pc| c.procedure_code.as_deref() == Some(pc))
                && source.is_none_or(|s| &*c.source == s)
                && stuck.is_none_or(|s| ev.is_some_and(|e| e.stuck) == s)
        })
    })
    .await
    .map_err(|e| ApiError::Internal(format!("case scan failed: {e}")))?;
    Ok(Json(json!({
        "total": total,
        "limit": limit,
        "offset": offset,
        "items": page,
    })))
}

/// Cases that ended between two days (both included, local), from the store, in
/// order of their end: `finished_from`, `finished_to` (YYYY-MM-DD or dd/MM/yyyy; one
/// alone runs from the beginning or to now), `outcome`, and the list's filters.
async fn finished_cases(api: &Api, q: HashMap<String, String>) -> Result<Json<Value>, ApiError> {
    let p = Params::new(
        q,
        &[
            "finished_from",
            "finished_to",
            "outcome",
            "unit",
            "flag",
            "kind",
            "procedure",
            "source",
            "state",
            "stuck",
            "sort",
            "limit",
            "offset",
        ],
    )?;
    // An ended case has no state and is never stuck: asking for one selects none.
    // Finished cases come in the order of their end whatever `sort` says.
    // Both checked, so a bad value is refused whatever the other says.
    let (state, stuck) = (p.one_of("state", &STATES)?, p.flag("stuck")?);
    let none_wanted = state.is_some() || stuck == Some(true);
    p.one_of("sort", &SORTS)?;
    let ctx = api.shared.context();
    let cal = ctx.calendar.clone();
    let day = |key: &str| -> Result<Option<DateTime<Utc>>, ApiError> {
        p.text(key)
            .map(|v| {
                crate::jobs::report::parse_day(v)
                    .map_err(|e| ApiError::BadRequest(format!("`{key}`: {e}")))
            })
            .transpose()
            .map(|d| d.map(|d| cal.instant(d.and_hms_opt(0, 0, 0).expect("midnight"))))
    };
    let from = day("finished_from")?.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    let to = match day("finished_to")? {
        Some(d) => d + chrono::Duration::days(1),
        None => api.shared.now(),
    };
    let outcome = p.one_of("outcome", &["early", "on_time", "late"])?;
    let kind = p.one_of("kind", &KINDS)?;
    let flag = p.one_of("flag", &FLAGS)?;
    let limit = p.number("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)?;
    let offset = p.number("offset", 0, 0, MAX_OFFSET)?;
    let (unit, procedure, source) = (p.text("unit"), p.text("procedure"), p.text("source"));
    let _turn = api.scans.acquire().await.expect("scan semaphore");
    let mut total = 0usize;
    let mut page = Vec::new();
    let (from, to) = if none_wanted || to <= from {
        (from, from)
    } else {
        (from, to)
    };
    api.shared
        .store
        .load_ended_each(from, to, &mut |c, e| {
            let ev = e.as_ref();
            let keep = unit.is_none_or(|u| match c.unit_code.as_deref() {
                Some(code) => code == u,
                None => u == crate::metrics::UNKNOWN_UNIT,
            }) && kind.is_none_or(|k| c.kind.as_str() == k)
                && outcome
                    .is_none_or(|o| ev.and_then(|e| e.outcome).map(|x| x.as_str()) == Some(o))
                && flag.is_none_or(|f| flags_of(ev).contains(&f))
                && procedure.is_none_or(|pc| c.procedure_code.as_deref() == Some(pc))
                && source.is_none_or(|s| &*c.source == s);
            if keep {
                if total >= offset && page.len() < limit {
                    let mut v = summary_json(&c, ev, false, &cal);
                    v["ended_at"] = at(ev.and_then(|e| e.ended_at), &cal);
                    v["on_time_766"] = json!(ev.and_then(|e| e.on_time));
                    page.push(v);
                }
                total += 1;
            }
        })
        .await?;
    Ok(Json(json!({
        "total": total,
        "limit": limit,
        "offset": offset,
        "finished_from": at(Some(from), &cal),
        "finished_before": at(Some(to), &cal),
        "items": page,
    })))
}

/// A selected case with its sort key and id.
type Hit<'a> = ((u8, i64, i64), &'a str, &'a str, &'a Entry);

/// The page `offset..offset + limit` of the open cases `keep` selects, in `sort`
/// order, and how many there are.
fn scan(
    shared: &Shared,
    sort: &str,
    offset: usize,
    limit: usize,
    keep: impl Fn(&Entry) -> bool,
) -> (usize, Vec<Value>) {
    let cal = shared.context().calendar.clone();
    // Under the lock: filter, compute each hit's sort key once, select the first
    // `offset + limit` in linear time, sort only those, render only the page.
    shared.with_open(|open| {
        let key = |e: &Entry| -> (u8, i64, i64) {
            let due = e.eval.as_ref().and_then(|v| v.due).map(|d| d.timestamp());
            match sort {
                "due" => (due.is_none() as u8, due.unwrap_or(i64::MAX), 0),
                "received" => {
                    let r = e.case.received_at.map(|r| r.timestamp());
                    (r.is_some() as u8, r.unwrap_or(i64::MIN), 0)
                }
                "id" => (0, 0, 0),
                _ => urgency(e),
            }
        };
        let mut hits: Vec<Hit> = open
            .filter(|e| keep(e))
            .map(|e| (key(e), &*e.case.source, e.case.case_id.as_str(), e))
            .collect();
        let total = hits.len();
        let end = offset.saturating_add(limit).min(total);
        if offset >= total {
            return (total, Vec::new());
        }
        let order = |a: &Hit, b: &Hit| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2));
        if end < total {
            hits.select_nth_unstable_by(end, order);
            hits.truncate(end);
        }
        hits.sort_unstable_by(order);
        let page: Vec<Value> = hits[offset..]
            .iter()
            .map(|(_, _, _, e)| summary_json(&e.case, e.eval.as_ref(), true, &cal))
            .collect();
        (total, page)
    })
}

/// Finds a case: open ones in memory, then the store. `source` picks among cases
/// of several sources sharing an id.
async fn find(
    api: &Api,
    case_id: &str,
    source: Option<&str>,
) -> Result<(Case, Option<EvalSummary>, bool), ApiError> {
    if let Some(src) = source {
        if let Some(e) = api.shared.open_case(src, case_id) {
            return Ok((e.case, e.eval, true));
        }
    } else if let Some(e) = api
        .shared
        .select_open(|e| e.case.case_id == case_id)
        .into_iter()
        .min_by(|a, b| a.case.source.cmp(&b.case.source))
    {
        return Ok((e.case, e.eval, true));
    }
    let found = api.shared.store.find_case(case_id).await?;
    found
        .into_iter()
        .find(|(c, _)| source.is_none_or(|s| &*c.source == s))
        .map(|(c, e)| {
            let open = e.as_ref().is_some_and(|e| e.state.is_some());
            (c, e, open)
        })
        .ok_or_else(|| ApiError::NotFound(format!("no case `{case_id}`")))
}

async fn one_case(
    AxState(api): AxState<Api>,
    Path(case_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let p = Params::new(q, &["source", "lang"])?;
    let lang = p.lang()?;
    let (case, stored, open) = find(&api, &case_id, p.text("source")).await?;
    let ctx = api.shared.context();
    let cal = &ctx.calendar;
    let proc = ctx.procedure(&case);
    let now = api.shared.now();
    let (trace, evaluation) = match explain_case(&case, proc, cal, &ctx.policy, now, lang) {
        Ok((e, trace)) => (
            trace,
            json!({
                "state": e.state.map(State::as_str),
                "outcome": e.outcome.map(|o| o.as_str()),
                "stuck": e.stuck,
                "flags": e.flags.names().collect::<Vec<_>>(),
                "start": at(e.start, cal),
                "due_at": at(e.due, cal),
                "legal_due_at": at(e.legal_due, cal),
                "ended_at": at(e.end, cal),
                "overdue_workdays": e.overdue_workdays,
                "used_work_seconds": e.used_work_seconds,
                "remaining_work_seconds": e.remaining_work_seconds,
                "paused_work_seconds": e.paused_work_seconds,
                "calendar_version": e.calendar.to_string(),
                "calendar_estimated": e.calendar_estimated,
            }),
        ),
        Err(e) => (vec![format!("{e}")], Value::Null),
    };
    let versions = api
        .shared
        .store
        .versions(&case.source, &case.case_id)
        .await?
        .len();
    Ok(Json(json!({
        "case": summary_json(&case, stored.as_ref(), open, cal),
        "evaluation": evaluation,
        "trace": trace,
        "lang": match lang { Lang::Vi => "vi", Lang::En => "en" },
        "history": {
            "statuses": case.status_history.iter().map(|h| json!({
                "at": rfc3339(h.at, cal), "status": h.status, "approximate": h.approximate,
            })).collect::<Vec<_>>(),
            "dues": case.due_history.iter().map(|d| json!({
                "at": rfc3339(d.at, cal), "from": at(d.from, cal), "to": at(d.to, cal), "cause": d.cause,
            })).collect::<Vec<_>>(),
            "supplements": case.supplements.iter().map(|s| json!({
                "requested_at": rfc3339(s.requested_at, cal), "resumed_at": at(s.resumed_at, cal),
            })).collect::<Vec<_>>(),
            "steps": case.steps.iter().map(|s| json!({
                "title": s.title.as_deref(), "department": s.department.as_deref(),
                "unit": s.unit_code.as_deref(), "started_at": at(s.started_at, cal),
                "acted_at": at(s.acted_at, cal), "due_at": at(s.step_due_at, cal),
            })).collect::<Vec<_>>(),
            "versions": versions,
        },
    })))
}

async fn acknowledge(
    AxState(api): AxState<Api>,
    Path(case_id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not JSON: {e}")))?;
    let Some(obj) = v.as_object() else {
        return Err(ApiError::BadRequest(
            "the body must be an object {rule, note, by}".into(),
        ));
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !["rule", "note", "by", "source"].contains(&k.as_str()))
    {
        return Err(ApiError::BadRequest(format!(
            "unknown field `{k}`; allowed: rule, note, by, source"
        )));
    }
    let text = |k: &str, max: usize| -> Result<String, ApiError> {
        match obj.get(k) {
            Some(Value::String(s)) if !blank_trim(s).is_empty() && s.chars().count() <= max => {
                Ok(blank_trim(s).to_string())
            }
            Some(Value::String(_)) => Err(ApiError::BadRequest(format!(
                "`{k}` must be 1 to {max} characters"
            ))),
            _ => Err(ApiError::BadRequest(format!(
                "`{k}` (a string) is required"
            ))),
        }
    };
    let rule = text("rule", 40)?;
    if !ACK_RULES.contains(&rule.as_str()) {
        return Err(ApiError::BadRequest(format!(
            "`rule` must be one of {}, not `{rule}`",
            ACK_RULES.join(", ")
        )));
    }
    let note = text("note", 2000)?;
    let by = text("by", 200)?;
    let source = match obj.get("source") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ApiError::BadRequest("`source` must be a string".into())),
    };
    let (case, stored, _) = find(&api, &case_id, source.as_deref()).await?;
    let ack = Ack {
        source: case.source.to_string(),
        case_id: case.case_id.clone(),
        rule,
        due_at: stored.as_ref().and_then(|e| e.due),
        note,
        by,
        at: api.shared.now(),
    };
    api.shared.store.ack_add(&ack).await?;
    let cal = api.shared.context().calendar.clone();
    tracing::info!(source = %ack.source, case_id = %ack.case_id, rule = %ack.rule, "alert acknowledged");
    Ok((StatusCode::CREATED, Json(ack_json(&ack, &cal))).into_response())
}

/// `s` without the blanks at either end, blank as the description's `\S` pattern
/// means it (ECMAScript's white space and line terminators), so the server and the
/// description agree on which notes are empty.
fn blank_trim(s: &str) -> &str {
    s.trim_matches(|c: char| {
        matches!(
            c,
            '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
                ..='\u{200a}'
                    | '\u{2028}'
                    | '\u{2029}'
                    | '\u{202f}'
                    | '\u{205f}'
                    | '\u{3000}'
                    | '\u{feff}'
        )
    })
}

fn ack_json(a: &Ack, cal: &crate::calendar::Calendar) -> Value {
    json!({
        "source": a.source, "case_id": a.case_id, "rule": a.rule,
        "due_at": at(a.due_at, cal), "note": a.note, "by": a.by, "at": rfc3339(a.at, cal),
    })
}

async fn notifications(
    AxState(api): AxState<Api>,
    Path(case_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let p = Params::new(q, &["source"])?;
    let (case, _, _) = find(&api, &case_id, p.text("source")).await?;
    let cal = api.shared.context().calendar.clone();
    let log = api
        .shared
        .store
        .notifications(&case.source, &case.case_id)
        .await?;
    let acks = api.shared.store.acks(&case.source, &case.case_id).await?;
    let unsent = api.shared.store.unsent(&case.source, &case.case_id).await?;
    Ok(Json(json!({
        "source": &*case.source,
        "case_id": case.case_id,
        "notifications": log.iter().map(|n| json!({
            "at": rfc3339(n.at, &cal), "rule": n.rule, "level": n.level, "recipient": n.recipient,
            "channel": n.channel, "status": n.status, "message_id": n.message_id,
        })).collect::<Vec<_>>(),
        "unsent": unsent.iter().map(|u| json!({
            "rule": u.rule, "level": u.level, "recipient": u.recipient, "status": u.status,
            "attempts": u.attempts, "next_attempt_at": rfc3339(u.next_attempt_at, &cal),
            "last_error": u.last_error, "message_id": u.message_id,
        })).collect::<Vec<_>>(),
        "acknowledgements": acks.iter().map(|a| ack_json(a, &cal)).collect::<Vec<_>>(),
    })))
}

async fn units(
    AxState(api): AxState<Api>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let p = Params::new(q, &["kind"])?;
    let kind = p.one_of("kind", &KINDS)?;
    let all = api.shared.unit_summaries();
    let items: Vec<Value> = all
        .iter()
        .map(|u| {
            let mut v = serde_json::to_value(u).unwrap_or(Value::Null);
            if let (Some(k), Some(kinds)) =
                (kind, v.get_mut("kinds").and_then(Value::as_object_mut))
            {
                kinds.retain(|name, _| name == k);
            }
            v
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

async fn one_unit(
    AxState(api): AxState<Api>,
    Path(code): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    Params::new(q, &[])?;
    let all = api.shared.unit_summaries();
    let u = all
        .iter()
        .find(|u| u.unit == code)
        .ok_or_else(|| ApiError::NotFound(format!("no unit `{code}`")))?;
    Ok(Json(serde_json::to_value(u).unwrap_or(Value::Null)))
}

async fn quarantine(
    AxState(api): AxState<Api>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let p = Params::new(q, &["source", "resolved", "limit"])?;
    let limit = p.number("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)?;
    let resolved = p.flag("resolved")?.unwrap_or(false);
    let rows = api
        .shared
        .store
        .quarantine_list(p.text("source"), resolved, limit as i64)
        .await?;
    let cal = api.shared.context().calendar.clone();
    let counts = api.shared.store.quarantine_counts().await?;
    Ok(Json(json!({
        "unresolved": counts.iter().map(|(s, n)| json!({"source": s, "count": n})).collect::<Vec<_>>(),
        "items": rows.iter().map(|r| {
            let body = match serde_json::from_str::<Value>(&r.body) {
                Ok(v) => crate::source::normalize::redact(&v),
                Err(_) => Value::String(crate::source::normalize::redact_text(&r.body)),
            };
            json!({
                "id": r.id, "source": r.source, "case_id": r.case_id,
                "received_at": rfc3339(r.received_at, &cal), "reason": r.reason,
                "retried_at": at(r.retried_at, &cal), "resolved": r.resolved,
                "resolution": r.resolution, "body": body,
            })
        }).collect::<Vec<_>>(),
    })))
}

async fn sources(
    AxState(api): AxState<Api>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    Params::new(q, &[])?;
    let cal = api.shared.context().calendar.clone();
    let items: Vec<Value> = api
        .shared
        .health()
        .iter()
        .map(|h| {
            json!({
                "name": h.name, "kind": h.kind, "up": h.up,
                "last_poll": at(h.last_poll, &cal), "last_success": at(h.last_success, &cal),
                "last_error": h.last_error, "consecutive_failures": h.consecutive_failures,
                "last_records": h.last_records, "cursor": h.cursor,
                "clock_skew_seconds": h.clock_skew_seconds, "clock_warning": h.clock_warning,
                "first_poll_warning": h.first_poll_warning,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

#[cfg(test)]
mod tests {
    use super::blank_trim;

    #[test]
    fn blank_is_what_the_description_calls_blank() {
        assert_eq!(
            blank_trim("  Đã gửi phiếu xin lỗi\n"),
            "Đã gửi phiếu xin lỗi"
        );
        // Ideographic space and no-break space are blank in ECMAScript's `\s`.
        assert_eq!(blank_trim("\u{3000}\u{a0}"), "");
        // NEL (U+0085) is not: such a note is kept, as the description accepts it.
        assert_eq!(blank_trim("\u{85}"), "\u{85}");
    }
}
