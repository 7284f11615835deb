//! `slawatch calendar diff` (SPEC §9) and the reload line of `check-config`: what a
//! calendar change does to the cases in the store, read-only. The comparison itself is
//! [`crate::sla::compare`]; this module reads the store and writes the report.

use crate::calendar::Calendar;
use crate::config::Loaded;
use crate::sla::compare::{self, CaseChange, Diff, ReloadSummary, Sides, Standing, Stored};
use crate::sla::model::Case;
use crate::sla::ratio::{Period, PeriodKind, Ratio};
use crate::store::{self, EvalSummary};
use crate::timefmt::{human, rfc3339};
use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

/// How the report is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    /// Per-unit summary, then the changed cases.
    Text,
    /// Everything, for tools.
    Json,
    /// The changed cases, one row each.
    Csv,
}

/// The comparison and what it was made of.
pub struct Report {
    pub diff: Diff,
    pub current: String,
    pub current_file: String,
    pub new: String,
    pub new_file: String,
    /// Seconds spent reading the store and comparing.
    pub read_seconds: f64,
    pub compare_seconds: f64,
}

/// Reads the held cases and compares them under the configured calendar and the one
/// with `new_file` as its official days, at `now`. Never writes.
pub async fn diff(loaded: &Loaded, new_file: &Path, now: DateTime<Utc>) -> Result<Report> {
    let before = loaded.calendar();
    let after = loaded.calendar_with_official(new_file)?;
    let url = &loaded.config.store.url;
    let store = store::open_read_only(url)
        .await
        .with_context(|| format!("opening the store {}", crate::store::redact_url(url)))?;
    let year_start = Period::containing(PeriodKind::Year, now, &before).start;
    let t = Instant::now();
    let mut cases: Vec<Case> = Vec::new();
    store
        .load_held_each(Some(year_start), &mut |c, _| cases.push(c))
        .await
        .context("reading the cases")?;
    store.close().await;
    let read_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let diff = compare::compare(
        &cases,
        &Sides {
            before: &before,
            after: &after,
            policy: &loaded.policy,
            catalogue: &loaded.catalogue,
            now,
        },
    );
    Ok(Report {
        diff,
        current: before.version().to_string(),
        current_file: loaded.official_days_file(),
        new: after.version().to_string(),
        new_file: new_file.display().to_string(),
        read_seconds,
        compare_seconds: t.elapsed().as_secs_f64(),
    })
}

/// What a reload would move, from the daemon's stored evaluations of the open cases;
/// `None` when the store cannot be read (no store yet, not reachable).
pub async fn reload_summary(
    loaded: &Loaded,
    cal: &Calendar,
) -> Result<ReloadSummary, store::StoreError> {
    let store = store::open_read_only(&loaded.config.store.url).await?;
    let mut summary = ReloadSummary::default();
    let result = store
        .load_held_each(None, &mut |case, stored: Option<EvalSummary>| {
            if let Some(e) = stored {
                summary.add(
                    &case,
                    &Stored {
                        due: e.due,
                        state: e.state.map(|s| s.as_str()),
                        evaluated_at: e.evaluated_at,
                        calendar_version: &e.calendar_version,
                    },
                    cal,
                    &loaded.policy,
                    &loaded.catalogue,
                );
            }
        })
        .await;
    store.close().await;
    result.map(|_| summary)
}

/// The one line `check-config` prints about a reload.
pub fn reload_line(s: &ReloadSummary, cal: &Calendar) -> String {
    let new = cal.version().to_string();
    let held: u64 = s.stored_versions.values().sum();
    if s.compared == 0 {
        return format!(
            "calendar reload: no change ({held} open cases evaluated with {new} already)"
        );
    }
    let old: Vec<&str> = s
        .stored_versions
        .keys()
        .map(String::as_str)
        .filter(|v| *v != new)
        .collect();
    if s.dues_moved == 0 && s.states_changed == 0 {
        return format!(
            "calendar reload: {} → {new} moves no due and changes no state of {} open cases",
            old.join(", "),
            s.compared
        );
    }
    format!(
        "calendar reload: {} → {new}: dues moved {} of {} open cases ({} earlier, {} later), states changed {}, units {}; `slawatch calendar diff` lists them",
        old.join(", "),
        s.dues_moved,
        s.compared,
        s.earlier,
        s.later,
        s.states_changed,
        s.units.len()
    )
}

fn percent(r: &Ratio) -> String {
    match r.value() {
        Some(v) => format!("{}/{} ({})", r.on_time, r.population, vi_percent(v)),
        None => "—".into(),
    }
}

/// `91,7%`: one decimal, a decimal comma.
fn vi_percent(v: f64) -> String {
    format!("{:.1}%", v * 100.0).replace('.', ",")
}

