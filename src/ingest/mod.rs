//! The one door for records into slawatch: a poll's pages, a push, a quarantine retry
//! or a re-fetch all arrive as a [`Delivery`] and go through [`prepare`] (normalise,
//! merge with what is known — the poll's earlier pages, memory, then the store —
//! evaluate, quarantine what cannot be read) and [`apply`] (commit, then bring the
//! open cases in memory up to the commit). A poll commits its pages pipelined
//! ([`commit_pipelined`]).
//!
//! It never schedules anything and never reads the system time: `now` is passed in.
//! Memory never runs ahead of the store. The pure merge of one record into a case is
//! [`merge`].

pub mod merge;

pub use merge::{merge, merge_steps, Change};

use crate::calendar::Calendar;
use crate::sla::model::Case;
use crate::sla::Lifecycle;
use crate::source::normalize::{normalize, redact_in_place, Mapping, Normalized};
use crate::source::RawRecord;
use crate::state::{summarize, Entry, IngestStats, Shared};
use crate::store::{Batch, CaseRow, QuarantineNew, Store, StoreError, VersionRow};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};

fn version_hash(body: &str) -> String {
    Sha256::digest(body.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What one poll, push or retry delivers to [`ingest`].
#[derive(Debug, Default)]
pub struct Delivery {
    pub records: Vec<RawRecord>,
    /// The cursor to store with the records (polls).
    pub cursor: Option<String>,
    /// Files read (file source).
    pub files: Vec<(String, String)>,
    /// Quarantine rows this delivery re-normalised (retry).
    pub resolved: Vec<i64>,
}

impl Delivery {
    pub fn records(records: Vec<RawRecord>) -> Delivery {
        Delivery {
            records,
            ..Delivery::default()
        }
    }
}

/// What a poll has prepared but maybe not yet committed, so that its next page sees
/// its earlier pages: the cases they changed and the steps they left waiting.
///
/// Only the last few pages are kept: every page older than those that can be queued,
/// held or committing is already in memory (the committer remembers them in order),
/// so the overlay stays small however long the poll.
#[derive(Default)]
pub struct Overlay {
    generations: std::collections::VecDeque<HashMap<String, Case>>,
    pending: HashMap<String, Vec<crate::sla::model::Step>>,
}

/// Pages an overlay remembers: while one page is prepared, one waits in the channel,
/// one is held by the committer waiting for room, and [`COMMITS_IN_FLIGHT`] are
/// committing; one more for safety.
const OVERLAY_PAGES: usize = COMMITS_IN_FLIGHT + 3;

impl Overlay {
    fn get(&self, id: &str) -> Option<&Case> {
        self.generations.iter().rev().find_map(|g| g.get(id))
    }

    fn push(&mut self, cases: HashMap<String, Case>) {
        self.generations.push_back(cases);
        while self.generations.len() > OVERLAY_PAGES {
            self.generations.pop_front();
        }
    }
}

/// A rejected record's change time, when its body still says it.
fn change_time_of(v: &Value, mapping: &Mapping, cal: &Calendar) -> Option<DateTime<Utc>> {
    let p = mapping.fields.get("updated_at")?;
    let text = match v.pointer(p)? {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    crate::timefmt::parse_instant(&text, cal).ok().flatten()
}

/// A prepared delivery: the batch to commit and its counts.
pub struct Prepared {
    pub batch: Batch,
    pub stats: IngestStats,
    pub times: ChangeTimes,
}

/// The change times a delivery's case records carried, for a cursor that follows the
/// source's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChangeTimes {
    /// The newest change time of any record.
    pub newest: Option<DateTime<Utc>>,
    /// The newest change time of a record that was new or changed.
    pub newest_changed: Option<DateTime<Utc>>,
    /// Some case record carried no change time.
    pub untimed: bool,
}

impl ChangeTimes {
    pub fn add(&mut self, o: ChangeTimes) {
        self.newest = self.newest.max(o.newest);
        self.newest_changed = self.newest_changed.max(o.newest_changed);
        self.untimed |= o.untimed;
    }
}

/// Normalises, merges and evaluates one delivery against what is known (the overlay,
/// memory, then the store). Writes nothing.
pub async fn prepare(
    shared: &Shared,
    source: &str,
    mapping: &Mapping,
    delivery: Delivery,
    now: DateTime<Utc>,
    overlay: &mut Overlay,
) -> Result<Prepared, StoreError> {
    let Delivery {
        records,
        cursor,
        files,
        resolved,
    } = delivery;
    let ctx = shared.context();
    let mut batch = Batch::new(source, now);
    batch.writer = shared.holder.clone();
    let mut stats = IngestStats::default();
    let mut items: Vec<(Normalized, String)> = Vec::new();
    for rec in records {
        match rec.value {
            Err((text, why)) => batch.quarantine.push(QuarantineNew {
                case_id: None,
                reason: format!("{}: {why}", rec.origin),
                body: text,
                changed_at: None,
            }),
            Ok(mut v) => match normalize(&v, mapping, source, &ctx.calendar, &shared.salt) {
                Ok(n) => {
                    // Raw versions are history, not a copy of the applicant's identity.
                    redact_in_place(&mut v);
                    items.push((n, v.to_string()));
                }
                Err(r) => batch.quarantine.push(QuarantineNew {
                    case_id: r.case_id,
                    reason: format!("{}: {}", rec.origin, r.reason),
                    changed_at: change_time_of(&v, mapping, &ctx.calendar),
                    body: v.to_string(),
                }),
            },
        }
    }
    stats.quarantined = batch.quarantine.len();

    // What is known of these cases: this poll's earlier pages, memory, the store.
    let ids: HashSet<String> = items
        .iter()
        .map(|(n, _)| match n {
            Normalized::Case { case, .. } => case.case_id.clone(),
            Normalized::Steps { case_id, .. } => case_id.clone(),
        })
        .collect();
    let mut working: HashMap<String, Case> = HashMap::new();
    {
        let open = shared.open.lock().expect("open lock");
        for id in &ids {
            if let Some(c) = overlay.get(id) {
                working.insert(id.clone(), c.clone());
            } else if let Some(e) = open.get(&(source.to_string(), id.clone())) {
                working.insert(id.clone(), e.case.clone());
            }
        }
    }
    let missing: Vec<String> = ids
        .iter()
        .filter(|id| !working.contains_key(*id))
        .cloned()
        .collect();
    if !missing.is_empty() {
        for c in shared.store.get_cases(source, &missing).await? {
            working.insert(c.case_id.clone(), c);
        }
    }
    let unknown: Vec<String> = ids
        .iter()
        .filter(|id| !working.contains_key(*id))
        .cloned()
        .collect();
    let mut pending = if unknown.is_empty() {
        HashMap::new()
    } else {
        shared.store.pending_steps(source, &unknown).await?
    };
    for id in &unknown {
        if let Some(steps) = overlay.pending.get(id) {
            pending
                .entry(id.clone())
                .or_default()
                .extend(steps.iter().cloned());
        }
    }

    let mut changed: Vec<String> = Vec::new();
    let mut changed_set: HashSet<String> = HashSet::new();
    let mut times = ChangeTimes::default();
    // Cases first, then separate steps: a step that comes before its case in the same
    // delivery still finds it.
    let (mut items, steps): (Vec<_>, Vec<_>) = items
        .into_iter()
        .partition(|(n, _)| matches!(n, Normalized::Case { .. }));
    items.extend(steps);
    for (n, body) in items {
        match n {
            Normalized::Case { case, source_time } => {
                batch.valid.push((case.case_id.clone(), source_time));
                times.newest = times.newest.max(source_time);
                times.untimed |= source_time.is_none();
                let id = case.case_id.clone();
                let existing = working.get(&id);
                let steps = if existing.is_none() {
                    overlay.pending.remove(&id);
                    pending
                        .remove(&id)
                        .inspect(|_| batch.pending_clear.push(id.clone()))
                        .unwrap_or_default()
                } else {
                    Vec::new()
                };
                let (merged, change) =
                    merge(existing, *case, source_time, now, steps, &ctx.directory);
                match change {
                    Change::Inserted => stats.inserted += 1,
                    Change::Updated => stats.updated += 1,
                    Change::Unchanged | Change::Stale => stats.unchanged += 1,
                }
                if matches!(change, Change::Inserted | Change::Updated) {
                    times.newest_changed = times.newest_changed.max(source_time);
                    batch.versions.push(VersionRow {
                        case_id: id.clone(),
                        hash: version_hash(&body),
                        body,
                    });
                    working.insert(id.clone(), merged);
                    if changed_set.insert(id.clone()) {
                        changed.push(id);
                    }
                }
            }
            Normalized::Steps { case_id, steps } => match working.get(&case_id) {
                Some(existing) => match merge_steps(existing, steps, now, &ctx.directory) {
                    Some(m) => {
                        stats.updated += 1;
                        working.insert(case_id.clone(), m);
                        if changed_set.insert(case_id.clone()) {
                            changed.push(case_id);
                        }
                    }
                    None => stats.unchanged += 1,
                },
                None => {
                    stats.inserted += 1;
                    overlay
                        .pending
                        .entry(case_id.clone())
                        .or_default()
                        .extend(steps.iter().cloned());
                    batch
                        .pending_add
                        .extend(steps.into_iter().map(|s| (case_id.clone(), s)));
                }
            },
        }
    }
    {
        let mut interner = shared.interner.lock().expect("interner lock");
        for id in &changed {
            if let Some(c) = working.get_mut(id) {
                interner.case(c);
            }
        }
    }
    let mut generation = HashMap::with_capacity(changed.len());
    for id in &changed {
        let case = &working[id];
        generation.insert(id.clone(), case.clone());
        match ctx.evaluate(case, now) {
            Ok(e) => batch.cases.push(CaseRow {
                open: e.lifecycle == Lifecycle::Open,
                eval: Some(summarize(case, &ctx, &e, now)),
                case: case.clone(),
            }),
            Err(e) => {
                tracing::warn!(source, case_id = %id, error = %e, "cannot evaluate");
                batch.cases.push(CaseRow::new(case.clone(), None));
            }
        }
    }
    overlay.push(generation);
    batch.cursor = cursor;
    batch.files = files;
    batch.resolved = resolved;
    Ok(Prepared {
        batch,
        stats,
        times,
    })
}

/// Commits a prepared batch, then updates the open cases in memory.
pub async fn apply(shared: &Shared, batch: Batch) -> Result<(), StoreError> {
    let _gate = shared.write_gate.read().await;
    commit_timed(shared.store.as_ref(), &batch).await?;
    remember(shared, batch);
    Ok(())
}

async fn commit_timed(store: &dyn Store, batch: &Batch) -> Result<(), StoreError> {
    let committing = std::time::Instant::now();
    store.commit(batch).await?;
    tracing::debug!(
        source = %batch.source,
        cases = batch.cases.len(),
        commit_ms = committing.elapsed().as_millis() as u64,
        "batch committed"
    );
    Ok(())
}

/// Brings the open cases in memory up to a committed batch.
fn remember(shared: &Shared, batch: Batch) {
    let source = batch.source;
    if batch.cases.iter().any(|r| !r.open) {
        shared.finished.lock().expect("finished lock").stale = true;
    }
    let mut open = shared.open.lock().expect("open lock");
    for row in batch.cases {
        let key = (source.clone(), row.case.case_id.clone());
        if row.open {
            open.insert(key, Entry::new(row.case, row.eval));
        } else {
            open.remove(&key);
        }
    }
}

/// How many page batches of one poll may be committing at once, each on its own
/// connection. Batches that share a case or a quarantined body never overlap.
const COMMITS_IN_FLIGHT: usize = 2;

/// The rows a batch locks, as far as another batch of the same poll could share them.
fn batch_keys(batch: &Batch) -> HashSet<String> {
    let mut keys: HashSet<String> = batch
        .cases
        .iter()
        .map(|r| r.case.case_id.clone())
        .chain(batch.pending_add.iter().map(|(id, _)| id.clone()))
        .chain(batch.pending_clear.iter().cloned())
        .collect();
    keys.extend(batch.quarantine.iter().map(|q| format!("\0q{}", q.body)));
    keys
}

/// What the committed pages of one poll brought.
#[derive(Clone, Copy, Debug, Default)]
pub struct Committed {
    pub records: usize,
    pub stats: IngestStats,
    pub times: ChangeTimes,
}

/// One page of a poll, prepared: its batch, its counts and its change times.
pub struct PreparedPage {
    pub batch: Batch,
    pub records: usize,
    pub stats: IngestStats,
    pub times: ChangeTimes,
}

/// Commits the batches of one poll in order of arrival with up to
/// [`COMMITS_IN_FLIGHT`] transactions open at once. Memory follows in the same order,
/// and only for batches the store has committed, so it never runs ahead of the store;
/// the ingest counters count each batch as it commits, so they match the store even
/// when a later page fails. Returns what was committed, and the first error.
pub async fn commit_pipelined(
    shared: &Shared,
    mut batches: tokio::sync::mpsc::Receiver<PreparedPage>,
) -> (Committed, Result<(), StoreError>) {
    type Meta = (usize, IngestStats, ChangeTimes);
    type Pending = (
        HashSet<String>,
        tokio::task::JoinHandle<(Batch, Result<(), StoreError>)>,
        tokio::sync::OwnedRwLockReadGuard<()>,
        Meta,
    );
    let mut inflight: std::collections::VecDeque<Pending> = Default::default();
    let mut failed: Option<StoreError> = None;
    let mut committed = Committed::default();
    let mut settle =
        |done: (Batch, Result<(), StoreError>), meta: Meta, failed: &mut Option<StoreError>| {
            let (batch, result) = done;
            match result {
                Ok(()) => {
                    shared.count_ingest(&batch.source, &meta.1);
                    shared.metrics_changed();
                    committed.records += meta.0;
                    committed.stats.add(meta.1);
                    committed.times.add(meta.2);
                    remember(shared, batch);
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        };
    enum Step {
        Settled(Result<(Batch, Result<(), StoreError>), tokio::task::JoinError>),
        Page(Option<PreparedPage>),
    }
    loop {
        // A commit that finishes is settled at once (memory and counters follow the
        // store even while the next page is slow to come), oldest first.
        let step = match inflight.front_mut() {
            Some(front) => tokio::select! {
                done = &mut front.1 => Step::Settled(done),
                page = batches.recv() => Step::Page(page),
            },
            None => Step::Page(batches.recv().await),
        };
        let page = match step {
            Step::Settled(done) => {
                let (_, _, _gate, meta) = inflight.pop_front().expect("a commit in flight");
                settle(joined(done), meta, &mut failed);
                continue;
            }
            Step::Page(None) => break,
            Step::Page(Some(page)) => page,
        };
        if failed.is_some() {
            break;
        }
        let PreparedPage {
            batch,
            records,
            stats,
            times,
        } = page;
        let keys = batch_keys(&batch);
        while inflight.len() >= COMMITS_IN_FLIGHT
            || inflight.iter().any(|(k, _, _, _)| !k.is_disjoint(&keys))
        {
            let (_, handle, _gate, meta) = inflight.pop_front().expect("a commit in flight");
            settle(join_commit(handle).await, meta, &mut failed);
        }
        // A re-evaluation waiting for the gate goes first; the batches in flight let
        // go of it before this one waits (else each would wait for the other).
        let gate = match shared.write_gate.clone().try_read_owned() {
            Ok(g) => g,
            Err(_) => {
                while let Some((_, handle, _gate, meta)) = inflight.pop_front() {
                    settle(join_commit(handle).await, meta, &mut failed);
                }
                shared.write_gate.clone().read_owned().await
            }
        };
        let store = shared.store.clone();
        inflight.push_back((
            keys,
            tokio::spawn(async move {
                let result = commit_timed(store.as_ref(), &batch).await;
                (batch, result)
            }),
            gate,
            (records, stats, times),
        ));
    }
    while let Some((_, handle, _gate, meta)) = inflight.pop_front() {
        settle(join_commit(handle).await, meta, &mut failed);
    }
    let result = match failed {
        Some(e) => Err(e),
        None => Ok(()),
    };
    (committed, result)
}

async fn join_commit(
    handle: tokio::task::JoinHandle<(Batch, Result<(), StoreError>)>,
) -> (Batch, Result<(), StoreError>) {
    joined(handle.await)
}

fn joined(
    done: Result<(Batch, Result<(), StoreError>), tokio::task::JoinError>,
) -> (Batch, Result<(), StoreError>) {
    match done {
        Ok(done) => done,
        // A panicking commit task is a bug; its batch is gone, so the poll fails and
        // the cursor stays where it was.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Normalises, merges, evaluates and stores one delivery of records — the same for
/// every source, push and quarantine retries. Memory is updated only after the
/// batch is committed.
pub async fn ingest(
    shared: &Shared,
    source: &str,
    mapping: &Mapping,
    delivery: Delivery,
    now: DateTime<Utc>,
) -> Result<IngestStats, StoreError> {
    let p = prepare(
        shared,
        source,
        mapping,
        delivery,
        now,
        &mut Overlay::default(),
    )
    .await?;
    apply(shared, p.batch).await?;
    Ok(p.stats)
}
