//! Biểu số 06/VPCP/KSTT "Tình hình, kết quả giải quyết TTHC tại cơ quan, đơn vị trực
//! tiếp giải quyết TTHC" (Thông tư 01/2020/TT-VPCP), Decision 766 indicator 2.1, the
//! late cases and the ranking, for one period. Pure.
//!
//! Per case, for the period `[S, E)` (`E` = now while it runs):
//! - received in the period by receipt time (col 4 online, col 5 in person or by
//!   post, an unknown channel with them); "từ kỳ trước" (col 6) = received before `S`
//!   and still open at `S`;
//! - finished (col 7) = ended in the period, by its outcome (SPEC §4.6): early (8), on
//!   time (9), late (10); a finished case with no due cannot be late and is on time;
//! - in progress (col 11) = open at `E`, judged as it stood at `E`: overdue (13) when
//!   its state then is `overdue` — or `paused` on a supplement requested once it was
//!   already overdue (`supplement_after_due`: the pause does not make it timely) —,
//!   in time (12) otherwise;
//! - withdrawn dossiers and dossiers refused at intake are in no column: they are
//!   counted in note lines, like cases without a receipt time.
//!
//! Vendor reports differ; their ways are [`Options`], off by default.

use super::{Bounds, ReportPeriod};
use crate::directory::Directory;
use crate::metrics::UNKNOWN_UNIT;
use crate::sla::asof::as_of;
use crate::sla::model::{Case, Channel, DueChangeCause, Kind};
use crate::sla::ratio::{judge, Ratio};
use crate::sla::{Flags, Lifecycle, Outcome, State};
use crate::state::Context;
use crate::store::ReportRow;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// How vendor reports count, each off by default (documented in the README).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Options {
    /// `dates-only`: compare dates without times (a dossier finished at 16:00 on its
    /// due date 10:00 is on time; an open one is overdue from the day after its due).
    pub dates_only: bool,
    /// `withdrawn-on-time`: withdrawn dossiers, and dossiers returned after appraisal
    /// (refused once accepted), count as finished on time.
    pub withdrawn_on_time: bool,
    /// `paused-in-time`: a dossier waiting for a supplement (whenever it was asked
    /// for) or stopped counts as in progress within the deadline.
    pub paused_in_time: bool,
}

impl Options {
    pub const NAMES: [&'static str; 3] = ["dates-only", "withdrawn-on-time", "paused-in-time"];

    /// Parses a comma-separated list of option names.
    pub fn parse(list: &str) -> Result<Options, String> {
        let mut o = Options::default();
        for name in list.split(',') {
            match name {
                "dates-only" => o.dates_only = true,
                "withdrawn-on-time" => o.withdrawn_on_time = true,
                "paused-in-time" => o.paused_in_time = true,
                _ => {
                    return Err(format!(
                        "unknown report option {name:?}: known ones are {}",
                        Options::NAMES.join(", ")
                    ))
                }
            }
        }
        Ok(o)
    }
}

/// What the rows are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum By {
    #[default]
    Unit,
    Field,
    Procedure,
}

/// The 11 counted columns, 3 to 13.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Cells {
    /// 3: received, total.
    pub received: u64,
    /// 4: received in the period online.
    pub online: u64,
    /// 5: received in the period in person or by post.
    pub in_person: u64,
    /// 6: from the previous period.
    pub carried_over: u64,
    /// 7: finished, total.
    pub finished: u64,
    /// 8: finished before the due date.
    pub early: u64,
    /// 9: finished on time.
    pub on_time: u64,
    /// 10: finished late.
    pub late: u64,
    /// 11: in progress, total.
    pub in_progress: u64,
    /// 12: in progress within the deadline.
    pub in_time: u64,
    /// 13: in progress and overdue.
    pub overdue: u64,
}

impl Cells {
    /// Columns 3 to 13 in order.
    pub fn columns(&self) -> [u64; 11] {
        [
            self.received,
            self.online,
            self.in_person,
            self.carried_over,
            self.finished,
            self.early,
            self.on_time,
            self.late,
            self.in_progress,
            self.in_time,
            self.overdue,
        ]
    }