fn on_time_word(x: Option<bool>) -> &'static str {
    match x {
        Some(true) => "on time",
        Some(false) => "late",
        None => "-",
    }
}

/// Pads columns to their widest cell (counted in characters).
fn table(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line += c;
            if i + 1 < r.len() {
                line += &" ".repeat(widths[i] - c.chars().count() + 2);
            }
        }
        out += line.trim_end();
        out.push('\n');
    }
    out
}

fn period_label(p: &Period) -> String {
    format!("766 {} {}", p.kind.as_str(), p.label)
}

/// The text report.
pub fn text(r: &Report, loaded: &Loaded, cal: &Calendar) -> String {
    let d = &r.diff;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "calendar diff at {} ({})",
        cal.local(d.now).format("%d/%m/%Y %H:%M"),
        cal.zone().name()
    );
    let _ = writeln!(out, "  current: {} ({})", r.current, r.current_file);
    let _ = writeln!(out, "  new:     {} ({})", r.new, r.new_file);
    let _ = writeln!(
        out,
        "read {} open cases and {} ended since {}",
        d.total.open,
        d.total.ended,
        d.periods
            .iter()
            .map(|p| p.start)
            .min()
            .map(|t| cal.local(t).format("%d/%m/%Y").to_string())
            .unwrap_or_default()
    );
    for e in &d.errors {
        let _ = writeln!(out, "warning: not evaluated: {e}");
    }
    if !d.changed() {
        let _ = writeln!(
            out,
            "\nno change: the new calendar moves no due and changes no state, outcome or 766 ratio"
        );
        return out;
    }
    let _ = writeln!(
        out,
        "\ndues moved: {} ({} earlier, {} later); states changed: {}; outcomes changed: {}; units touched: {} of {}\n",
        d.total.dues_moved,
        d.total.earlier,
        d.total.later,
        d.total.states_changed,
        d.total.outcomes_changed,
        d.units.values().filter(|u| u.changed()).count(),
        d.units.len()
    );
    let mut rows = vec![{
        let mut h: Vec<String> = [
            "unit",
            "name",
            "open",
            "dues moved",
            "earlier",
            "later",
            "states changed",
            "outcomes changed",
            "on estimated days",
        ]
        .map(String::from)
        .to_vec();
        h.extend(d.periods.iter().map(period_label));
        h
    }];
    let row = |u: &compare::UnitDiff, name: String| {
        let mut v = vec![
            u.unit.clone(),
            name,
            u.open.to_string(),
            u.dues_moved.to_string(),
            u.earlier.to_string(),
            u.later.to_string(),
            u.states_changed.to_string(),
            u.outcomes_changed.to_string(),
            if u.estimated_before == u.estimated_after {
                u.estimated_after.to_string()
            } else {
                format!("{} → {}", u.estimated_before, u.estimated_after)
            },
        ];
        for p in &d.periods {
            let r = u.ratios.get(p.kind.as_str()).cloned().unwrap_or_default();
            v.push(if r.before == r.after {
                percent(&r.before)
            } else {
                format!("{} → {}", percent(&r.before), percent(&r.after))
            });
        }
        v
    };
    for u in d.units.values().filter(|u| u.changed()) {
        let name = loaded
            .directory
            .get(&u.unit)
            .map(|x| x.name.clone())
            .unwrap_or_default();
        rows.push(row(u, name));
    }
    rows.push(row(&d.total, "all units".into()));
    out += &table(&rows);
    for u in d.units.values().filter(|u| u.changed()) {
        for (how, n) in u.state_changes.iter() {
            let _ = writeln!(out, "  {}: state {how}: {n}", u.unit);
        }
        for (how, n) in u.outcome_changes.iter() {
            let _ = writeln!(out, "  {}: outcome {how}: {n}", u.unit);
        }
    }
    let _ = writeln!(out, "\nchanged cases ({}):", d.cases.len());
    let mut rows = Vec::new();
    for c in &d.cases {
        let mut what = Vec::new();
        if c.open {
            if let Some(m) = c.due_move() {
                what.push(format!(
                    "due {} → {} ({m})",
                    due_text(c.before.due, cal),
                    due_text(c.after.due, cal)
                ));
            }
            if c.before.state != c.after.state {
                what.push(format!(
                    "state {} → {}",
                    c.before.state.unwrap_or("-"),
                    c.after.state.unwrap_or("-")
                ));
            }
        } else if c.before.outcome != c.after.outcome {
            what.push(format!(
                "ended, outcome {} → {}",
                c.before.outcome.unwrap_or("-"),
                c.after.outcome.unwrap_or("-")
            ));
        }
        if c.before.on_time != c.after.on_time {
            what.push(format!(
                "766 {} → {}",
                on_time_word(c.before.on_time),
                on_time_word(c.after.on_time)
            ));
        }
        if c.before.estimated != c.after.estimated {
            what.push(
                if c.after.estimated {
                    "now on estimated days"
                } else {
                    "no longer estimated"
                }
                .into(),
            );
        }
        rows.push(vec![
            format!("  {} / {}", c.source, c.case_id),
            c.unit.clone(),
            what.join(", "),
        ]);
    }
    out += &table(&rows);
    out
}

