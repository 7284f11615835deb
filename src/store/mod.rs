//! The store (SPEC §6): cases with their history, evaluations, raw versions, cursors,
//! quarantine, job runs. One interface, two backends: SQLite (embedded, the default)
//! and PostgreSQL (production), each with its own SQL and migrations.
//!
//! A poll's effects are written as one [`Batch`] in one transaction — cases, raw
//! versions, pending steps, quarantine rows, the files read and the cursor — so a
//! crash (even `kill -9`) leaves either all of it or none, and the next poll resumes
//! from the cursor that matches what is stored. Upserts are idempotent and never let
//! an older `updated_at` overwrite a newer one.

/// The stored evaluation of a `cases` row that selected its evaluation columns, on
/// either backend.
macro_rules! stored_eval_of {
    ($r:expr) => {
        super::sqlite::stored_eval(
            $r.try_get("state")?,
            $r.try_get("outcome")?,
            $r.try_get("flags")?,
            $r.try_get("stuck")?,
            $r.try_get("effective_due")?,
            $r.try_get("overdue_workdays")?,
            $r.try_get("evaluated_at")?,
            $r.try_get("calendar_version")?,
        )
        .map(|e| EvalSummary {
            ended_at: $r.try_get("ended_at").ok().flatten(),
            on_time: $r.try_get("on_time").ok().flatten(),
            calendar_estimated: $r.try_get("calendar_estimated").unwrap_or(false),
            ..e
        })
    };
}

#[macro_use]
mod shared;
pub mod postgres;
pub mod sqlite;

use crate::sla::model::{Case, Step};
use crate::sla::{Evaluation, Flags, Lifecycle, Outcome, State};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored case {origin}/{case_id} is unreadable: {message}")]
    Corrupt {
        origin: String,
        case_id: String,
        message: String,
    },
    #[error("{0}")]
    Config(String),
}

/// The latest evaluation of a case, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalSummary {
    pub state: Option<State>,
    pub outcome: Option<Outcome>,
    pub flags: Flags,
    pub stuck: bool,
    pub due: Option<DateTime<Utc>>,
    pub overdue_workdays: i32,
    pub evaluated_at: DateTime<Utc>,
    pub calendar_version: String,
    /// The due rests on estimated days (see `Evaluation::calendar_estimated`).
    pub calendar_estimated: bool,
    /// When the case ended (finish, withdrawal, terminal stop, refusal).
    pub ended_at: Option<DateTime<Utc>>,
    /// Indicator 2.1 of an ended case (SPEC §4.7); `None` outside its population.
    pub on_time: Option<bool>,
}

impl EvalSummary {
    pub fn of(e: &Evaluation, at: DateTime<Utc>) -> EvalSummary {
        EvalSummary {
            state: e.state,
            outcome: e.outcome,
            flags: e.flags,
            stuck: e.stuck,
            due: e.due,
            overdue_workdays: e.overdue_workdays as i32,
            evaluated_at: at,
            calendar_version: e.calendar.to_string(),
            calendar_estimated: e.calendar_estimated,
            ended_at: e.end,
            on_time: None,
        }
    }

    /// With the case's indicator 2.1 judgement.
    pub fn judged(mut self, on_time: Option<bool>) -> EvalSummary {
        self.on_time = on_time;
        self
    }

    /// Whether two summaries say the same (ignoring when they were made).
    pub fn same_as(&self, other: &EvalSummary) -> bool {
        self.state == other.state
            && self.outcome == other.outcome
            && self.flags == other.flags
            && self.stuck == other.stuck
            && self.due == other.due
            && self.overdue_workdays == other.overdue_workdays
            && self.calendar_version == other.calendar_version
            && self.calendar_estimated == other.calendar_estimated
            && self.ended_at == other.ended_at
            && self.on_time == other.on_time
    }
}

/// Stored cases as a report reads them ([`Store::load_report_each`]): either one case
/// with its document (`case`), or `count` cases that ended in the period and share
/// these columns, counted by the store (an ended case on time or early, not refused:
/// its columns say all a report needs).
#[derive(Clone, Debug)]
pub struct ReportRow {
    pub case: Option<Case>,
    pub count: u64,
    pub kind: String,
    pub unit_code: Option<String>,
    pub procedure_code: Option<String>,
    pub field_code: Option<String>,
    /// `online`, `in_person`, `postal`.
    pub channel: Option<String>,
    pub status: i64,
    /// Received in the period (else before it).
    pub received_in_period: bool,
    pub outcome: Option<String>,
    pub on_time: Option<bool>,
}