    fn add(&mut self, o: &Cells) {
        self.received += o.received;
        self.online += o.online;
        self.in_person += o.in_person;
        self.carried_over += o.carried_over;
        self.finished += o.finished;
        self.early += o.early;
        self.on_time += o.on_time;
        self.late += o.late;
        self.in_progress += o.in_progress;
        self.in_time += o.in_time;
        self.overdue += o.overdue;
    }

    /// Counts `n` cases placed alike.
    fn place(&mut self, p: &Placed, n: u64) {
        match p.received {
            Received::Online => self.online += n,
            Received::InPerson => self.in_person += n,
            Received::CarriedOver => self.carried_over += n,
        }
        self.received += n;
        match p.result {
            Column::Early => self.early += n,
            Column::OnTime => self.on_time += n,
            Column::Late => self.late += n,
            Column::InTime => self.in_time += n,
            Column::Overdue => self.overdue += n,
        }
        match p.result {
            Column::Early | Column::OnTime | Column::Late => self.finished += n,
            Column::InTime | Column::Overdue => self.in_progress += n,
        }
    }

    /// The form's checks: 3 = 4 + 5 + 6, 3 = 7 + 11, 7 = 8 + 9 + 10, 11 = 12 + 13.
    pub fn check(&self) -> std::result::Result<(), String> {
        let c = self;
        let mut bad = Vec::new();
        if c.received != c.online + c.in_person + c.carried_over {
            bad.push(format!(
                "col 3 ({}) ≠ 4 + 5 + 6 ({} + {} + {})",
                c.received, c.online, c.in_person, c.carried_over
            ));
        }
        if c.received != c.finished + c.in_progress {
            bad.push(format!(
                "col 3 ({}) ≠ 7 + 11 ({} + {})",
                c.received, c.finished, c.in_progress
            ));
        }
        if c.finished != c.early + c.on_time + c.late {
            bad.push(format!(
                "col 7 ({}) ≠ 8 + 9 + 10 ({} + {} + {})",
                c.finished, c.early, c.on_time, c.late
            ));
        }
        if c.in_progress != c.in_time + c.overdue {
            bad.push(format!(
                "col 11 ({}) ≠ 12 + 13 ({} + {})",
                c.in_progress, c.in_time, c.overdue
            ));
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad.join("; "))
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Received {
    Online,
    InPerson,
    CarriedOver,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Column {
    Early,
    OnTime,
    Late,
    InTime,
    Overdue,
}

/// Where one case goes in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Placed {
    pub received: Received,
    pub result: Column,
}

/// Cases of the period kept out of the columns, counted in the note lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Notes {
    /// Withdrawn in the period (unless `withdrawn-on-time`).
    pub withdrawn: u64,
    /// Refused at intake in the period.
    pub refused_at_intake: u64,
    /// Stored without a receipt time: they cannot be placed in a period.
    pub no_receipt: u64,
    /// Of col 9: finished with no due at all (they cannot be late).
    pub finished_without_due: u64,
    /// Of cols 4–6: received with no channel recorded (counted with col 5).
    pub unknown_channel: u64,
}

/// How one case stands in the period.
#[derive(Clone, Debug, PartialEq)]
pub enum Standing {
    /// Not in the period at all.
    Out,
    /// In the period but in no column: a note line.
    Noted(Note),
    In(Placed),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
    Withdrawn,
    RefusedAtIntake,
    NoReceipt,
}

/// One case judged for the period: its place in the table, indicator 2.1, and what the
/// late-case list says of it.
#[derive(Clone, Debug)]
pub struct Judged {
    pub standing: Standing,
    pub on_time_766: Option<bool>,
    pub without_due: bool,
    pub unknown_channel: bool,
    pub late: Option<LateCase>,
}

/// Why a case is late, for the list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// More than one supplement request.
    MultipleSupplements { requests: usize },
    /// The first supplement was requested after the due.
    SupplementAfterDue,
    /// The first supplement was requested after 3 workdays.
    LateSupplementRequest,
    /// A step past its own due, and the unit it is attributed to.
    LateStep {
        step: Option<String>,
        unit: Option<String>,
        unit_name: Option<String>,
    },
    /// The due was moved by re-appointment.
    Reappointed { times: usize },
}

