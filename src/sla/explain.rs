//! Explain traces (SPEC §4.10): why a due is what it is and where a case stands, as a
//! short list of phrases in Vietnamese or English. Built on demand (API, CLI, e-mails),
//! never inside `evaluate`.
//!
//! Joined with "; ", the Vietnamese trace reads like the SPEC's example:
//! `tiếp nhận 30/01/2024 17:40, ngoài giờ → tính từ 31/01 07:30; …; hạn 15/03 10:00
//! (lịch vn-official@3f2a9c)`.

use super::duration::Duration;
use super::engine::{
    evaluate, other_pauses, supplement_intervals, DueBasis, Evaluation, Outcome, State,
};
use super::model::{status, Case};
use super::policy::{Policy, SupplementView};
use crate::calendar::{Calendar, CalendarError, DayKind, Estimate};
use crate::catalogue::Procedure;
use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// Language of a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    Vi,
    En,
}

fn pick(lang: Lang, vi: &str, en: &str) -> String {
    match lang {
        Lang::Vi => vi.to_string(),
        Lang::En => en.to_string(),
    }
}

/// Formats instants for a trace: `dd/MM/yyyy HH:mm`, always with the year (a reader
/// of a case from December should not guess the year of a date in January); seconds
/// only when not zero.
struct Fmt<'a> {
    cal: &'a Calendar,
}

impl Fmt<'_> {
    fn at(&self, t: DateTime<Utc>) -> String {
        let l = self.cal.local(t);
        let time = if l.second() == 0 {
            l.format("%H:%M").to_string()
        } else {
            l.format("%H:%M:%S").to_string()
        };
        format!("{} {time}", self.date(l.date()))
    }

    fn full(&self, t: DateTime<Utc>) -> String {
        crate::timefmt::human(t, self.cal)
    }

    fn date(&self, d: NaiveDate) -> String {
        d.format("%d/%m/%Y").to_string()
    }

    /// A span of days: `29/04–01/05/2026`, `02–06/02/2026`, or across years in full.
    fn range(&self, a: NaiveDate, b: NaiveDate) -> String {
        if a == b {
            self.date(a)
        } else if a.year() == b.year() && a.month() == b.month() {
            format!("{:02}–{}", a.day(), self.date(b))
        } else if a.year() == b.year() {
            format!("{}–{}", a.format("%d/%m"), self.date(b))
        } else {
            format!("{}–{}", self.date(a), self.date(b))
        }
    }
}

fn weekday_vi(d: NaiveDate) -> &'static str {
    [
        "thứ Hai",
        "thứ Ba",
        "thứ Tư",
        "thứ Năm",
        "thứ Sáu",
        "thứ Bảy",
        "Chủ nhật",
    ][d.weekday().num_days_from_monday() as usize]
}

fn short_holiday(name: &str) -> &str {
    if name.starts_with("Tết Nguyên đán") {
        "Tết"
    } else {
        name
    }
}

/// The receipt phrase: the time, and why and where it snapped.
fn receipt_line(
    cal: &Calendar,
    f: &Fmt,
    received: DateTime<Utc>,
    start: DateTime<Utc>,
    cutoff: Option<u32>,
    lang: Lang,
    resumed: bool,
) -> String {
    let head = match (lang, resumed) {
        (Lang::Vi, false) => format!("tiếp nhận {}", f.full(received)),
        (Lang::En, false) => format!("received {}", f.full(received)),
        (Lang::Vi, true) => format!("nhận đủ {}", f.at(received)),
        (Lang::En, true) => format!("received back {}", f.at(received)),
    };
    if start == received {
        return head;
    }
    let l = cal.local(received);
    let sod = l.num_seconds_from_midnight();
    let sessions = cal.sessions(l.date());
    let reason = if sessions.is_empty() {
        match cal.day_kind(l.date()) {
            DayKind::Holiday => pick(lang, "ngày nghỉ lễ", "holiday"),
            _ => pick(lang, "ngày nghỉ", "day off"),
        }
    } else if cutoff.is_some_and(|c| sod >= c) {
        let c = cutoff.unwrap_or(0);
        let hhmm = format!("{:02}:{:02}", c / 3600, c % 3600 / 60);
        pick(
            lang,
            &format!("sau {hhmm}"),
            &format!("after the {hhmm} cut-off"),
        )
    } else if sod < sessions[0].open {
        pick(lang, "trước giờ làm việc", "before opening")
    } else if sod >= sessions[sessions.len() - 1].close {
        pick(lang, "ngoài giờ", "after hours")
    } else {
        pick(lang, "giờ nghỉ trưa", "between sessions")
    };
    match lang {
        Lang::Vi => format!("{head}, {reason} → tính từ {}", f.at(start)),
        Lang::En => format!("{head}, {reason} → counted from {}", f.at(start)),
    }
}

