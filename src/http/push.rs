//! The DVCQG push protocol (SPEC §5): the national portal's own, so a vendor can point
//! its existing sync at slawatch. `POST /api/v1/ingest/dvcqg/login` with
//! `{"username","password"}` gives `{"error_code":"0","session":…}`;
//! `POST /api/v1/ingest/dvcqg` takes the envelope
//! `{"session","madonvi","service":"DongBoHoSoMC"|"CapNhatTienDoHoSoMC","data":[…]}`
//! or, with `Authorization: Bearer <token>`, a bare JSON array. Answers are
//! `{"error_code":"0","message":…}`. Push is off unless credentials are configured
//! (from the environment). Records go through [`crate::ingest`], one delivery at a
//! time per source.

use super::same_secret;
use crate::ingest::{ingest, Delivery};
use crate::source::normalize::Mapping;
use crate::source::{RawRecord, SourceConfig};
use crate::state::Shared;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Clone)]
struct PushState {
    shared: Arc<Shared>,
    push: Arc<Vec<PushSource>>,
    sessions: Sessions,
}

/// The push endpoints for the configured push sources.
pub(super) fn routes(shared: Arc<Shared>, push: Vec<(SourceConfig, Mapping)>) -> Router {
    let push: Vec<PushSource> = push
        .into_iter()
        .map(|(cfg, mapping)| PushSource {
            name: cfg.name.clone(),
            mapping,
            username: cfg.username.clone(),
            password: env_secret(&cfg.secret_env),
            token: env_secret(&cfg.token_env),
            lock: tokio::sync::Mutex::new(()),
        })
        .collect();
    for p in &push {
        if p.password.is_none() && p.token.is_none() {
            tracing::warn!(source = %p.name, "push source has no credentials in the environment: push is off");
        }
    }
    Router::new()
        .route("/api/v1/ingest/dvcqg/login", post(login))
        .route("/api/v1/ingest/dvcqg", post(push_records))
        .with_state(PushState {
            shared,
            push: Arc::new(push),
            sessions: Arc::new(Mutex::new(HashMap::new())),
        })
}

/// How long a push session lasts.
const SESSION_HOURS: i64 = 8;

struct PushSource {
    name: String,
    mapping: Mapping,
    username: Option<String>,
    password: Option<String>,
    token: Option<String>,
    /// One delivery at a time per source, so merges never race.
    lock: tokio::sync::Mutex<()>,
}

/// Push sessions: token → (push source index, expiry).
type Sessions = Arc<Mutex<HashMap<String, (usize, DateTime<Utc>)>>>;

fn env_secret(name: &Option<String>) -> Option<String> {
    name.as_ref()
        .and_then(|n| std::env::var(n).ok())
        .filter(|v| !v.is_empty())
}

pub(super) fn portal(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error_code": code, "message": message.into()})),
    )
        .into_response()
}

async fn login(State(st): State<PushState>, body: Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return portal(StatusCode::BAD_REQUEST, "-1", "Dữ liệu không phải JSON");
    };
    let user = v.get("username").and_then(Value::as_str).unwrap_or("");
    let pass = v.get("password").and_then(Value::as_str).unwrap_or("");
    let found = st.push.iter().position(|p| {
        matches!((&p.username, &p.password), (Some(u), Some(pw)) if same_secret(u, user) && same_secret(pw, pass))
    });
    let Some(i) = found else {
        return portal(
            StatusCode::UNAUTHORIZED,
            "-1",
            "Sai tên đăng nhập hoặc mật khẩu",
        );
    };
    let mut bytes = [0u8; 24];
    if let Err(e) = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
    {
        tracing::error!(error = %e, "cannot make a session token");
        return portal(StatusCode::INTERNAL_SERVER_ERROR, "-1", "Lỗi hệ thống");
    }
    let session: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let now = st.shared.now();
    let mut sessions = st.sessions.lock().expect("sessions lock");
    sessions.retain(|_, (_, exp)| *exp > now);
    sessions.insert(session.clone(), (i, now + Duration::hours(SESSION_HOURS)));
    (
        StatusCode::OK,
        Json(json!({"error_code": "0", "message": "Đăng nhập thành công", "session": session})),
    )
        .into_response()
}