/// The stored name of a channel (its serde name).
pub fn channel_name(c: crate::sla::model::Channel) -> &'static str {
    use crate::sla::model::Channel;
    match c {
        Channel::InPerson => "in_person",
        Channel::Online => "online",
        Channel::Postal => "postal",
    }
}

/// A case to write, with whether it is open and its evaluation.
#[derive(Clone, Debug)]
pub struct CaseRow {
    pub case: Case,
    pub open: bool,
    pub eval: Option<EvalSummary>,
}

impl CaseRow {
    pub fn new(case: Case, eval: Option<(&Evaluation, DateTime<Utc>)>) -> CaseRow {
        let open = match eval {
            Some((e, _)) => e.lifecycle == Lifecycle::Open,
            None => !matches!(case.status, 3 | 7 | 9 | 10),
        };
        CaseRow {
            open,
            eval: eval.map(|(e, at)| EvalSummary::of(e, at)),
            case,
        }
    }
}

/// A distinct raw version of a record.
#[derive(Clone, Debug)]
pub struct VersionRow {
    pub case_id: String,
    pub hash: String,
    pub body: String,
}

/// A record to quarantine.
#[derive(Clone, Debug)]
pub struct QuarantineNew {
    pub case_id: Option<String>,
    pub reason: String,
    /// The raw body as received (redacted only when shown).
    pub body: String,
    /// The record's change time, when it could be read from the body.
    pub changed_at: Option<DateTime<Utc>>,
}

/// A quarantined record.
#[derive(Clone, Debug, PartialEq)]
pub struct QuarantineRow {
    pub id: i64,
    pub source: String,
    pub case_id: Option<String>,
    pub received_at: DateTime<Utc>,
    pub reason: String,
    pub body: String,
    pub retried_at: Option<DateTime<Utc>>,
    pub resolved: bool,
    /// Why it was resolved (a retry, a valid version that superseded it).
    pub resolution: Option<String>,
}

/// One run of a scheduled job.
#[derive(Clone, Debug)]
pub struct JobRun {
    pub job: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub ok: bool,
    pub message: String,
}

/// Everything one poll (or push, or retry) writes, in one transaction.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub source: String,
    pub at: DateTime<Utc>,
    pub cases: Vec<CaseRow>,
    pub versions: Vec<VersionRow>,
    /// Steps whose case is not known yet.
    pub pending_add: Vec<(String, Step)>,
    /// Cases whose pending steps were joined.
    pub pending_clear: Vec<String>,
    pub quarantine: Vec<QuarantineNew>,
    /// Quarantine rows that a retry normalised.
    pub resolved: Vec<i64>,
    /// Cases of which this batch holds a valid version, with its change time: their
    /// quarantined copies of an earlier or equal change time (or of none known) are
    /// resolved.
    pub valid: Vec<(String, Option<DateTime<Utc>>)>,
    pub cursor: Option<String>,
    /// Files read: `(path, sha256)`.
    pub files: Vec<(String, String)>,
    /// The process committing it (its lease holder name), as the change feed records.
    pub writer: String,
}

impl Batch {
    pub fn new(source: &str, at: DateTime<Utc>) -> Batch {
        Batch {
            source: source.to_string(),
            at,
            ..Batch::default()
        }
    }

    /// Whether other replicas must hear of it: it touches cases or quarantine.
    pub(crate) fn is_change(&self) -> bool {
        !self.cases.is_empty()
            || !self.quarantine.is_empty()
            || !self.resolved.is_empty()
            || !self.valid.is_empty()
    }

    /// The change feed's list of the batch's cases (JSON), each once.
    pub(crate) fn change_ids(&self) -> String {
        let ids: Vec<&str> = self
            .dedup_cases()
            .iter()
            .map(|r| r.case.case_id.as_str())
            .collect();
        serde_json::to_string(&ids).expect("ids serialise")
    }

    /// Keeps the last row of each case: a key appears once per statement.
    pub(crate) fn dedup_cases(&self) -> Vec<&CaseRow> {
        let mut last: HashMap<&str, usize> = HashMap::new();
        for (i, r) in self.cases.iter().enumerate() {
            last.insert(r.case.case_id.as_str(), i);
        }
        let mut idx: Vec<usize> = last.into_values().collect();
        idx.sort_unstable();
        idx.into_iter().map(|i| &self.cases[i]).collect()
    }
}