/// Breaks and make-up days between two instants' dates.
fn calendar_lines(
    cal: &Calendar,
    f: &Fmt,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    lang: Lang,
) -> Vec<String> {
    let (a, b) = (cal.local(from).date(), cal.local(to).date());
    let mut out = Vec::new();
    if b < a {
        return out;
    }
    for br in cal.breaks_between(a, b) {
        let names: Vec<&str> = br.names.iter().map(|n| short_holiday(n)).collect();
        let names = names.join(", ");
        out.push(match lang {
            Lang::Vi => format!("nghỉ {names} {}", f.range(br.from, br.to)),
            Lang::En => format!("days off: {names} {}", f.range(br.from, br.to)),
        });
    }
    for d in cal.make_up_days_between(a, b) {
        out.push(match lang {
            Lang::Vi => format!("làm bù {} {}", weekday_vi(d), f.date(d)),
            Lang::En => format!("make-up workday {} {}", d.format("%A"), f.date(d)),
        });
    }
    out
}

fn duration_line(d: &Duration, code: Option<&str>, lang: Lang) -> String {
    let code = code.map(|c| match lang {
        Lang::Vi => format!(" (TTHC {c})"),
        Lang::En => format!(" (procedure {c})"),
    });
    match lang {
        Lang::Vi => format!("thời hạn {}{}", d.to_vietnamese(), code.unwrap_or_default()),
        Lang::En => format!("time limit {d}{}", code.unwrap_or_default()),
    }
}

fn calendar_tag(cal: &Calendar, lang: Lang) -> String {
    match lang {
        Lang::Vi => format!("(lịch {})", cal.version()),
        Lang::En => format!("(calendar {})", cal.version()),
    }
}

/// The trace line saying a due rests on estimated days.
pub fn estimate_line(est: Estimate, lang: Lang) -> String {
    match (est, lang) {
        (Estimate::Year(y), Lang::Vi) => {
            format!("lịch năm {y} là ước tính, chưa có công bố chính thức")
        }
        (Estimate::Year(y), Lang::En) => {
            format!("the {y} calendar is an estimate, not yet officially announced")
        }
        (Estimate::Unconfirmed(d), Lang::Vi) => format!(
            "ngày {} chưa có văn bản xác nhận, hạn là ước tính",
            d.format("%d/%m/%Y")
        ),
        (Estimate::Unconfirmed(d), Lang::En) => format!(
            "{} is not yet confirmed by a notice, the due is an estimate",
            d.format("%d/%m/%Y")
        ),
    }
}

/// A due computed from flags, with its trace (the `deadline` command).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeadlineTrace {
    pub calendar_version: std::sync::Arc<crate::calendar::CalendarVersion>,
    pub start: DateTime<Utc>,
    pub due: Option<DateTime<Utc>>,
    /// The due rests on days of an estimated year or an unconfirmed row.
    pub calendar_estimated: bool,
    pub trace: Vec<String>,
}

