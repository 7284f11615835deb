//! The escalation ladder (SPEC §10): which alerts a case wants now, to whom, and when
//! a message may go out. Pure: the directory, the configuration and `now` are
//! arguments; the daemon stores what fires and the dispatcher sends it.
//!
//! An alert is identified by (case, rule, level, due version): it fires once; a case
//! that leaves the state resolves it; a re-appointed due is a new version and may fire
//! again. `escalated` climbs one level of the unit tree per `escalate_every` workdays
//! of overdue age, up to the top; only the level reached is wanted.

pub mod digest;
pub mod mail;
pub mod message;
pub mod weekly;

use crate::calendar::Calendar;
use crate::directory::{Directory, Unit};
use crate::sla::model::Case;
use crate::store::EvalSummary;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// How a rule's alerts go out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// An e-mail of its own (bundled per recipient), in the sending window.
    Immediate,
    /// Only in the morning digest.
    Digest,
    Off,
}

/// The rules of the ladder, in the order of SPEC §10.
pub const RULES: [&str; 6] = [
    "due_soon",
    "apology_due",
    "overdue",
    "escalated",
    "stuck",
    "step_overdue",
];

/// `[alerts.rules]`: the mode of each rule.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleModes {
    pub due_soon: Mode,
    pub apology_due: Mode,
    pub overdue: Mode,
    pub escalated: Mode,
    pub stuck: Mode,
    pub step_overdue: Mode,
}

impl Default for RuleModes {
    fn default() -> Self {
        RuleModes {
            due_soon: Mode::Digest,
            apology_due: Mode::Immediate,
            overdue: Mode::Immediate,
            escalated: Mode::Immediate,
            stuck: Mode::Digest,
            step_overdue: Mode::Immediate,
        }
    }
}

impl RuleModes {
    pub fn of(&self, rule: &str) -> Mode {
        match rule {
            "due_soon" => self.due_soon,
            "apology_due" => self.apology_due,
            "overdue" => self.overdue,
            "escalated" => self.escalated,
            "stuck" => self.stuck,
            "step_overdue" => self.step_overdue,
            _ => Mode::Off,
        }
    }
}

/// `[alerts.copies]`: extra addresses copied on each rule's alerts (an inspector's
/// office on `escalated`, say), besides the recipients the directory names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleCopies {
    pub due_soon: Vec<String>,
    pub apology_due: Vec<String>,
    pub overdue: Vec<String>,
    pub escalated: Vec<String>,
    pub stuck: Vec<String>,
    pub step_overdue: Vec<String>,
}

impl RuleCopies {
    pub fn of(&self, rule: &str) -> &[String] {
        match rule {
            "due_soon" => &self.due_soon,
            "apology_due" => &self.apology_due,
            "overdue" => &self.overdue,
            "escalated" => &self.escalated,
            "stuck" => &self.stuck,
            "step_overdue" => &self.step_overdue,
            _ => &[],
        }
    }

    /// The first address that is not one (`rule`, address).
    pub fn invalid(&self) -> Option<(&'static str, &str)> {
        RULES.iter().find_map(|r| {
            self.of(r)
                .iter()
                .find(|a| a.parse::<lettre::Address>().is_err())
                .map(|a| (*r, a.as_str()))
        })
    }
}

/// A person to write to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Recipient {
    pub name: String,
    pub email: String,
}

/// An alert a case wants now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Wanted {
    pub rule: &'static str,
    /// 0, or the escalation level (1 = the unit's parent, …).
    pub level: u8,
    /// The due this alert is about (RFC 3339 UTC), or `none`.
    pub due_key: String,
    /// The unit the alert is about (its code), when known.
    pub unit: Option<String>,
    /// Who handles the case: the unit's head (or the field's deputy), listed in full.
    pub to: Vec<Recipient>,
    /// Who else answers for the unit (the head beside a deputy, the unit's configured
    /// copies): listed in full too, each in an e-mail of their own.
    pub cc: Vec<Recipient>,
    /// Who oversees it (the parent's head on escalation, the service centre, the
    /// rule's copies): a summary by unit.
    pub summary: Vec<Recipient>,
    pub mode: Mode,
}

