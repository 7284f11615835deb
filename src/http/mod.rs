//! The HTTP listener (SPEC §8): `/metrics`, `/healthz`, `/readyz`, the JSON API
//! ([`api`]) and the DVCQG push endpoints (`push`, SPEC §5), with one error shape
//! for every answer. It reads the shared state and hands records to
//! [`crate::ingest`]; it never imports the daemon. TLS belongs to a reverse proxy in
//! front.

pub mod api;
mod push;
pub(crate) mod reports;

use crate::source::normalize::Mapping;
use crate::source::SourceConfig;
use crate::state::Shared;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Clone)]
struct AppState {
    shared: Arc<Shared>,
}

/// Compares secrets in constant time.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = (a.len() ^ b.len()) as u8;
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// The router of the listener.
pub fn router(
    shared: Arc<Shared>,
    push: Vec<(SourceConfig, Mapping)>,
    max_body: usize,
    api_token: Option<String>,
) -> Router {
    if api_token.is_none() {
        tracing::warn!(
            "no API token in the environment: /api/v1 is open to anyone who reaches the listener"
        );
    }
    let api = api::routes(shared.clone(), api_token);
    let push = push::routes(shared.clone(), push);
    let state = AppState { shared };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(push)
        .merge(api)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(error_shapes))
}

/// Longest request target answered; longer ones get a 414 in the documented shape.
const MAX_URI: usize = 8 * 1024;

/// Every error has the documented shape: `{"error": …}`, or on the push endpoints the
/// portal's `{"error_code": "-1", "message": …}` — also those the framework answers by
/// itself with an empty or plain-text body (405, 413, 414, a bad query).
async fn error_shapes(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let push = req.uri().path().starts_with("/api/v1/ingest/");
    let shape = |status: StatusCode, message: String| -> Response {
        if push {
            push::portal(status, "-1", message)
        } else {
            (status, Json(json!({ "error": message }))).into_response()
        }
    };
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_URI {
        return shape(
            StatusCode::URI_TOO_LONG,
            format!("the request target is longer than {MAX_URI} bytes"),
        );
    }
    let resp = next.run(req).await;
    let status = resp.status();
    let json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || json {
        return resp;
    }
    let allow = resp.headers().get(axum::http::header::ALLOW).cloned();
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => match &allow {
            Some(a) => format!(
                "method not allowed here; allowed: {}",
                a.to_str().unwrap_or("")
            ),
            None => "method not allowed here".to_string(),
        },
        StatusCode::PAYLOAD_TOO_LARGE => {
            "the request body is larger than http.max_body_bytes".into()
        }
        other => {
            let bytes = axum::body::to_bytes(resp.into_body(), 4096)
                .await
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes).trim().to_string();
            let message = if text.is_empty() {
                other.canonical_reason().unwrap_or("error").to_string()
            } else {
                text
            };
            return shape(other, message);
        }
    };
    let mut r = shape(status, message);
    if let Some(a) = allow {
        r.headers_mut().insert(axum::http::header::ALLOW, a);
    }
    r
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"error": "not found"}))).into_response()
}

async fn metrics(State(st): State<AppState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            crate::metrics::CONTENT_TYPE,
        )],
        st.shared.metrics.exposition(),
    )
        .into_response()
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(st): State<AppState>) -> Response {
    let sources = st.shared.health();
    match st.shared.store.ready().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({
                "status": "ready",
                "store": st.shared.store.backend(),
                "open_cases": st.shared.open_count(),
                "sources": sources,
                "now": crate::timefmt::rfc3339(st.shared.now(), &st.shared.context().calendar),
                "test_clock": st.shared.clock.describe(),
            })),
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "not ready", "error": "the store is unreachable or not migrated", "sources": sources})),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
    }
}