/// Computes a due from a receipt and a duration, and explains it.
pub fn explain_deadline(
    cal: &Calendar,
    received: DateTime<Utc>,
    duration: &Duration,
    cutoff: Option<u32>,
    lang: Lang,
) -> Result<DeadlineTrace, CalendarError> {
    let start = cal.snap(received, cutoff)?;
    let due = cal.add(start, duration)?;
    let f = Fmt { cal };
    let mut trace = vec![receipt_line(cal, &f, received, start, cutoff, lang, false)];
    trace.push(duration_line(duration, None, lang));
    let mut estimate = None;
    match due {
        Some(due) => {
            trace.extend(calendar_lines(cal, &f, start, due, lang));
            trace.push(match lang {
                Lang::Vi => format!("hạn {} {}", f.at(due), calendar_tag(cal, lang)),
                Lang::En => format!("due {} {}", f.at(due), calendar_tag(cal, lang)),
            });
            estimate = cal.estimate_in(cal.local(start).date(), cal.local(due).date());
            trace.extend(estimate.map(|e| estimate_line(e, lang)));
        }
        None => trace.push(pick(lang, "không có hạn", "no due date")),
    }
    Ok(DeadlineTrace {
        calendar_version: cal.version().clone(),
        start,
        due,
        calendar_estimated: estimate.is_some(),
        trace,
    })
}

fn state_phrase(state: State, lang: Lang) -> &'static str {
    match (state, lang) {
        (State::NotStarted, Lang::Vi) => "chưa tiếp nhận",
        (State::OnTrack, Lang::Vi) => "trong hạn",
        (State::DueSoon, Lang::Vi) => "sắp đến hạn",
        (State::Overdue, Lang::Vi) => "quá hạn",
        (State::Paused, Lang::Vi) => "tạm dừng",
        (State::NoDeadline, Lang::Vi) => "không có thời hạn",
        (State::NotStarted, Lang::En) => "not started",
        (State::OnTrack, Lang::En) => "on track",
        (State::DueSoon, Lang::En) => "due soon",
        (State::Overdue, Lang::En) => "overdue",
        (State::Paused, Lang::En) => "paused",
        (State::NoDeadline, Lang::En) => "no deadline",
    }
}

fn outcome_phrase(o: Outcome, lang: Lang) -> &'static str {
    match (o, lang) {
        (Outcome::Early, Lang::Vi) => "trước hạn",
        (Outcome::OnTime, Lang::Vi) => "đúng hạn",
        (Outcome::Late, Lang::Vi) => "quá hạn",
        (Outcome::Early, Lang::En) => "early",
        (Outcome::OnTime, Lang::En) => "on time",
        (Outcome::Late, Lang::En) => "late",
    }
}

/// Human wording of a flag.
pub fn flag_phrase(name: &str, lang: Lang) -> &'static str {
    match (name, lang) {
        ("late_supplement_request", Lang::Vi) => "yêu cầu bổ sung muộn (quá 3 ngày làm việc)",
        ("multiple_supplements", Lang::Vi) => "yêu cầu bổ sung nhiều lần",
        ("apology_due", Lang::Vi) => "cần văn bản xin lỗi và đề nghị gia hạn (Mẫu 04)",
        ("reappointed_twice", Lang::Vi) => "hẹn lại quá một lần",
        ("due_beyond_legal", Lang::Vi) => "ngày hẹn trả vượt thời hạn luật định",
        ("step_overdue", Lang::Vi) => "có bước xử lý quá hạn",
        ("returned_late", Lang::Vi) => "trả kết quả muộn",
        ("supplement_after_due", Lang::Vi) => {
            "yêu cầu bổ sung khi đã quá hạn (tạm dừng không làm hồ sơ đúng hạn)"
        }
        ("late_supplement_request", Lang::En) => "late supplement request (after 3 workdays)",
        ("multiple_supplements", Lang::En) => "more than one supplement request",
        ("apology_due", Lang::En) => "apology and re-appointment due",
        ("reappointed_twice", Lang::En) => "re-appointed more than once",
        ("due_beyond_legal", Lang::En) => "appointment beyond the legal time limit",
        ("step_overdue", Lang::En) => "a processing step is overdue",
        ("returned_late", Lang::En) => "result returned late",
        ("supplement_after_due", Lang::En) => {
            "supplement requested after the due (the pause does not make it timely)"
        }
        _ => "",
    }
}