/// A case finished late, or open and overdue at the period's end.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LateCase {
    pub source: String,
    pub case_id: String,
    pub kind: Kind,
    /// The row's key: its unit code (`unknown` when the directory does not know
    /// it), field or procedure.
    pub unit: String,
    /// The case's holding unit, as the directory names it (else as the source did).
    pub unit_name: String,
    pub procedure_code: Option<String>,
    pub procedure_name: Option<String>,
    pub received: DateTime<Utc>,
    pub due: Option<DateTime<Utc>>,
    /// The end; `None` for a case still open at the period's end.
    pub ended: Option<DateTime<Utc>>,
    pub workdays_late: u32,
    pub reasons: Vec<Reason>,
}

/// Judges one case for the period.
pub fn judge_case(case: &Case, ctx: &Context, b: Bounds, opts: Options) -> Judged {
    let mut j = Judged {
        standing: Standing::Out,
        on_time_766: None,
        without_due: false,
        unknown_channel: false,
        late: None,
    };
    let cal = &ctx.calendar;
    let proc = ctx.procedure(case);
    let Some(received) = case.received_at else {
        j.standing = Standing::Noted(Note::NoReceipt);
        return j;
    };
    if received >= b.end {
        return j;
    }
    j.on_time_766 = judge(case, proc, cal, &ctx.policy, b.start, b.end)
        .ok()
        .flatten()
        .map(|x| x.on_time);
    let Ok(ev) = ctx.evaluate(case, b.end) else {
        return j;
    };
    let end = ev.end.filter(|e| *e < b.end);
    if ev.lifecycle == Lifecycle::RefusedAtIntake {
        if end.is_none_or(|e| e >= b.start) || received >= b.start {
            j.standing = Standing::Noted(Note::RefusedAtIntake);
        }
        return j;
    }
    if ev.end.is_some_and(|e| e < b.start) {
        return j;
    }
    let day = |t: DateTime<Utc>| cal.local(t).date();
    let got = if received >= b.start {
        j.unknown_channel = case.channel.is_none();
        if case.channel == Some(Channel::Online) {
            Received::Online
        } else {
            Received::InPerson
        }
    } else {
        Received::CarriedOver
    };
    let result = match end {
        Some(e) => match ended(ev.lifecycle, ev.outcome, ev.due, e, opts, cal) {
            Some((col, without_due)) => {
                j.without_due = without_due;
                col
            }
            None => {
                j.standing = Standing::Noted(Note::Withdrawn);
                return j;
            }
        },
        None => {
            // Open at the period's end: judged as it stood then.
            let then = as_of(case, b.end);
            let Ok(at) = ctx.evaluate(&then, b.end) else {
                return j;
            };
            let late_pause = at.flags.contains(Flags::SUPPLEMENT_AFTER_DUE);
            let overdue = match at.state {
                Some(State::Overdue) if opts.dates_only => at
                    .due
                    .is_some_and(|d| day(b.end - chrono::Duration::seconds(1)) > day(d)),
                Some(State::Overdue) => true,
                Some(State::Paused) => late_pause && !opts.paused_in_time,
                _ => false,
            };
            if overdue {
                let mut l = late_case(&then, ctx, &at, None);
                if at.state == Some(State::Paused) {
                    // How late it already was when the supplement was asked for.
                    let (asked, _) = crate::sla::engine::supplement_requests(&then);
                    if let (Some(d), Some(a)) = (at.due, asked) {
                        l.workdays_late = cal.overdue_workdays(d, a).unwrap_or(0);
                    }
                }
                j.late = Some(l);
                Column::Overdue
            } else {
                Column::InTime
            }
        }
    };
    if result == Column::Late {
        j.late = Some(late_case(case, ctx, &ev, end));
    }
    j.standing = Standing::In(Placed {
        received: got,
        result,
    });
    j
}

/// The column of a case that ended in the period (withdrawals: `None`, a note), and
/// whether it had no due.
fn ended(
    lifecycle: Lifecycle,
    outcome: Option<Outcome>,
    due: Option<DateTime<Utc>>,
    end: DateTime<Utc>,
    opts: Options,
    cal: &crate::calendar::Calendar,
) -> Option<(Column, bool)> {
    let day = |t: DateTime<Utc>| cal.local(t).date();
    Some(match lifecycle {
        Lifecycle::Withdrawn if !opts.withdrawn_on_time => return None,
        Lifecycle::Withdrawn | Lifecycle::RefusedAfterAppraisal if opts.withdrawn_on_time => {
            (Column::OnTime, false)
        }
        Lifecycle::Stopped if opts.paused_in_time => (Column::InTime, false),
        _ => match (due, outcome) {
            (None, _) | (_, None) => (Column::OnTime, true),
            (Some(due), Some(_)) if opts.dates_only => {
                let col = if day(end) < day(due) {
                    Column::Early
                } else if day(end) == day(due) {
                    Column::OnTime
                } else {
                    Column::Late
                };
                (col, false)
            }
            (_, Some(Outcome::Early)) => (Column::Early, false),
            (_, Some(Outcome::OnTime)) => (Column::OnTime, false),
            (_, Some(Outcome::Late)) => (Column::Late, false),
        },
    })
}