impl Wanted {
    /// Every person this alert goes to, with how they receive it; each once.
    pub fn recipients(&self) -> impl Iterator<Item = (&Recipient, mail::Role)> {
        self.to
            .iter()
            .chain(&self.cc)
            .map(|r| (r, mail::Role::Case))
            .chain(self.summary.iter().map(|r| (r, mail::Role::Summary)))
    }
}

fn person(u: &Unit) -> Option<Recipient> {
    let head = u.head.as_ref()?;
    let email = head.email.as_ref().filter(|e| !e.trim().is_empty())?;
    Some(Recipient {
        name: head.name.clone(),
        email: email.trim().to_string(),
    })
}

fn tagged<'d>(dir: &'d Directory, tag: &str) -> Option<&'d Unit> {
    dir.units().iter().find(|u| u.tags.iter().any(|t| t == tag))
}

/// The service centre's head: the fallback for units without a head e-mail and for
/// unknown units, and the copy of breach alerts.
pub fn service_centre(dir: &Directory) -> Option<Recipient> {
    tagged(dir, "service_centre").and_then(person)
}

/// The heads of the units carrying a tag, each once.
pub fn tagged_heads(dir: &Directory, tags: &[&str]) -> Vec<Recipient> {
    let mut out: Vec<Recipient> = Vec::new();
    for u in dir.units() {
        if u.tags.iter().any(|t| tags.contains(&t.as_str())) {
            if let Some(r) = person(u) {
                if !out.iter().any(|o| o.email.eq_ignore_ascii_case(&r.email)) {
                    out.push(r);
                }
            }
        }
    }
    out
}

/// The head of the provincial office (weekly report).
pub fn provincial_office(dir: &Directory) -> Option<Recipient> {
    tagged(dir, "provincial_office").and_then(person)
}

/// Who receives a unit's alerts for a case of `field`: the deputy for the field (the
/// head in copy), else the head, else the service centre. Copies from the directory.
pub fn unit_recipients(
    dir: &Directory,
    unit_code: Option<&str>,
    field: Option<&str>,
) -> (Vec<Recipient>, Vec<Recipient>) {
    let unit = unit_code.and_then(|c| dir.get(c));
    let mut to = Vec::new();
    let mut cc = Vec::new();
    if let Some(u) = unit {
        if let Some(d) = field.and_then(|f| u.deputies.iter().find(|d| d.field == f)) {
            to.push(Recipient {
                name: d.name.clone(),
                email: d.email.clone(),
            });
            cc.extend(person(u));
        } else {
            to.extend(person(u));
        }
        for c in &u.copies {
            cc.push(Recipient {
                name: String::new(),
                email: c.clone(),
            });
        }
    }
    if to.is_empty() {
        to.extend(service_centre(dir));
    }
    (to, cc)
}

/// The unit `levels` steps up the tree from `code` (stopping at the top).
pub fn ancestor<'d>(dir: &'d Directory, code: &str, levels: u32) -> Option<&'d Unit> {
    let mut u = dir.get(code)?;
    for _ in 0..levels {
        match u.parent.as_deref().and_then(|p| dir.get(p)) {
            Some(p) => u = p,
            None => break,
        }
    }
    Some(u)
}

/// What the ladder needs besides the case.
pub struct Ladder<'a> {
    pub directory: &'a Directory,
    pub modes: &'a RuleModes,
    /// Extra copies per rule.
    pub copies: &'a RuleCopies,
    /// Workdays of overdue age per escalation level.
    pub escalate_every: u32,
}

/// Each address once (its named entry kept over a bare copy), none of `not_in`, in
/// name order.
fn dedup(mut v: Vec<Recipient>, not_in: &[Recipient]) -> Vec<Recipient> {
    v.sort_by_key(|r| (r.email.to_ascii_lowercase(), r.name.is_empty()));
    v.dedup_by(|a, b| a.email.eq_ignore_ascii_case(&b.email));
    v.retain(|r| {
        !not_in
            .iter()
            .any(|o| o.email.eq_ignore_ascii_case(&r.email))
    });
    v.sort();
    v
}