/// Explains a case at `now`: receipt, time limit, days off, supplements, pauses, the
/// due, then state or outcome and flags.
pub fn explain_case(
    case: &Case,
    procedure: Option<&Procedure>,
    cal: &Calendar,
    policy: &Policy,
    now: DateTime<Utc>,
    lang: Lang,
) -> Result<(Evaluation, Vec<String>), CalendarError> {
    let e = evaluate(case, procedure, cal, policy, now)?;
    let rules = policy.rules_for_receipt(case.received_at, cal);
    let f = Fmt { cal };
    let mut out = Vec::new();
    match (case.received_at, e.start) {
        (Some(r), Some(s)) => out.push(receipt_line(
            cal,
            &f,
            r,
            s,
            rules.receipt_cutoff,
            lang,
            false,
        )),
        _ => out.push(pick(lang, "chưa có ngày tiếp nhận", "no receipt time")),
    }
    let duration = procedure.map(|p| p.duration_for(case.channel));
    if let Some(d) = &duration {
        out.push(duration_line(d, procedure.map(|p| p.code.as_str()), lang));
    }
    let supplements = supplement_intervals(case);
    if let (Some(s), Some(first)) = (e.start, e.legal_due_at_receipt) {
        out.extend(calendar_lines(cal, &f, s, first, lang));
        if !supplements.is_empty() || e.legal_due != Some(first) {
            out.push(match lang {
                Lang::Vi => format!("hạn ban đầu {}", f.at(first)),
                Lang::En => format!("initial due {}", f.at(first)),
            });
        }
    } else if let (Some(s), Some(d)) = (e.start, e.due) {
        out.extend(calendar_lines(cal, &f, s, d, lang));
    }
    let mut last_resume = None;
    for (req, res) in &supplements {
        let line = match (res, rules.supplement_view, lang) {
            (Some(r), SupplementView::Restart, Lang::Vi) => {
                last_resume = Some(*r);
                format!(
                    "yêu cầu bổ sung {}, nhận đủ {} → tính lại từ đầu",
                    f.at(*req),
                    f.at(*r)
                )
            }
            (Some(r), SupplementView::Restart, Lang::En) => {
                last_resume = Some(*r);
                format!(
                    "supplement requested {}, received back {} → the time limit restarts",
                    f.at(*req),
                    f.at(*r)
                )
            }
            (Some(r), SupplementView::Pause, Lang::Vi) => {
                format!(
                    "yêu cầu bổ sung {}, nhận đủ {} → tạm dừng",
                    f.at(*req),
                    f.at(*r)
                )
            }
            (Some(r), SupplementView::Pause, Lang::En) => {
                format!(
                    "supplement requested {}, received back {} → paused",
                    f.at(*req),
                    f.at(*r)
                )
            }
            (None, _, Lang::Vi) => format!(
                "yêu cầu bổ sung {}, đang chờ bổ sung → tạm dừng",
                f.at(*req)
            ),
            (None, _, Lang::En) => {
                format!(
                    "supplement requested {}, waiting for the applicant → paused",
                    f.at(*req)
                )
            }
        };
        out.push(line);
    }
    if let (Some(r), Some(due)) = (last_resume, e.legal_due) {
        let from = cal.snap(r, rules.receipt_cutoff)?;
        if from != r {
            out.push(match lang {
                Lang::Vi => format!("tính từ {}", f.at(from)),
                Lang::En => format!("counted from {}", f.at(from)),
            });
        }
        out.extend(calendar_lines(cal, &f, from, due, lang));
    }
    for (a, b) in other_pauses(case, rules) {
        let what = match (status_at(case, a), lang) {
            (Some(s), Lang::Vi) => status::name_vi(s),
            (Some(s), Lang::En) => status::name_en(s),
            (None, _) => "",
        };
        let until = b
            .map(|b| f.at(b))
            .unwrap_or_else(|| pick(lang, "nay", "now"));
        out.push(match lang {
            Lang::Vi => format!("tạm dừng ({what}) {} → {until}", f.at(a)),
            Lang::En => format!("paused ({what}) {} → {until}", f.at(a)),
        });
    }
    if e.paused_work_seconds > 0 && e.due_basis == Some(DueBasis::Computed) {
        let h = e.paused_work_seconds as f64 / 3600.0;
        out.push(match lang {
            Lang::Vi => format!(
                "hạn lùi {} giờ làm việc",
                format!("{h:.1}").replace('.', ",")
            ),
            Lang::En => format!("due moved by {h:.1} working hours"),
        });
    }
    match (e.due, e.due_basis) {
        (Some(d), Some(DueBasis::Source)) => {
            out.push(match lang {
                Lang::Vi => format!("hạn {} theo nguồn {}", f.at(d), calendar_tag(cal, lang)),
                Lang::En => format!(
                    "due {} from the source {}",
                    f.at(d),
                    calendar_tag(cal, lang)
                ),
            });
            if let Some(l) = e.legal_due.filter(|l| *l != d) {
                out.push(match lang {
                    Lang::Vi => format!("hạn theo luật {}", f.at(l)),
                    Lang::En => format!("legal due {}", f.at(l)),
                });
            }
        }
        (Some(d), _) => {
            out.push(match lang {
                Lang::Vi => format!("hạn {} {}", f.at(d), calendar_tag(cal, lang)),
                Lang::En => format!("due {} {}", f.at(d), calendar_tag(cal, lang)),
            });
            out.extend(e.estimate(cal).map(|x| estimate_line(x, lang)));
        }
        (None, _) => out.push(pick(lang, "không có hạn", "no due date")),
    }
    if let Some(state) = e.state {
        let mut s = match lang {
            Lang::Vi => format!("trạng thái: {}", state_phrase(state, lang)),
            Lang::En => format!("state: {}", state_phrase(state, lang)),
        };
        if state == State::Overdue && e.overdue_workdays > 0 {
            s += &match lang {
                Lang::Vi => format!(" {} ngày làm việc", e.overdue_workdays),
                Lang::En => format!(" by {} workdays", e.overdue_workdays),
            };
        }
        if e.stuck {
            s += &pick(lang, ", không có cập nhật", ", stuck");
        }
        out.push(s);
    }
    if let (Some(o), Some(end)) = (e.outcome, e.end) {
        out.push(match lang {
            Lang::Vi => format!("kết thúc {} → {}", f.at(end), outcome_phrase(o, lang)),
            Lang::En => format!("ended {} → {}", f.at(end), outcome_phrase(o, lang)),
        });
    }
    for sr in e.steps.iter().filter(|s| s.overdue) {
        let step = &case.steps[sr.index];
        let title = step
            .title
            .as_deref()
            .or(step.department.as_deref())
            .unwrap_or("?");
        out.push(match lang {
            Lang::Vi => format!("bước «{title}» hạn {} → quá hạn", f.at(sr.due)),
            Lang::En => format!("step «{title}» due {} → overdue", f.at(sr.due)),
        });
    }
    for name in e.flags.names().filter(|n| *n != "step_overdue") {
        out.push(flag_phrase(name, lang).to_string());
    }
    Ok((e, out))
}