/// Judges cases that ended in the period early or on time (not refused) from their
/// stored columns ([`crate::store::Store::load_report_each`] counts them; every other
/// case comes with its document). `dates-only` changes none of them: stored `early`
/// is an end on an earlier date than the due, stored `on_time` an end on the due's
/// date before its hour.
pub fn judge_row(r: &ReportRow, opts: Options) -> Judged {
    let mut j = Judged {
        standing: Standing::Out,
        on_time_766: r.on_time,
        without_due: false,
        unknown_channel: false,
        late: None,
    };
    let lifecycle = match r.status as u8 {
        crate::sla::model::status::WITHDRAWN => Lifecycle::Withdrawn,
        crate::sla::model::status::STOPPED => Lifecycle::Stopped,
        _ => Lifecycle::Finished,
    };
    let outcome = r.outcome.as_deref().and_then(Outcome::parse);
    let col = match (lifecycle, outcome) {
        (Lifecycle::Withdrawn, _) if !opts.withdrawn_on_time => {
            j.standing = Standing::Noted(Note::Withdrawn);
            return j;
        }
        (Lifecycle::Withdrawn, _) => Column::OnTime,
        (Lifecycle::Stopped, _) if opts.paused_in_time => Column::InTime,
        (_, Some(Outcome::Early)) => Column::Early,
        (_, Some(Outcome::OnTime)) => Column::OnTime,
        (_, _) => {
            j.without_due = true;
            Column::OnTime
        }
    };
    let got = if r.received_in_period {
        j.unknown_channel = r.channel.is_none();
        if r.channel.as_deref() == Some("online") {
            Received::Online
        } else {
            Received::InPerson
        }
    } else {
        Received::CarriedOver
    };
    j.standing = Standing::In(Placed {
        received: got,
        result: col,
    });
    j
}

fn late_case(
    case: &Case,
    ctx: &Context,
    ev: &crate::sla::Evaluation,
    ended: Option<DateTime<Utc>>,
) -> LateCase {
    let mut reasons = Vec::new();
    if ev.flags.contains(Flags::MULTIPLE_SUPPLEMENTS) {
        let (_, requests) = crate::sla::engine::supplement_requests(case);
        reasons.push(Reason::MultipleSupplements { requests });
    }
    if ev.flags.contains(Flags::SUPPLEMENT_AFTER_DUE) {
        reasons.push(Reason::SupplementAfterDue);
    }
    if ev.flags.contains(Flags::LATE_SUPPLEMENT_REQUEST) {
        reasons.push(Reason::LateSupplementRequest);
    }
    for s in ev.steps.iter().filter(|s| s.overdue) {
        let unit = s.unit(case);
        reasons.push(Reason::LateStep {
            step: case.steps[s.index].title.as_deref().map(str::to_string),
            unit: unit.map(str::to_string),
            unit_name: unit
                .and_then(|u| ctx.directory.get(u))
                .map(|u| u.name.clone()),
        });
    }
    let times = case
        .due_history
        .iter()
        .filter(|m| m.cause == DueChangeCause::Reappointment)
        .count();
    if times > 0 {
        reasons.push(Reason::Reappointed { times });
    }
    let proc = ctx.procedure(case);
    LateCase {
        source: case.source.to_string(),
        case_id: case.case_id.clone(),
        kind: case.kind,
        unit: case
            .unit_code
            .as_deref()
            .unwrap_or(UNKNOWN_UNIT)
            .to_string(),
        unit_name: case
            .unit_code
            .as_deref()
            .and_then(|u| ctx.directory.get(u))
            .map(|u| u.name.clone())
            .or_else(|| case.unit_name.as_deref().map(str::to_string))
            .unwrap_or_default(),
        procedure_code: case.procedure_code.as_deref().map(str::to_string),
        procedure_name: case
            .procedure_name
            .as_deref()
            .map(str::to_string)
            .or_else(|| proc.map(|p| p.name.clone()).filter(|n| !n.is_empty())),
        received: case.received_at.expect("judged cases have a receipt"),
        due: ev.due,
        ended,
        workdays_late: ev.overdue_workdays,
        reasons,
    }
}