/// The alerts an open case wants at the time of its evaluation `e`.
pub fn wanted(case: &Case, e: &EvalSummary, l: &Ladder<'_>, now: DateTime<Utc>) -> Vec<Wanted> {
    let due_key = crate::store::due_key(e.due);
    let unit = case.unit_code.as_deref();
    let field = case.field_code.as_deref();
    let flags: Vec<&str> = e.flags.names().collect();
    let mut out = Vec::new();
    let mut push = |rule: &'static str,
                    level: u8,
                    unit: Option<&str>,
                    to: Vec<Recipient>,
                    cc: Vec<Recipient>,
                    summary: Vec<Recipient>| {
        let mode = l.modes.of(rule);
        if mode == Mode::Off || (to.is_empty() && cc.is_empty() && summary.is_empty()) {
            return;
        }
        let to = dedup(to, &[]);
        let cc = dedup(cc, &to);
        let mut summary = summary;
        summary.extend(l.copies.of(rule).iter().map(|e| Recipient {
            name: String::new(),
            email: e.clone(),
        }));
        let handled: Vec<Recipient> = to.iter().chain(&cc).cloned().collect();
        let summary = dedup(summary, &handled);
        out.push(Wanted {
            rule,
            level,
            due_key: due_key.clone(),
            unit: unit.map(str::to_string),
            to,
            cc,
            summary,
            mode,
        });
    };
    let centre: Vec<Recipient> = service_centre(l.directory).into_iter().collect();
    let (to, cc) = unit_recipients(l.directory, unit, field);
    match e.state.map(crate::sla::State::as_str) {
        Some("due_soon") => push("due_soon", 0, unit, to.clone(), cc.clone(), Vec::new()),
        Some("overdue") => {
            push("overdue", 0, unit, to.clone(), cc.clone(), centre.clone());
            let level = (e.overdue_workdays.max(0) as u32)
                .checked_div(l.escalate_every)
                .unwrap_or(0);
            if let (true, Some(code)) = (level > 0, unit) {
                if let Some(up) = ancestor(l.directory, code, level) {
                    if up.code != code {
                        if let Some(head) = person(up) {
                            push(
                                "escalated",
                                level.min(u8::MAX as u32) as u8,
                                unit,
                                Vec::new(),
                                to.clone(),
                                vec![head],
                            );
                        }
                    }
                }
            }
        }
        _ => {}
    }
    if flags.contains(&"apology_due") {
        push(
            "apology_due",
            0,
            unit,
            to.clone(),
            cc.clone(),
            centre.clone(),
        );
    }
    if e.stuck {
        push("stuck", 0, unit, to.clone(), cc.clone(), Vec::new());
    }
    if flags.contains(&"step_overdue") {
        // The late step: the last one not acted on whose own due has passed.
        let late = case
            .steps
            .iter()
            .rev()
            .find(|s| s.acted_at.is_none() && s.step_due_at.is_some_and(|d| d < now));
        let step_unit = late.and_then(|s| s.unit_code.as_deref()).or(unit);
        let (sto, scc) = unit_recipients(l.directory, step_unit, field);
        push("step_overdue", 0, step_unit, sto, scc, Vec::new());
    }
    out
}

/// The sending window (SPEC §10): from the first session's start to the last
/// session's end on a workday, make-up Saturdays included. Returns `now` when inside,
/// else the next window's start.
pub fn next_window(cal: &Calendar, now: DateTime<Utc>) -> DateTime<Utc> {
    let mut day = cal.local(now).date();
    for _ in 0..400 {
        let sessions = cal.sessions(day);
        if let (Some(first), Some(last)) = (sessions.first(), sessions.last()) {
            let at = |secs: u32| {
                let midnight = day.and_hms_opt(0, 0, 0).expect("midnight");
                cal.instant(midnight + Duration::seconds(secs as i64))
            };
            let (open, close) = (at(first.open), at(last.close));
            if now < open {
                return open;
            }
            if now < close {
                return now;
            }
        }
        day += Duration::days(1);
    }
    now
}

#[cfg(test)]
mod tests;
