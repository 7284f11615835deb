//! `GET /api/v1/reports/tthc`: Biểu 06 with indicator 2.1, the late cases and the
//! ranking, as the CLI gives it (`format=json|csv|xlsx|html`, default json), behind
//! the API's token.

use super::api::{Api, ApiError, Params};
use crate::jobs::report::TthcRequest;
use crate::report::render::{file_name, render_as, ReportFormat};
use axum::extract::{Query, State as AxState};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;

pub(super) async fn tthc(
    AxState(api): AxState<Api>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let p = Params::new(
        q,
        &[
            "period", "from", "to", "by", "unit", "kind", "compat", "format",
        ],
    )?;
    let format = match p.text("format") {
        None => ReportFormat::Json,
        Some(f) => ReportFormat::parse(f).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "`format` must be one of json, csv, xlsx, html, not `{f}`"
            ))
        })?,
    };
    let req = TthcRequest::from_words(
        p.text("period"),
        p.text("from"),
        p.text("to"),
        p.text("by"),
        p.text("unit"),
        p.text("kind"),
        p.text("compat"),
    )
    .map_err(ApiError::BadRequest)?;
    let ctx = api.shared.context();
    if let Some(u) = req.unit.as_deref() {
        if ctx.directory.get(u).is_none() {
            return Err(ApiError::NotFound(format!(
                "no unit `{u}` in the directory"
            )));
        }
    }
    let _turn = api.scans.acquire().await.expect("scan semaphore");
    let report = crate::jobs::report::tthc(api.shared.store.as_ref(), &ctx, &req, api.shared.now())
        .await
        .map_err(|e| ApiError::Internal(format!("{e:#}")))?;
    response(&report, &ctx.calendar, format).map_err(ApiError::Internal)
}

/// A report as an HTTP answer: its content type, and a file name for CSV and XLSX
/// (the API's and the desk's).
pub(crate) fn response(
    report: &crate::report::tthc::Report,
    cal: &crate::calendar::Calendar,
    format: ReportFormat,
) -> Result<Response, String> {
    let body = render_as(report, cal, format)?;
    let mut r = ([(header::CONTENT_TYPE, format.content_type())], body).into_response();
    if matches!(format, ReportFormat::Csv | ReportFormat::Xlsx) {
        let disposition = format!("attachment; filename=\"{}\"", file_name(report, format));
        if let Ok(v) = header::HeaderValue::from_str(&disposition) {
            r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(r)
}