/// A row of the table: a unit (with its subtree), a field or a procedure.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// The unit code, field code or procedure code (`unknown` when not known).
    pub key: String,
    pub name: String,
    pub cells: Cells,
    /// Indicator 2.1 of the row for the period.
    pub on_time: Ratio,
}

/// A group of rows with its subtotal (Sở, ban, ngành; xã, phường).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Group {
    pub name: String,
    pub rows: Vec<Row>,
    pub subtotal: Cells,
    pub subtotal_on_time: Ratio,
}

/// A unit in the ranking.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ranked {
    pub rank: usize,
    pub unit: String,
    pub name: String,
    pub on_time: Ratio,
    pub overdue_open: u64,
}

/// A unit with a case overdue in at least 3 of the 4 weeks before the period's end.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RegularlyLate {
    pub unit: String,
    pub name: String,
    pub head: Option<String>,
    pub head_email: Option<String>,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub period: ReportPeriod,
    /// The last instant counted: the period's end, or `now` while it runs.
    pub until: DateTime<Utc>,
    pub running: bool,
    pub kind: Kind,
    pub by: By,
    /// The reporting unit: the report's root.
    pub reporter: String,
    pub options: Options,
    pub groups: Vec<Group>,
    pub total: Cells,
    pub total_on_time: Ratio,
    pub notes: Notes,
    pub late_cases: Vec<LateCase>,
    pub ranking_on_time: Vec<Ranked>,
    pub ranking_overdue: Vec<Ranked>,
    pub regularly_late: Vec<RegularlyLate>,
    pub calendar: String,
}

/// What the report is of.
#[derive(Clone, Debug)]
pub struct Spec {
    pub period: ReportPeriod,
    pub bounds: Bounds,
    pub by: By,
    /// Report one unit and its subtree.
    pub unit: Option<String>,
    pub kind: Kind,
    pub options: Options,
}

/// The rows a unit report has, in order, with the row each directory unit counts in.
struct Layout {
    /// `(group name, [(row key, row name)])`.
    groups: Vec<(String, Vec<(String, String)>)>,
    /// Directory unit → row key.
    row_of: HashMap<String, String>,
    root_name: String,
}

/// Whether a unit is a commune-level one (UBND xã, phường, đặc khu): by its name.
pub fn is_commune(name: &str) -> bool {
    let n = crate::directory::name_key(name);
    [
        "ubnd xã",
        "ubnd phường",
        "ubnd đặc khu",
        "ủy ban nhân dân xã",
        "ủy ban nhân dân phường",
        "ủy ban nhân dân đặc khu",
        "uỷ ban nhân dân xã",
        "uỷ ban nhân dân phường",
    ]
    .iter()
    .any(|p| n.starts_with(&crate::directory::name_key(p)))
}

fn subtree(dir: &Directory, root: &str) -> Vec<String> {
    let mut out = vec![root.to_string()];
    let mut i = 0;
    while i < out.len() {
        let code = out[i].clone();
        for u in dir.units() {
            if u.parent.as_deref() == Some(code.as_str()) && !out.contains(&u.code) {
                out.push(u.code.clone());
            }
        }
        i += 1;
    }
    out
}

