//! What an e-mail says (pure): the template context of a case and of an alert, and the
//! one helper for stable Message-IDs. No I/O; `now` and the context are arguments.

use crate::sla::model::Case;
use crate::state::Context;
use crate::store::EvalSummary;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// A stable Message-ID, `<{kind}-{hex}@slawatch>`: the first 16 bytes of the SHA-256
/// of the parts joined by U+001F, so the same alert, digest or report to the same
/// person always has the same id (a resend after a crash is recognisable).
pub fn message_id(kind: &str, parts: &[&str]) -> String {
    let digest = Sha256::digest(parts.join("\u{1f}").as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("<{kind}-{hex}@slawatch>")
}

/// The template context of one alert.
pub fn alert_item(
    case: &Case,
    ev: &EvalSummary,
    w: &crate::alert::Wanted,
    ctx: &Context,
    cfg: &crate::config::AlertsConfig,
    now: DateTime<Utc>,
) -> serde_json::Value {
    let mut item = case_item(case, ev, ctx, cfg, now);
    item["rule"] = serde_json::json!(w.rule);
    item["rule_label"] =
        serde_json::json!(crate::notify::templates::rule_label(w.rule, &cfg.language));
    item["level"] = serde_json::json!(w.level);
    item
}

/// What every message says of a case: ids, procedure, unit, due, state, trace, link.
pub fn case_item(
    case: &Case,
    ev: &EvalSummary,
    ctx: &Context,
    cfg: &crate::config::AlertsConfig,
    now: DateTime<Utc>,
) -> serde_json::Value {
    let lang = if cfg.language == "en" {
        crate::sla::explain::Lang::En
    } else {
        crate::sla::explain::Lang::Vi
    };
    let proc = ctx.procedure(case);
    let trace =
        crate::sla::explain::explain_case(case, proc, &ctx.calendar, &ctx.policy, now, lang)
            .map(|(_, t)| t)
            .unwrap_or_default();
    let unit_name = case
        .unit_code
        .as_deref()
        .and_then(|c| ctx.directory.get(c))
        .map(|u| u.name.clone())
        .or_else(|| case.unit_name.as_deref().map(str::to_string))
        .unwrap_or_default();
    let link = cfg.link_template.as_ref().map(|t| {
        t.replace("{case_id}", &case.case_id)
            .replace("{source}", &case.source)
    });
    serde_json::json!({
        "source": &*case.source,
        "case_id": case.case_id,
        "procedure": case.procedure_name.as_deref().or(case.procedure_code.as_deref()),
        "unit": case.unit_code.as_deref(),
        "unit_name": unit_name,
        "due": ev.due.map(|d| crate::timefmt::human(d, &ctx.calendar)).unwrap_or_else(|| "—".into()),
        "due_estimated": ev.calendar_estimated,
        "state": ev.state,
        "overdue_workdays": ev.overdue_workdays,
        "trace": trace,
        "link": link,
    })
}
