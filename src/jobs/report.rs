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
        .load_period_each(bounds.start, bounds.end, &mut |c| b.add(&c))
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