fn layout(dir: &Directory, unit: Option<&str>) -> std::result::Result<Layout, String> {
    let root = match unit {
        Some(code) => Some(
            dir.get(code)
                .ok_or_else(|| format!("--unit {code}: no such unit in the directory"))?,
        ),
        None => dir
            .units()
            .iter()
            .find(|u| u.parent.is_none() && u.level == 0)
            .or_else(|| dir.units().iter().find(|u| u.parent.is_none())),
    };
    let mut row_of = HashMap::new();
    let mut departments = Vec::new();
    let mut communes = Vec::new();
    let root_name = root.map(|r| r.name.clone()).unwrap_or_default();
    if let Some(r) = root {
        {
            let children: Vec<_> = dir
                .units()
                .iter()
                .filter(|u| u.parent.as_deref() == Some(r.code.as_str()))
                .collect();
            // The root's own cases, when it holds any, in a row of its own.
            row_of.insert(r.code.clone(), r.code.clone());
            departments.push((r.code.clone(), r.name.clone()));
            for c in children {
                for code in subtree(dir, &c.code) {
                    row_of.insert(code, c.code.clone());
                }
                let entry = (c.code.clone(), c.name.clone());
                if unit.is_none() && is_commune(&c.name) {
                    communes.push(entry);
                } else {
                    departments.push(entry);
                }
            }
            // Units outside the root's tree (a directory with several roots).
            if unit.is_none() {
                for u in dir.units() {
                    if !row_of.contains_key(&u.code) {
                        for code in subtree(dir, &u.code) {
                            row_of.entry(code).or_insert_with(|| u.code.clone());
                        }
                        departments.push((u.code.clone(), u.name.clone()));
                    }
                }
            }
        }
    }
    let mut groups = Vec::new();
    if unit.is_some() {
        groups.push((String::new(), departments));
    } else {
        groups.push(("Sở, ban, ngành".to_string(), departments));
        if !communes.is_empty() {
            groups.push(("Xã, phường, đặc khu".to_string(), communes));
        }
    }
    Ok(Layout {
        groups,
        row_of,
        root_name,
    })
}

/// Builds the report case by case.
pub struct Builder<'a> {
    ctx: &'a Context,
    spec: Spec,
    layout: Layout,
    rows: BTreeMap<String, (String, Cells, Ratio)>,
    notes: Notes,
    late: Vec<LateCase>,
}