async fn push_records(State(st): State<PushState>, headers: HeaderMap, body: Bytes) -> Response {
    if st
        .push
        .iter()
        .all(|p| p.password.is_none() && p.token.is_none())
    {
        return portal(
            StatusCode::NOT_FOUND,
            "-1",
            "Chức năng nhận dữ liệu chưa được cấu hình",
        );
    }
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return portal(
                StatusCode::BAD_REQUEST,
                "-1",
                format!("Dữ liệu không phải JSON hợp lệ: {e}"),
            )
        }
    };
    let bearer = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim);
    let (source, data) = match (&v, bearer) {
        (Value::Array(items), Some(token)) => {
            match st
                .push
                .iter()
                .position(|p| p.token.as_deref().is_some_and(|t| same_secret(t, token)))
            {
                Some(i) => (i, items.clone()),
                None => return portal(StatusCode::UNAUTHORIZED, "-1", "Token không hợp lệ"),
            }
        }
        (Value::Object(env), _) => {
            let session = env.get("session").and_then(Value::as_str).unwrap_or("");
            let now = st.shared.now();
            let found = st
                .sessions
                .lock()
                .expect("sessions lock")
                .get(session)
                .filter(|(_, exp)| *exp > now)
                .map(|(i, _)| *i);
            let Some(i) = found else {
                return portal(
                    StatusCode::UNAUTHORIZED,
                    "-1",
                    "Phiên làm việc không hợp lệ hoặc đã hết hạn",
                );
            };
            let service = env.get("service").and_then(Value::as_str).unwrap_or("");
            if !matches!(service, "DongBoHoSoMC" | "CapNhatTienDoHoSoMC") {
                return portal(
                    StatusCode::BAD_REQUEST,
                    "-1",
                    format!("Dịch vụ `{service}` không được hỗ trợ"),
                );
            }
            match env.get("data") {
                Some(Value::Array(items)) => (i, items.clone()),
                _ => return portal(StatusCode::BAD_REQUEST, "-1", "Thiếu mảng `data`"),
            }
        }
        (Value::Array(_), None) => return portal(StatusCode::UNAUTHORIZED, "-1", "Thiếu token"),
        _ => {
            return portal(
                StatusCode::BAD_REQUEST,
                "-1",
                "Dữ liệu phải là một đối tượng hoặc một mảng",
            )
        }
    };
    let p = &st.push[source];
    let n = data.len();
    let records: Vec<RawRecord> = data
        .into_iter()
        .enumerate()
        .map(|(i, v)| RawRecord::json(v, format!("push[{i}]")))
        .collect();
    let _one_at_a_time = p.lock.lock().await;
    let now = st.shared.now();
    // Another replica may have taken a push of the same cases a moment ago: merge
    // with what the store holds, not with a memory a follow behind.
    if let Err(e) = st.shared.follow(now).await {
        tracing::warn!(source = %p.name, error = %e, "cannot follow the change feed before a push");
    }
    match ingest(
        &st.shared,
        &p.name,
        &p.mapping,
        Delivery::records(records),
        now,
    )
    .await
    {
        Ok(s) => {
            st.shared.touch_source(&p.name, now, n);
            if let Err(e) = st.shared.share_health(&p.name).await {
                tracing::warn!(source = %p.name, error = %e, "cannot store the source's health");
            }
            st.shared.count_ingest(&p.name, &s);
            st.shared.metrics_changed();
            (
                StatusCode::OK,
                Json(json!({
                    "error_code": "0",
                    "message": format!("Đồng bộ thành công {} bản ghi", n - s.quarantined),
                    "received": n,
                    "inserted": s.inserted,
                    "updated": s.updated,
                    "unchanged": s.unchanged,
                    "quarantined": s.quarantined,
                })),
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(source = %p.name, error = %e, "push could not be stored");
            portal(
                StatusCode::SERVICE_UNAVAILABLE,
                "-1",
                "Không lưu được dữ liệu, vui lòng gửi lại sau",
            )
        }
    }
}