/// One entry of the change feed: a committed batch's cases, numbered in commit order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// The process that committed it.
    pub writer: String,
    pub source: String,
    pub case_ids: Vec<String>,
}

/// A page of the change feed and where to read on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangePage {
    pub changes: Vec<Change>,
    /// The position to read on from.
    pub next: i64,
}

/// An evaluation update of a stored case.
#[derive(Clone, Debug)]
pub struct EvalUpdate {
    pub source: String,
    pub case_id: String,
    pub open: bool,
    pub eval: EvalSummary,
}

/// Identifies an alert: it fires once per (case, rule, level, due version).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlertKey {
    pub source: String,
    pub case_id: String,
    pub rule: String,
    pub level: i32,
    pub due_key: String,
}

/// An alert that fires now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAlert {
    pub key: AlertKey,
    pub unit: Option<String>,
}

/// A message to queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxNew {
    pub message_id: String,
    pub channel: String,
    pub rule: String,
    pub source: String,
    pub case_id: String,
    pub to_addr: String,
    pub to_name: String,
    /// JSON array of `{name, email}`.
    pub cc: String,
    pub lang: String,
    /// JSON: the alert's template context.
    pub item: String,
    pub not_before: DateTime<Utc>,
    /// The alert's level and due version (0 and empty for digests and reports): with
    /// source, case and rule, the alert the message announces.
    pub level: i32,
    pub due_key: String,
}

/// A due as alert keys and acknowledgements name it: RFC 3339 in UTC to the second,
/// or `none`.
pub fn due_key(due: Option<DateTime<Utc>>) -> String {
    due.map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| "none".into())
}

/// A claimed message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub message_id: String,
    pub channel: String,
    pub rule: String,
    pub source: String,
    pub case_id: String,
    pub to_addr: String,
    pub to_name: String,
    pub cc: String,
    pub lang: String,
    pub item: String,
    pub attempts: i32,
}

/// An acknowledgement of a case's alert: stops repeats of `rule` for the due it names.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Ack {
    pub source: String,
    pub case_id: String,
    pub rule: String,
    pub due_at: Option<DateTime<Utc>>,
    pub note: String,
    pub by: String,
    pub at: DateTime<Utc>,
}

/// One line of a case's notification log.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NotificationRow {
    pub at: DateTime<Utc>,
    pub rule: String,
    pub level: i32,
    pub recipient: String,
    pub channel: String,
    pub status: String,
    pub message_id: Option<String>,
}

/// A case's message not (yet) sent: waiting, being sent, dead-lettered or cancelled.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Unsent {
    pub rule: String,
    pub level: i32,
    pub recipient: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub message_id: String,
}

/// Where the running month, quarter and year began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeriodStarts {
    pub year: DateTime<Utc>,
    pub quarter: DateTime<Utc>,
    pub month: DateTime<Utc>,
}

/// Ended cases alike in everything the period metrics label, counted per period.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FinishedGroup {
    pub kind: String,
    pub unit: Option<String>,
    pub outcome: Option<String>,
    pub on_time: Option<bool>,
    pub returned_late: bool,
    pub in_year: i64,
    pub in_quarter: i64,
    pub in_month: i64,
    /// Ended at any time (`slawatch_cases_finished_total`).
    pub all_time: i64,
}

/// Row counts, for start-up logs and readiness.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub cases: i64,
    pub open: i64,
    pub quarantined: i64,
}