impl<'a> Builder<'a> {
    pub fn new(ctx: &'a Context, spec: Spec) -> std::result::Result<Builder<'a>, String> {
        let layout = layout(&ctx.directory, spec.unit.as_deref())?;
        Ok(Builder {
            ctx,
            spec,
            layout,
            rows: BTreeMap::new(),
            notes: Notes::default(),
            late: Vec::new(),
        })
    }

    /// The row a case counts in, or `None` when it is outside the report (another
    /// kind, or outside `--unit`'s subtree).
    fn row_of(
        &self,
        kind: Kind,
        unit: Option<&str>,
        field: Option<&str>,
        procedure: Option<&str>,
        procedure_name: Option<&str>,
    ) -> Option<(String, String)> {
        if kind != self.spec.kind {
            return None;
        }
        if self.spec.unit.is_some() && unit.is_none_or(|u| !self.layout.row_of.contains_key(u)) {
            return None;
        }
        Some(match self.spec.by {
            By::Unit => match unit.and_then(|u| self.layout.row_of.get(u)) {
                Some(k) => (k.clone(), String::new()),
                None => (
                    UNKNOWN_UNIT.to_string(),
                    "Đơn vị chưa có trong danh mục".to_string(),
                ),
            },
            By::Field => {
                let field = field.map(str::to_string).or_else(|| {
                    procedure
                        .and_then(|p| self.ctx.catalogue.get(p))
                        .and_then(|p| p.field.clone())
                });
                match field {
                    Some(f) => (f.clone(), f),
                    None => (UNKNOWN_UNIT.to_string(), "Chưa rõ lĩnh vực".to_string()),
                }
            }
            By::Procedure => match procedure {
                Some(p) => {
                    let name = self
                        .ctx
                        .catalogue
                        .get(p)
                        .map(|x| x.name.clone())
                        .filter(|n| !n.is_empty())
                        .or_else(|| procedure_name.map(str::to_string))
                        .unwrap_or_else(|| p.to_string());
                    (p.to_string(), name)
                }
                None => (UNKNOWN_UNIT.to_string(), "Chưa rõ thủ tục".to_string()),
            },
        })
    }

    /// Adds a stored row: from its columns, or its case when it came along.
    pub fn add_row(&mut self, r: &ReportRow) {
        if let Some(c) = &r.case {
            return self.add(c);
        }
        let Some(kind) = Kind::ALL.into_iter().find(|k| k.as_str() == r.kind) else {
            return;
        };
        let Some((key, name)) = self.row_of(
            kind,
            r.unit_code.as_deref(),
            r.field_code.as_deref(),
            r.procedure_code.as_deref(),
            None,
        ) else {
            return;
        };
        let j = judge_row(r, self.spec.options);
        self.place(key, name, j, r.count);
    }

    pub fn add(&mut self, case: &Case) {
        let Some((key, name)) = self.row_of(
            case.kind,
            case.unit_code.as_deref(),
            case.field_code.as_deref(),
            case.procedure_code.as_deref(),
            case.procedure_name.as_deref(),
        ) else {
            return;
        };
        let j = judge_case(case, self.ctx, self.spec.bounds, self.spec.options);
        self.place(key, name, j, 1);
    }

    /// Counts `n` cases judged alike.
    fn place(&mut self, key: String, name: String, j: Judged, n: u64) {
        if j.standing == Standing::Out {
            return;
        }
        let row = self
            .rows
            .entry(key.clone())
            .or_insert_with(|| (name.clone(), Cells::default(), Ratio::default()));
        // A procedure first met by its code alone takes the name a case gives it.
        if row.0 == key && name != key {
            row.0 = name;
        }
        if let Some(on_time) = j.on_time_766 {
            row.2.population += n;
            row.2.on_time += on_time as u64 * n;
        }
        match j.standing {
            Standing::Out => {}
            Standing::Noted(Note::Withdrawn) => self.notes.withdrawn += n,
            Standing::Noted(Note::RefusedAtIntake) => self.notes.refused_at_intake += n,
            Standing::Noted(Note::NoReceipt) => self.notes.no_receipt += n,
            Standing::In(p) => {
                row.1.place(&p, n);
                self.notes.finished_without_due += j.without_due as u64 * n;
                self.notes.unknown_channel += j.unknown_channel as u64 * n;
            }
        }
        if let Some(mut l) = j.late {
            if self.spec.by == By::Unit {
                l.unit = key;
            }
            self.late.push(l);
        }
    }

    /// The report, checked: a table whose columns do not add up is an error, never
    /// written.
    pub fn finish(mut self, weeks: &[(String, NaiveDate)]) -> std::result::Result<Report, String> {
        let dir = &self.ctx.directory;
        let mut groups = Vec::new();
        let mut order: HashMap<String, usize> = HashMap::new();
        match self.spec.by {
            By::Unit => {
                for (gname, members) in &self.layout.groups {
                    let mut rows = Vec::new();
                    for (code, name) in members {
                        let (_, cells, ratio) = self.rows.remove(code).unwrap_or_default();
                        // The root's own row only when it holds cases.
                        if self.layout.row_of.get(code) == Some(code)
                            && dir.get(code).is_some_and(|u| u.parent.is_none())
                            && cells == Cells::default()
                            && ratio == Ratio::default()
                            && self.spec.unit.is_none()
                        {
                            continue;
                        }
                        order.insert(code.clone(), order.len());
                        rows.push(Row {
                            key: code.clone(),
                            name: name.clone(),
                            cells,
                            on_time: ratio,
                        });
                    }
                    groups.push(group(gname.clone(), rows));
                }
                if let Some((name, cells, ratio)) = self.rows.remove(UNKNOWN_UNIT) {
                    order.insert(UNKNOWN_UNIT.to_string(), order.len());
                    groups.push(group(
                        "Khác".to_string(),
                        vec![Row {
                            key: UNKNOWN_UNIT.to_string(),
                            name,
                            cells,
                            on_time: ratio,
                        }],
                    ));
                }
            }
            By::Field | By::Procedure => {
                let rows: Vec<Row> = std::mem::take(&mut self.rows)
                    .into_iter()
                    .map(|(key, (name, cells, on_time))| Row {
                        key,
                        name,
                        cells,
                        on_time,
                    })
                    .collect();
                for r in &rows {
                    order.insert(r.key.clone(), order.len());
                }
                groups.push(group(String::new(), rows));
            }
        }
        let mut total = Cells::default();
        let mut total_on_time = Ratio::default();
        for g in &groups {
            for r in &g.rows {
                r.cells
                    .check()
                    .map_err(|e| format!("row {} ({}): {e}", r.key, r.name))?;
            }
            g.subtotal
                .check()
                .map_err(|e| format!("group {}: {e}", g.name))?;
            total.add(&g.subtotal);
            total_on_time.on_time += g.subtotal_on_time.on_time;
            total_on_time.population += g.subtotal_on_time.population;
        }
        total.check().map_err(|e| format!("total: {e}"))?;
        let late_in_table = total.late + total.overdue;
        if late_in_table != self.late.len() as u64 {
            return Err(format!(
                "the late-case list has {} cases, the table {} (col 10 + col 13)",
                self.late.len(),
                late_in_table
            ));
        }
        self.late.sort_by(|a, b| {
            let oa = order.get(&a.unit).copied().unwrap_or(usize::MAX);
            let ob = order.get(&b.unit).copied().unwrap_or(usize::MAX);
            oa.cmp(&ob)
                .then(a.ended.is_some().cmp(&b.ended.is_some()))
                .then(b.workdays_late.cmp(&a.workdays_late))
                .then(a.received.cmp(&b.received))
                .then(a.case_id.cmp(&b.case_id))
        });
        let units: Vec<&Row> = if self.spec.by == By::Unit {
            groups
                .iter()
                .flat_map(|g| &g.rows)
                .filter(|r| r.key != UNKNOWN_UNIT)
                .collect()
        } else {
            Vec::new()
        };
        let ranked = |r: &Row| Ranked {
            rank: 0,
            unit: r.key.clone(),
            name: r.name.clone(),
            on_time: r.on_time,
            overdue_open: r.cells.overdue,
        };
        let mut ranking_on_time: Vec<Ranked> = units
            .iter()
            .filter(|r| r.on_time.population > 0)
            .map(|r| ranked(r))
            .collect();
        ranking_on_time.sort_by(|a, b| {
            let (x, y) = (a.on_time, b.on_time);
            // x.on/x.pop > y.on/y.pop, exactly.
            (y.on_time * x.population)
                .cmp(&(x.on_time * y.population))
                .then(b.on_time.population.cmp(&a.on_time.population))
                .then(a.unit.cmp(&b.unit))
        });
        let mut ranking_overdue: Vec<Ranked> = units
            .iter()
            .filter(|r| r.cells.overdue > 0)
            .map(|r| ranked(r))
            .collect();
        ranking_overdue.sort_by(|a, b| {
            b.overdue_open
                .cmp(&a.overdue_open)
                .then(a.unit.cmp(&b.unit))
        });
        for list in [&mut ranking_on_time, &mut ranking_overdue] {
            for (i, r) in list.iter_mut().enumerate() {
                r.rank = i + 1;
            }
        }
        let last_day = self
            .ctx
            .calendar
            .local(self.spec.bounds.end - chrono::Duration::seconds(1))
            .date();
        let four = crate::alert::weekly::last_four_weeks(last_day);
        let scope: Option<Vec<String>> = self.spec.unit.as_deref().map(|u| subtree(dir, u));
        let regularly_late = crate::alert::weekly::regularly_late(weeks, &four)
            .into_iter()
            .filter(|u| scope.as_ref().is_none_or(|s| s.contains(u)))
            .map(|code| {
                let u = dir.get(&code);
                RegularlyLate {
                    name: u.map(|u| u.name.clone()).unwrap_or_else(|| code.clone()),
                    head: u.and_then(|u| u.head.as_ref()).map(|h| h.name.clone()),
                    head_email: u
                        .and_then(|u| u.head.as_ref())
                        .and_then(|h| h.email.clone()),
                    unit: code,
                }
            })
            .collect();
        Ok(Report {
            period: self.spec.period.clone(),
            until: self.spec.bounds.end,
            running: self.spec.bounds.running,
            kind: self.spec.kind,
            by: self.spec.by,
            reporter: self.layout.root_name.clone(),
            options: self.spec.options,
            groups,
            total,
            total_on_time,
            notes: self.notes,
            late_cases: self.late,
            ranking_on_time,
            ranking_overdue,
            regularly_late,
            calendar: self.ctx.calendar.version().to_string(),
        })
    }
}

fn group(name: String, rows: Vec<Row>) -> Group {
    let mut subtotal = Cells::default();
    let mut on_time = Ratio::default();
    for r in &rows {
        subtotal.add(&r.cells);
        on_time.on_time += r.on_time.on_time;
        on_time.population += r.on_time.population;
    }
    Group {
        name,
        rows,
        subtotal,
        subtotal_on_time: on_time,
    }
}

#[cfg(test)]
pub(crate) mod tests;
