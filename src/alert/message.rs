//! What an e-mail says of a case (pure): the outbox item of an alert, the context of a
//! case in a digest, the due as a reader expects it, and the one helper for stable
//! Message-IDs. No I/O; `now` and the context are arguments.

use super::mail::{Item, Role};
use crate::calendar::Calendar;
use crate::sla::model::Case;
use crate::sla::Flags;
use crate::state::Context;
use crate::store::EvalSummary;
use chrono::{DateTime, Timelike, Utc};
use sha2::{Digest, Sha256};

/// A stable Message-ID, `<{kind}-{hex}@{domain}>`: the first 16 bytes of the SHA-256
/// of the parts joined by U+001F, so the same alert, digest or report to the same
/// person always has the same id (a resend after a crash is recognisable). The domain
/// is the sender's ([`domain_of`]).
pub fn message_id(kind: &str, parts: &[&str], domain: &str) -> String {
    let digest = Sha256::digest(parts.join("\u{1f}").as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("<{kind}-{hex}@{domain}>")
}

/// The domain of a `From` address (`Name <user@domain>` or `user@domain`), for
/// Message-IDs; `localhost` when it has none.
pub fn domain_of(from: &str) -> String {
    from.parse::<lettre::message::Mailbox>()
        .map(|m| m.email.domain().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

fn vi(cfg: &crate::config::AlertsConfig) -> bool {
    cfg.language != "en"
}

/// A due as a reader expects it: "hết ngày 07/12/2026" when it falls at the end of a
/// working day (the last session's close, or 23:59:59 as sources write it), else
/// "08/03/2024 10:30" (no seconds).
pub fn due_phrase(t: DateTime<Utc>, cal: &Calendar, vi: bool) -> String {
    let l = cal.local(t);
    let secs = l.time().num_seconds_from_midnight();
    let close = cal.sessions(l.date()).last().map(|s| s.close);
    let end_of_day = secs >= 86_399 || close.is_some_and(|c| secs == c);
    let date = l.format("%d/%m/%Y");
    match (end_of_day, vi) {
        (true, true) => format!("hết ngày {date}"),
        (true, false) => format!("end of {date}"),
        (false, _) => l.format("%d/%m/%Y %H:%M").to_string(),
    }
}

/// The step that holds a case: the last one not acted on, as «title» (department).
fn holding_step(case: &Case) -> Option<String> {
    let s = case.steps.iter().rev().find(|s| s.acted_at.is_none())?;
    let title = s.title.as_deref()?;
    Some(match s.department.as_deref() {
        Some(d) => format!("«{title}» ({d})"),
        None => format!("«{title}»"),
    })
}

/// The one line of how a case stands: due, how late, the step that holds it.
#[cfg(test)]
fn short_line(due: &str, estimated: bool, overdue: i32, step: Option<&str>, vi: bool) -> String {
    short_line_flagged(due, estimated, overdue, step, vi, Flags::default())
}

/// The short line, with what a flag adds to it: a supplement requested once the case
/// was already overdue (SPEC §4.8) is said, since the case shows as paused.
fn short_line_flagged(
    due: &str,
    estimated: bool,
    overdue: i32,
    step: Option<&str>,
    vi: bool,
    flags: Flags,
) -> String {
    let mut parts = vec![match (vi, estimated) {
        (true, false) => format!("Hạn {due}"),
        (true, true) => format!("Hạn {due} (lịch ước tính)"),
        (false, false) => format!("Due {due}"),
        (false, true) => format!("Due {due} (estimated calendar)"),
    }];
    if flags.contains(Flags::SUPPLEMENT_AFTER_DUE) {
        parts.push(if vi {
            "yêu cầu bổ sung khi đã quá hạn".to_string()
        } else {
            "supplement requested after the due".to_string()
        });
    }
    if overdue > 0 {
        parts.push(if vi {
            format!("quá hạn {overdue} ngày làm việc")
        } else {
            format!("overdue by {overdue} workdays")
        });
    }
    if let Some(s) = step {
        parts.push(if vi {
            format!("đang ở bước {s}")
        } else {
            format!("at step {s}")
        });
    }
    parts.join(" · ")
}

/// The outbox item of one alert to one person.
pub fn alert_item(
    case: &Case,
    ev: &EvalSummary,
    w: &crate::alert::Wanted,
    role: Role,
    ctx: &Context,
    cfg: &crate::config::AlertsConfig,
) -> Item {
    let v = vi(cfg);
    let unit_name = unit_name(case, ctx);
    let due = ev
        .due
        .map(|d| due_phrase(d, &ctx.calendar, v))
        .unwrap_or_else(|| "—".into());
    let step = holding_step(case);
    let step_title = case
        .steps
        .iter()
        .rev()
        .find(|s| s.acted_at.is_none())
        .and_then(|s| s.title.as_deref())
        .map(str::to_string);
    let escalated_to = (w.rule == "escalated")
        .then(|| {
            case.unit_code.as_deref().and_then(|c| {
                crate::alert::ancestor(&ctx.directory, c, w.level as u32).map(|u| u.name.clone())
            })
        })
        .flatten();
    Item {
        rule: w.rule.to_string(),
        level: w.level,
        role,
        source: case.source.to_string(),
        case_id: case.case_id.clone(),
        kind: case.kind.as_str().to_string(),
        procedure: procedure(case),
        unit: case.unit_code.as_deref().map(str::to_string),
        // The badges say how late; the line says the due and the step.
        short: short_line_flagged(&due, ev.calendar_estimated, 0, step.as_deref(), v, ev.flags),
        unit_name,
        due,
        due_at: ev
            .due
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        due_estimated: ev.calendar_estimated,
        overdue_workdays: ev.overdue_workdays,
        step,
        step_title,
        escalated_to,
        link: link(case, cfg),
        note: None,
    }
}

fn procedure(case: &Case) -> Option<String> {
    case.procedure_name
        .as_deref()
        .or(case.procedure_code.as_deref())
        .map(str::to_string)
}

fn unit_name(case: &Case, ctx: &Context) -> String {
    case.unit_code
        .as_deref()
        .and_then(|c| ctx.directory.get(c))
        .map(|u| u.name.clone())
        .or_else(|| case.unit_name.as_deref().map(str::to_string))
        .unwrap_or_default()
}

fn link(case: &Case, cfg: &crate::config::AlertsConfig) -> Option<String> {
    cfg.link_template.as_ref().map(|t| {
        t.replace("{case_id}", &case.case_id)
            .replace("{source}", &case.source)
    })
}

/// What a digest says of a case: ids, procedure, unit, due, state, one short line,
/// link.
pub fn case_item(
    case: &Case,
    ev: &EvalSummary,
    ctx: &Context,
    cfg: &crate::config::AlertsConfig,
) -> serde_json::Value {
    let v = vi(cfg);
    let due = ev
        .due
        .map(|d| due_phrase(d, &ctx.calendar, v))
        .unwrap_or_else(|| "—".into());
    let step = holding_step(case);
    // A stuck case: since when nothing was recorded (its last status or step change).
    let idle_since = ev
        .stuck
        .then(|| {
            let steps = case
                .steps
                .iter()
                .flat_map(|s| [s.started_at, s.acted_at])
                .flatten();
            case.status_history.iter().map(|c| c.at).chain(steps).max()
        })
        .flatten()
        .map(|t| ctx.calendar.local(t).format("%d/%m/%Y").to_string());
    serde_json::json!({
        "idle_since": idle_since,
        "source": &*case.source,
        "case_id": case.case_id,
        "procedure": procedure(case),
        "unit": case.unit_code.as_deref(),
        "unit_name": unit_name(case, ctx),
        "due": due,
        "due_estimated": ev.calendar_estimated,
        "state": ev.state,
        "overdue_workdays": ev.overdue_workdays,
        "short": short_line_flagged(&due, ev.calendar_estimated, ev.overdue_workdays, step.as_deref(), v, ev.flags),
        "link": link(case, cfg),
        "desk_url": null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_due_reads_as_a_vietnamese_reader_expects() {
        let cal = Calendar::builtin();
        // 17:30 closes the built-in hours' last session (07:30-11:30, 13:30-17:30) on
        // Monday 07/12/2026: the end of that day. 17:00 is a time within it.
        assert_eq!(
            due_phrase(t("2026-12-07T17:30:00+07:00"), &cal, true),
            "hết ngày 07/12/2026"
        );
        assert_eq!(
            due_phrase(t("2026-12-07T17:30:00+07:00"), &cal, false),
            "end of 07/12/2026"
        );
        assert_eq!(
            due_phrase(t("2026-12-07T17:00:00+07:00"), &cal, true),
            "07/12/2026 17:00"
        );
        // A source's 23:59:59 is the end of the day too, whatever the day.
        assert_eq!(
            due_phrase(t("2026-12-06T23:59:59+07:00"), &cal, true),
            "hết ngày 06/12/2026"
        );
        // Inside the day: the time, without seconds.
        assert_eq!(
            due_phrase(t("2026-12-07T10:30:45+07:00"), &cal, true),
            "07/12/2026 10:30"
        );
    }

    #[test]
    fn the_short_line_says_due_lateness_and_step() {
        assert_eq!(
            short_line(
                "hết ngày 07/12/2026",
                false,
                12,
                Some("«Thẩm định» (Phòng Hộ tịch)"),
                true
            ),
            "Hạn hết ngày 07/12/2026 · quá hạn 12 ngày làm việc · đang ở bước «Thẩm định» (Phòng Hộ tịch)"
        );
        assert_eq!(
            short_line("07/12/2026 10:30", true, 0, None, true),
            "Hạn 07/12/2026 10:30 (lịch ước tính)"
        );
        assert_eq!(
            short_line("end of 07/12/2026", true, 2, None, false),
            "Due end of 07/12/2026 (estimated calendar) · overdue by 2 workdays"
        );
    }

    #[test]
    fn message_ids_use_the_sender_domain() {
        assert_eq!(domain_of("slawatch <canhbao@tinh.gov.vn>"), "tinh.gov.vn");
        assert_eq!(domain_of("not an address"), "localhost");
        let id = message_id("alert", &["a", "b"], "tinh.gov.vn");
        assert!(
            id.starts_with("<alert-") && id.ends_with("@tinh.gov.vn>"),
            "{id}"
        );
        assert_eq!(id, message_id("alert", &["a", "b"], "tinh.gov.vn"));
        assert_ne!(id, message_id("alert", &["ab"], "tinh.gov.vn"));
    }
}