fn status_at(case: &Case, at: DateTime<Utc>) -> Option<u8> {
    case.status_history
        .iter()
        .rev()
        .find(|c| c.at <= at)
        .map(|c| c.status)
        .or(Some(case.status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sla::model::Supplement;
    use crate::timefmt::parse_instant;

    fn proc15() -> Procedure {
        Procedure {
            code: "1.004227".into(),
            name: String::new(),
            field: None,
            kind: None,
            duration: Duration::workdays(15),
            online_duration: None,
            steps: Vec::new(),
        }
    }

    /// SPEC §4.10: built-in hours, 15 workdays, received after hours before Tết 2024,
    /// one supplement.
    fn spec_case(cal: &Calendar) -> Case {
        let t = |s: &str| parse_instant(s, cal).unwrap().unwrap();
        Case {
            case_id: "X".into(),
            status: 4,
            received_at: Some(t("2024-01-30 17:40")),
            supplements: vec![Supplement {
                requested_at: t("2024-02-20 09:00"),
                resumed_at: Some(t("2024-02-23 10:00")),
                due_before: None,
                due_after: None,
            }],
            ..Case::default()
        }
    }

    #[test]
    fn the_spec_example_in_vietnamese() {
        let cal = Calendar::builtin();
        let now = parse_instant("2024-02-26 09:00", &cal).unwrap().unwrap();
        let (e, trace) = explain_case(
            &spec_case(&cal),
            Some(&proc15()),
            &cal,
            &Policy::default(),
            now,
            Lang::Vi,
        )
        .unwrap();
        let want = [
            "tiếp nhận 30/01/2024 17:40, ngoài giờ → tính từ 31/01/2024 07:30".to_string(),
            "nghỉ Tết 08–14/02/2024".to_string(),
            "hạn ban đầu 28/02/2024 07:30".to_string(),
            "yêu cầu bổ sung 20/02/2024 09:00, nhận đủ 23/02/2024 10:00 → tính lại từ đầu"
                .to_string(),
            format!("hạn 15/03/2024 10:00 (lịch {})", cal.version()),
        ];
        // The SPEC's phrases appear in this order (other phrases may stand between).
        let mut it = trace.iter();
        for w in &want {
            assert!(it.any(|l| l == w), "missing `{w}` in order in {trace:#?}");
        }
        assert_eq!(e.state, Some(State::OnTrack));
        assert!(trace.contains(&"thời hạn 15 ngày làm việc (TTHC 1.004227)".to_string()));
    }

    #[test]
    fn the_spec_example_in_english() {
        let cal = Calendar::builtin();
        let now = parse_instant("2024-02-26 09:00", &cal).unwrap().unwrap();
        let (_, trace) = explain_case(
            &spec_case(&cal),
            Some(&proc15()),
            &cal,
            &Policy::default(),
            now,
            Lang::En,
        )
        .unwrap();
        assert_eq!(
            trace[0],
            "received 30/01/2024 17:40, after hours → counted from 31/01/2024 07:30"
        );
        assert!(
            trace.contains(&"days off: Tết 08–14/02/2024".to_string()),
            "{trace:#?}"
        );
        assert!(trace.contains(&format!(
            "due 15/03/2024 10:00 (calendar {})",
            cal.version()
        )));
        assert!(trace.contains(&"state: on track".to_string()));
        // Requested 20/02, long after start + 3 workdays (05/02): flagged, in words.
        assert_eq!(
            trace.last().unwrap(),
            "late supplement request (after 3 workdays)"
        );
    }

    #[test]
    fn deadline_trace_names_make_up_days_and_reasons() {
        let cal = Calendar::builtin();
        let r = parse_instant("2024-04-26 12:00", &cal).unwrap().unwrap();
        let t = explain_deadline(&cal, r, &Duration::workdays(3), None, Lang::Vi).unwrap();
        assert_eq!(
            t.trace[0],
            "tiếp nhận 26/04/2024 12:00, giờ nghỉ trưa → tính từ 26/04/2024 13:30"
        );
        assert!(t.trace.contains(&"nghỉ hoán đổi ngày làm việc, Ngày Chiến thắng 30/4, Ngày Quốc tế Lao động 29/04–01/05/2024".to_string()), "{:#?}", t.trace);
        assert!(t.trace.contains(&"làm bù thứ Bảy 04/05/2024".to_string()));
        let holiday = parse_instant("2024-09-02 09:00", &cal).unwrap().unwrap();
        let t = explain_deadline(
            &cal,
            holiday,
            &Duration::workdays(1),
            Some(15 * 3600),
            Lang::En,
        )
        .unwrap();
        assert_eq!(
            t.trace[0],
            "received 02/09/2024 09:00, holiday → counted from 04/09/2024 07:30"
        );
        let late = parse_instant("2024-09-04 15:10", &cal).unwrap().unwrap();
        let t = explain_deadline(
            &cal,
            late,
            &Duration::workdays(1),
            Some(15 * 3600),
            Lang::Vi,
        )
        .unwrap();
        assert_eq!(
            t.trace[0],
            "tiếp nhận 04/09/2024 15:10, sau 15:00 → tính từ 05/09/2024 07:30"
        );
    }
}