fn due_text(t: Option<DateTime<Utc>>, cal: &Calendar) -> String {
    t.map(|t| human(t, cal)).unwrap_or_else(|| "none".into())
}

fn standing_json(s: &Standing, cal: &Calendar) -> Value {
    json!({
        "due": s.due.map(|t| rfc3339(t, cal)),
        "state": s.state,
        "outcome": s.outcome,
        "on_time": s.on_time,
        "calendar_estimated": s.estimated,
    })
}

fn ratio_json(r: &Ratio) -> Value {
    json!({"on_time": r.on_time, "population": r.population, "ratio": r.value()})
}

fn unit_json(u: &compare::UnitDiff, d: &Diff, name: Option<&str>) -> Value {
    json!({
        "unit": u.unit,
        "name": name,
        "open": u.open,
        "ended": u.ended,
        "dues_moved": u.dues_moved,
        "earlier": u.earlier,
        "later": u.later,
        "states_changed": u.states_changed,
        "state_changes": u.state_changes,
        "outcomes_changed": u.outcomes_changed,
        "outcome_changes": u.outcome_changes,
        "estimated_before": u.estimated_before,
        "estimated_after": u.estimated_after,
        "ratios": d.periods.iter().map(|p| {
            let r = u.ratios.get(p.kind.as_str()).cloned().unwrap_or_default();
            json!({"period": p.kind.as_str(), "label": p.label, "before": ratio_json(&r.before), "after": ratio_json(&r.after)})
        }).collect::<Vec<_>>(),
    })
}

fn case_json(c: &CaseChange, cal: &Calendar) -> Value {
    json!({
        "source": c.source,
        "case_id": c.case_id,
        "kind": c.kind.as_str(),
        "unit": c.unit,
        "open": c.open,
        "due_move": c.due_move().filter(|_| c.open),
        "before": standing_json(&c.before, cal),
        "after": standing_json(&c.after, cal),
    })
}

/// The JSON report.
pub fn json(r: &Report, loaded: &Loaded, cal: &Calendar) -> Value {
    let d = &r.diff;
    json!({
        "now": rfc3339(d.now, cal),
        "changed": d.changed(),
        "current": {"calendar_version": r.current, "file": r.current_file},
        "new": {"calendar_version": r.new, "file": r.new_file},
        "periods": d.periods.iter().map(|p| json!({
            "period": p.kind.as_str(), "label": p.label,
            "from": rfc3339(p.start, cal), "to": rfc3339(p.end, cal),
        })).collect::<Vec<_>>(),
        "total": unit_json(&d.total, d, None),
        "units": d.units.values().map(|u| {
            let name = loaded.directory.get(&u.unit).map(|x| x.name.as_str());
            unit_json(u, d, name)
        }).collect::<Vec<_>>(),
        "cases": d.cases.iter().map(|c| case_json(c, cal)).collect::<Vec<_>>(),
        "errors": d.errors,
        "timing": {"read_seconds": r.read_seconds, "compare_seconds": r.compare_seconds},
    })
}

/// The changed cases as CSV.
pub fn csv(r: &Report, cal: &Calendar) -> Result<String> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    w.write_record([
        "source",
        "case_id",
        "kind",
        "unit",
        "open",
        "due_before",
        "due_after",
        "due_move",
        "state_before",
        "state_after",
        "outcome_before",
        "outcome_after",
        "on_time_before",
        "on_time_after",
        "estimated_before",
        "estimated_after",
    ])?;
    let t = |x: Option<DateTime<Utc>>| x.map(|t| rfc3339(t, cal)).unwrap_or_default();
    let b = |x: Option<bool>| x.map(|v| v.to_string()).unwrap_or_default();
    for c in &r.diff.cases {
        w.write_record([
            c.source.clone(),
            c.case_id.clone(),
            c.kind.as_str().to_string(),
            c.unit.clone(),
            c.open.to_string(),
            t(c.before.due),
            t(c.after.due),
            c.due_move()
                .filter(|_| c.open)
                .unwrap_or_default()
                .to_string(),
            c.before.state.unwrap_or_default().to_string(),
            c.after.state.unwrap_or_default().to_string(),
            c.before.outcome.unwrap_or_default().to_string(),
            c.after.outcome.unwrap_or_default().to_string(),
            b(c.before.on_time),
            b(c.after.on_time),
            c.before.estimated.to_string(),
            c.after.estimated.to_string(),
        ])?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}
