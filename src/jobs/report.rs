//! Reports from the store: gathers the cases a period counts and builds the report
//! ([`crate::report`]), for the CLI, the API and the monthly e-mail.

use crate::report::tthc::{Builder, By, Options, Report, Spec};
use crate::report::ReportPeriod;
use crate::sla::model::Kind;
use crate::state::Context;
use crate::store::Store;
use anyhow::{anyhow, Context as _, Result};
use chrono::{DateTime, NaiveDate, Utc};

/// What a Biểu 06 report is asked for.
#[derive(Clone, Debug)]
pub struct TthcRequest {
    pub period: ReportPeriod,
    pub by: By,
    pub unit: Option<String>,
    pub kind: Kind,
    pub options: Options,
}

impl TthcRequest {
    /// A request from its words, as the CLI flags and the API parameters give them:
    /// a period label, or a first and last day (YYYY-MM-DD or dd/MM/yyyy); rows by
    /// `unit`, `field` or `procedure`; a kind; vendor options, comma-separated.
    pub fn from_words(
        period: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
        by: Option<&str>,
        unit: Option<&str>,
        kind: Option<&str>,
        compat: Option<&str>,
    ) -> std::result::Result<TthcRequest, String> {
        let period = match (period, from, to) {
            (Some(p), None, None) => ReportPeriod::parse(p)?,
            (None, Some(f), Some(t)) => ReportPeriod::between(parse_day(f)?, parse_day(t)?)?,
            (Some(_), _, _) => {
                return Err("give a period, or a first and a last day, not both".into())
            }
            _ => return Err("give a period (e.g. 2026-11) or a first and a last day".into()),
        };
        let by = match by.unwrap_or("unit") {
            "unit" => By::Unit,
            "field" => By::Field,
            "procedure" => By::Procedure,
            other => return Err(format!("by {other:?}: one of unit, field, procedure")),
        };
        let kind = match kind.unwrap_or("dossier") {
            "dossier" => Kind::Dossier,
            "task" => Kind::Task,
            "feedback" => Kind::Feedback,
            other => return Err(format!("kind {other:?}: one of dossier, task, feedback")),
        };
        Ok(TthcRequest {
            period,
            by,
            unit: unit.map(str::to_string),
            kind,
            options: compat.map(Options::parse).transpose()?.unwrap_or_default(),
        })
    }
}

/// A date as provinces write it, or ISO.
pub fn parse_day(s: &str) -> std::result::Result<NaiveDate, String> {
    let s = s.trim();
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(s, "%d/%m/%Y"))
        .map_err(|_| format!("date {s:?}: expected YYYY-MM-DD or dd/MM/yyyy"))
}

/// Builds the report of a period from the store, as it stands at `now`.
pub async fn tthc(
    store: &dyn Store,
    ctx: &Context,
    req: &TthcRequest,
    now: DateTime<Utc>,
) -> Result<Report> {
    let bounds = req.period.bounds(&ctx.calendar, now);
    let spec = Spec {
        period: req.period.clone(),
        bounds,
        by: req.by,
        unit: req.unit.clone(),
        kind: req.kind,
        options: req.options,
    };
    let mut b = Builder::new(ctx, spec).map_err(|e| anyhow!(e))?;
    store
        .load_report_each(bounds.start, bounds.end, &mut |r| b.add_row(&r))
        .await
        .context("reading the cases of the period")?;
    let last_day = ctx
        .calendar
        .local(bounds.end - chrono::Duration::seconds(1))
        .date();
    let first_week = crate::alert::weekly::last_four_weeks(last_day)[0];
    let weeks: Vec<(String, NaiveDate)> = store
        .unit_weeks_since(&first_week.to_string())
        .await
        .context("reading the weekly overdue record")?
        .into_iter()
        .filter_map(|(u, w)| w.parse().ok().map(|w| (u, w)))
        .collect();
    b.finish(&weeks).map_err(|e| {
        anyhow!("the report did not add up, so it was not written (a bug: please report it): {e}")
    })
}