#[async_trait]
pub trait Store: Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<(), StoreError>;
    /// Reachable and migrated.
    async fn ready(&self) -> Result<(), StoreError>;
    async fn close(&self);

    async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError>;
    async fn meta_put(&self, key: &str, value: &str) -> Result<(), StoreError>;

    /// Writes a batch in one transaction.
    async fn commit(&self, batch: &Batch) -> Result<(), StoreError>;
    /// Writes evaluation updates (a timer re-evaluation).
    async fn save_evaluations(&self, updates: &[EvalUpdate]) -> Result<(), StoreError>;

    /// Every open case.
    /// Every open case, handed to `visit` one at a time as the rows stream in (so the
    /// rows are never all in memory at once beside the cases).
    async fn load_open_each(
        &self,
        visit: &mut (dyn FnMut(Case) + Send),
    ) -> Result<usize, StoreError>;

    /// Ended cases stored before their end and indicator 2.1 were kept (schema
    /// version 2): handed to `visit` one at a time.
    async fn load_unjudged_each(
        &self,
        visit: &mut (dyn FnMut(Case) + Send),
    ) -> Result<usize, StoreError>;

    /// The cases a calendar change can touch: every open case and, with `ended_since`,
    /// those ended at or after it, each with its stored evaluation, one at a time.
    async fn load_held_each(
        &self,
        ended_since: Option<DateTime<Utc>>,
        visit: &mut (dyn FnMut(Case, Option<EvalSummary>) + Send),
    ) -> Result<usize, StoreError>;

    /// The cases a report of `[from, to)` can count: received before `to` (or with no
    /// receipt time) and open, or ended at or after `from`. Those that ended in the
    /// period early or on time (not refused, evaluated) come counted by their columns;
    /// every other one comes alone with its document (open at `to`, late, refused,
    /// never evaluated, no receipt time).
    async fn load_report_each(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        visit: &mut (dyn FnMut(ReportRow) + Send),
    ) -> Result<usize, StoreError>;

    /// Cases that ended in `[from, to)`, with their stored evaluation, in order of
    /// their end, one at a time.
    async fn load_ended_each(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        visit: &mut (dyn FnMut(Case, Option<EvalSummary>) + Send),
    ) -> Result<usize, StoreError>;

    /// Cases of a source by id (finished ones are not kept in memory).
    async fn get_cases(&self, source: &str, ids: &[String]) -> Result<Vec<Case>, StoreError>;
    /// Cases by id across sources, with their stored evaluation summary.
    async fn find_case(
        &self,
        case_id: &str,
    ) -> Result<Vec<(Case, Option<EvalSummary>)>, StoreError>;
    /// Steps waiting for these cases.
    async fn pending_steps(
        &self,
        source: &str,
        ids: &[String],
    ) -> Result<HashMap<String, Vec<Step>>, StoreError>;
    /// Raw versions of a case, oldest first: `(seen_at, body)`.
    async fn versions(
        &self,
        source: &str,
        case_id: &str,
    ) -> Result<Vec<(DateTime<Utc>, String)>, StoreError>;

    async fn cursor(&self, source: &str) -> Result<Option<String>, StoreError>;
    async fn file_seen(&self, source: &str, path: &str, sha256: &str) -> Result<bool, StoreError>;

    async fn quarantine_list(
        &self,
        source: Option<&str>,
        include_resolved: bool,
        limit: i64,
    ) -> Result<Vec<QuarantineRow>, StoreError>;
    async fn quarantine_get(&self, id: i64) -> Result<Option<QuarantineRow>, StoreError>;
    async fn quarantine_mark_retried(
        &self,
        ids: &[i64],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Deletes quarantine rows received before `before`; returns how many.
    async fn quarantine_purge(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Unresolved quarantine rows per source.
    async fn quarantine_counts(&self) -> Result<Vec<(String, i64)>, StoreError>;

    async fn record_job(&self, run: &JobRun) -> Result<(), StoreError>;
    /// Unit names no directory entry matched, with how many cases name them.
    async fn unmatched_units(&self) -> Result<Vec<(String, i64)>, StoreError>;
    async fn counts(&self) -> Result<Counts, StoreError>;
    /// Records that units had overdue cases in a week: `(unit, week, count)`, keeping
    /// the largest count seen.
    async fn unit_weeks_mark(&self, marks: &[(String, String, i64)]) -> Result<(), StoreError>;
    /// `(unit, week)` of the weeks from `week` (a Monday, YYYY-MM-DD) on.
    async fn unit_weeks_since(&self, week: &str) -> Result<Vec<(String, String)>, StoreError>;
    /// Takes or renews the lease `name` for `holder` until `until`; false while
    /// another holder's lease runs.
    async fn lease(
        &self,
        name: &str,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Lets go of a lease `holder` holds (a clean shutdown), so another takes it at once.
    async fn lease_release(
        &self,
        name: &str,
        holder: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Takes the lease `name` from `from` (a holder known to be dead), whatever its end;
    /// false when `from` no longer holds it.
    async fn lease_steal(
        &self,
        name: &str,
        from: &str,
        holder: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Who holds the lease `name` at `now`, if anyone.
    async fn lease_holder(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError>;
    /// The change feed from the position `after` on, in commit order, at most `limit`
    /// entries, with the position to read on from. Only finished transactions'
    /// entries come, so reading on from the position never skips one.
    async fn changes_after(&self, after: i64, limit: i64) -> Result<ChangePage, StoreError>;
    /// The feed's position now: what is committed before it is behind.
    async fn changes_latest(&self) -> Result<i64, StoreError>;
    /// Deletes change-feed entries committed before `before`; returns how many.
    async fn changes_purge(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
    /// The alerts fired and not resolved.
    async fn alerts_open(&self) -> Result<Vec<AlertKey>, StoreError>;
    /// In one transaction: records fired alerts (an alert already there is left as
    /// it is), resolves others (cancelling their messages still waiting: a case that
    /// left the state overnight is not announced in the morning), and queues messages (a `message_id` already queued is
    /// skipped), so restarts and several daemons never queue a message twice.
    async fn alerts_apply(
        &self,
        fire: &[NewAlert],
        resolve: &[AlertKey],
        outbox: &[OutboxNew],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Claims every message due at `now` (pending ones, and ones whose previous claim
    /// expired) of up to `limit` recipients, each recipient's whole group, for
    /// `lease`; each claim counts as an attempt.
    async fn outbox_claim(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError>;
    /// Marks messages sent and logs them on their cases.
    async fn outbox_sent(
        &self,
        ids: &[i64],
        at: DateTime<Utc>,
        log: &[(String, String, NotificationRow)],
    ) -> Result<(), StoreError>;
    /// Claimed messages held back (pacing): pending again until `until`, the claim not
    /// counted as an attempt.
    async fn outbox_postpone(&self, ids: &[i64], until: DateTime<Utc>) -> Result<(), StoreError>;
    /// A failed attempt: retried at `next`, or dead-lettered.
    async fn outbox_failed(
        &self,
        ids: &[i64],
        error: &str,
        next: DateTime<Utc>,
        dead: bool,
    ) -> Result<(), StoreError>;
    /// Messages not yet sent nor dead-lettered.
    async fn outbox_pending(&self) -> Result<i64, StoreError>;
    /// Messages dead-lettered (every attempt failed) and not requeued.
    async fn outbox_dead(&self) -> Result<i64, StoreError>;
    /// Puts every dead-lettered message back in the queue with fresh attempts (after
    /// the cause is fixed); returns how many.
    async fn outbox_requeue_dead(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Records an acknowledgement and, in the same transaction, cancels the messages of
    /// that case, rule and due still waiting to be sent; returns its id.
    async fn ack_add(&self, ack: &Ack) -> Result<i64, StoreError>;
    /// A case's acknowledgements, oldest first.
    async fn acks(&self, source: &str, case_id: &str) -> Result<Vec<Ack>, StoreError>;
    /// Acknowledgements recorded after id `after`, with their ids, oldest first (so a
    /// daemon keeps up with the ones other replicas took).
    async fn acks_after(&self, after: i64) -> Result<Vec<(i64, Ack)>, StoreError>;
    /// A case's messages not sent (waiting, being sent, dead-lettered, cancelled),
    /// oldest first.
    async fn unsent(&self, source: &str, case_id: &str) -> Result<Vec<Unsent>, StoreError>;
    /// A case's notification log, oldest first.
    async fn notifications(
        &self,
        source: &str,
        case_id: &str,
    ) -> Result<Vec<NotificationRow>, StoreError>;
    /// Cases that ended at or after `since.year`, grouped for the period metrics.
    async fn finished_groups(&self, since: &PeriodStarts)
        -> Result<Vec<FinishedGroup>, StoreError>;
}

/// Opens the store a URL names: `sqlite://data/slawatch.db` (or a bare path) or
/// `postgres://…`.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::connect(url).await?))
    } else {
        Ok(Arc::new(sqlite::SqliteStore::connect(url).await?))
    }
}

/// Opens the store for reading only (`calendar diff`, `check-config`): nothing is
/// created, migrated or written — PostgreSQL sessions are read-only, a SQLite file is
/// opened read-only and must exist. The schema must be the binary's.
pub async fn open_read_only(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    let store: Arc<dyn Store> =
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Arc::new(postgres::PgStore::connect_read_only(url).await?)
        } else {
            Arc::new(sqlite::SqliteStore::connect_read_only(url).await?)
        };
    store.ready().await.map_err(|e| match e {
        StoreError::Config(m) => StoreError::Config(format!("{m}: run `slawatch migrate` first")),
        e => e,
    })?;
    Ok(store)
}

/// Migrations compiled into the binary.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Embedded(pub &'static [(i64, &'static str, &'static str)]);

impl Embedded {
    /// Ready only when the database's latest applied migration is the binary's latest.
    pub(crate) fn check(&self, latest: Option<i64>) -> Result<(), StoreError> {
        let want = self.0.iter().map(|m| m.0).max();
        if latest != want {
            return Err(StoreError::Config(format!(
                "schema at version {latest:?}, expected {want:?}"
            )));
        }
        Ok(())
    }
}

impl<'s> sqlx::migrate::MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> futures_core::future::BoxFuture<
        's,
        Result<Vec<sqlx::migrate::Migration>, sqlx::error::BoxDynError>,
    > {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|(version, name, sql)| {
                    sqlx::migrate::Migration::new(
                        *version,
                        Cow::Borrowed(*name),
                        sqlx::migrate::MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// Identifies a quarantined body, so the same bad record is kept once.
pub(crate) fn body_hash(body: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(body.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// JSON of a case, as stored.
pub(crate) fn case_doc(case: &Case) -> String {
    serde_json::to_string(case).expect("a case serialises")
}

pub(crate) fn parse_doc(source: &str, case_id: &str, doc: &str) -> Result<Case, StoreError> {
    serde_json::from_str(doc).map_err(|e| StoreError::Corrupt {
        origin: source.into(),
        case_id: case_id.into(),
        message: e.to_string(),
    })
}

/// The quarantined copies a batch's valid versions supersede: `rows` are the unresolved
/// `(id, case_id, changed_at)` of the batch's source.
pub fn superseded(
    valid: &[(String, Option<DateTime<Utc>>)],
    rows: &[(i64, String, Option<DateTime<Utc>>)],
) -> Vec<(i64, String)> {
    if valid.is_empty() || rows.is_empty() {
        return Vec::new();
    }
    let mut newest: std::collections::HashMap<&str, Option<DateTime<Utc>>> = Default::default();
    for (id, t) in valid {
        let e = newest.entry(id.as_str()).or_insert(*t);
        *e = match (*e, *t) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
    }
    rows.iter()
        .filter_map(|(qid, case, changed)| {
            let v = newest.get(case.as_str())?;
            let ok = match (v, changed) {
                (Some(v), Some(c)) => v >= c,
                _ => true,
            };
            ok.then(|| {
                (
                    *qid,
                    match v {
                        Some(v) => {
                            format!("superseded by a valid version changed {}", v.to_rfc3339())
                        }
                        None => "superseded by a valid version".to_string(),
                    },
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_keep_the_last_row_of_a_case() {
        let mut b = Batch::new("s", Utc::now());
        for (id, status) in [("A", 2), ("B", 4), ("A", 4)] {
            b.cases.push(CaseRow {
                case: Case {
                    case_id: id.into(),
                    status,
                    ..Case::default()
                },
                open: true,
                eval: None,
            });
        }
        let d = b.dedup_cases();
        assert_eq!(d.len(), 2);
        assert_eq!(
            (d[0].case.case_id.as_str(), d[1].case.case_id.as_str()),
            ("B", "A")
        );
        assert_eq!(d[1].case.status, 4);
    }
}

/// A random salt for applicant hashes, kept in the store so hashes stay comparable.
pub async fn applicant_salt(store: &Arc<dyn Store>) -> Result<String, StoreError> {
    if let Ok(s) = std::env::var("SLAWATCH_APPLICANT_SALT") {
        if !s.is_empty() {
            return Ok(s);
        }
    }
    if let Some(s) = store.meta_get("applicant_salt").await? {
        return Ok(s);
    }
    let mut bytes = [0u8; 16];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| {
            StoreError::Config(format!("reading /dev/urandom for the applicant salt: {e}"))
        })?;
    let salt: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    store.meta_put("applicant_salt", &salt).await?;
    Ok(salt)
}

/// The store as the sources see it: read-only, one question.
#[async_trait]
impl crate::source::Ledger for Arc<dyn Store> {
    async fn file_seen(
        &self,
        source: &str,
        path: &str,
        sha256: &str,
    ) -> Result<bool, crate::source::SourceError> {
        Store::file_seen(self.as_ref(), source, path, sha256)
            .await
            .map_err(|e| crate::source::SourceError::Ledger(e.to_string()))
    }
}

/// A URL with its password hidden, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod redact_tests {
    use super::*;

    #[test]
    fn passwords_never_reach_the_log() {
        assert_eq!(
            redact_url("postgres://sw:secret@db:5432/sw"),
            "postgres://sw:***@db:5432/sw"
        );
        assert_eq!(
            redact_url("sqlite://data/slawatch.db"),
            "sqlite://data/slawatch.db"
        );
    }
}
