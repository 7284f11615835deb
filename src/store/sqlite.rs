//! The SQLite store: one file (default `data/slawatch.db`), WAL journal, batched
//! multi-row upserts. SQL for SQLite lives here and in `migrations/sqlite/`.

use super::*;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::ConnectOptions;
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

const MIGRATIONS: Embedded = Embedded(&[
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "period facts",
        include_str!("../../migrations/sqlite/0002_period_facts.sql"),
    ),
    (
        3,
        "acknowledgements and notification log",
        include_str!("../../migrations/sqlite/0003_acks_notifications.sql"),
    ),
    (
        4,
        "case id index",
        include_str!("../../migrations/sqlite/0004_case_id_index.sql"),
    ),
    (
        5,
        "alerts and outbox",
        include_str!("../../migrations/sqlite/0005_alerts_outbox.sql"),
    ),
    (
        6,
        "leases",
        include_str!("../../migrations/sqlite/0006_leases.sql"),
    ),
    (
        7,
        "unit weeks",
        include_str!("../../migrations/sqlite/0007_unit_weeks.sql"),
    ),
    (
        8,
        "outbox alert key",
        include_str!("../../migrations/sqlite/0008_outbox_alert_key.sql"),
    ),
    (
        9,
        "quarantine superseded",
        include_str!("../../migrations/sqlite/0009_quarantine_supersede.sql"),
    ),
    (
        10,
        "calendar estimated",
        include_str!("../../migrations/sqlite/0010_calendar_estimated.sql"),
    ),
    (
        11,
        "report columns",
        include_str!("../../migrations/sqlite/0011_report_columns.sql"),
    ),
    (
        12,
        "change feed",
        include_str!("../../migrations/sqlite/0012_changes.sql"),
    ),
]);

/// Rows per multi-row statement (25 columns: well under SQLite's 32,766 parameters).
const CHUNK: usize = 1000;

/// The statements this backend shares with the other ([`shared_sql!`]).
mod q {
    use super::*;
    type Pool = SqlitePool;
    type DbRow = sqlx::sqlite::SqliteRow;
    shared_sql!();
}

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// `sqlite://path`, `sqlite:path` or a bare path; the folder is created.
    pub async fn connect(url: &str) -> Result<SqliteStore, StoreError> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        let path = path.split('?').next().unwrap_or(path);
        if path != ":memory:" {
            if let Some(dir) = std::path::Path::new(path).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        StoreError::Config(format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
            }
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
            // 16 MB of page cache per connection (four of them): the hot index pages of
            // a million cases stay in it, the rest in the kernel's page cache. 64 MB
            // each made the daemon 106 MB larger at 200,000 open (415 MB against 309
            // MB) for 13 % more ingest on an empty store (load harness).
            .pragma("cache_size", "-16384")
            .pragma("temp_store", "memory");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        Ok(SqliteStore { pool })
    }

    /// Opens an existing file read-only (see [`super::open_read_only`]).
    pub async fn connect_read_only(url: &str) -> Result<SqliteStore, StoreError> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        let path = path.split('?').next().unwrap_or(path);
        if !std::path::Path::new(path).exists() {
            return Err(StoreError::Config(format!(
                "no store at {path}: run the daemon or `slawatch migrate` first"
            )));
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
            .read_only(true)
            .create_if_missing(false)
            .busy_timeout(Duration::from_secs(30))
            .pragma("cache_size", "-65536")
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        Ok(SqliteStore { pool })
    }
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(",")
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        q::migrate(&self.pool).await
    }

    async fn ready(&self) -> Result<(), StoreError> {
        q::ready(&self.pool).await
    }

    async fn close(&self) {
        q::close(&self.pool).await
    }

    async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        q::meta_get(&self.pool, key).await
    }

    async fn meta_put(&self, key: &str, value: &str) -> Result<(), StoreError> {
        q::meta_put(&self.pool, key, value).await
    }

    async fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if batch.is_change() {
            // First, so the transaction writes from its first statement: one that read
            // first could not become the writer while another commit is (SQLite
            // answers "database is locked" rather than wait). One writer at a time
            // also numbers the feed in commit order.
            sqlx::query("INSERT INTO changes (at, writer, source, case_ids) VALUES (?, ?, ?, ?)")
                .bind(batch.at)
                .bind(&batch.writer)
                .bind(&batch.source)
                .bind(batch.change_ids())
                .execute(&mut *tx)
                .await?;
        }
        let rows = batch.dedup_cases();
        for chunk in rows.chunks(CHUNK) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO cases (source, case_id, kind, status, is_open, unit_code, unit_name, procedure_code, \
                 received_at, due_at, updated_at, doc, state, outcome, flags, stuck, effective_due, \
                 overdue_workdays, evaluated_at, calendar_version, ended_at, on_time, calendar_estimated, \
                 channel, field_code) ",
            );
            q.push_values(chunk, |mut b, r| {
                let c = &r.case;
                let e = r.eval.as_ref();
                b.push_bind(&batch.source)
                    .push_bind(&c.case_id)
                    .push_bind(c.kind.as_str())
                    .push_bind(c.status as i64)
                    .push_bind(r.open)
                    .push_bind(c.unit_code.as_deref())
                    .push_bind(c.unit_name.as_deref())
                    .push_bind(c.procedure_code.as_deref())
                    .push_bind(c.received_at)
                    .push_bind(c.due_at)
                    .push_bind(c.updated_at)
                    .push_bind(case_doc(c))
                    .push_bind(e.and_then(|e| e.state).map(|s| s.as_str()))
                    .push_bind(e.and_then(|e| e.outcome).map(|o| o.as_str()))
                    .push_bind(e.map(|e| e.flags.joined()).unwrap_or_default())
                    .push_bind(e.is_some_and(|e| e.stuck))
                    .push_bind(e.and_then(|e| e.due))
                    .push_bind(e.map(|e| e.overdue_workdays).unwrap_or(0))
                    .push_bind(e.map(|e| e.evaluated_at))
                    .push_bind(e.map(|e| e.calendar_version.clone()))
                    .push_bind(e.and_then(|e| e.ended_at))
                    .push_bind(e.and_then(|e| e.on_time))
                    .push_bind(e.is_some_and(|e| e.calendar_estimated))
                    .push_bind(c.channel.map(channel_name))
                    .push_bind(c.field_code.as_deref());
            });
            q.push(
                " ON CONFLICT (source, case_id) DO UPDATE SET kind = excluded.kind, status = excluded.status, \
                 is_open = excluded.is_open, unit_code = excluded.unit_code, unit_name = excluded.unit_name, \
                 procedure_code = excluded.procedure_code, received_at = excluded.received_at, \
                 due_at = excluded.due_at, updated_at = excluded.updated_at, doc = excluded.doc, \
                 state = excluded.state, outcome = excluded.outcome, flags = excluded.flags, \
                 stuck = excluded.stuck, effective_due = excluded.effective_due, \
                 overdue_workdays = excluded.overdue_workdays, evaluated_at = excluded.evaluated_at, \
                 calendar_version = excluded.calendar_version, ended_at = excluded.ended_at, \
                 on_time = excluded.on_time, calendar_estimated = excluded.calendar_estimated, \
                 channel = excluded.channel, field_code = excluded.field_code \
                 WHERE cases.updated_at IS NULL OR excluded.updated_at IS NULL OR excluded.updated_at >= cases.updated_at",
            );
            q.build().execute(&mut *tx).await?;
        }
        for chunk in batch.versions.chunks(CHUNK) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO case_versions (source, case_id, hash, seen_at, body) ",
            );
            q.push_values(chunk, |mut b, v| {
                b.push_bind(&batch.source)
                    .push_bind(&v.case_id)
                    .push_bind(&v.hash)
                    .push_bind(batch.at)
                    .push_bind(&v.body);
            });
            q.push(" ON CONFLICT DO NOTHING");
            q.build().execute(&mut *tx).await?;
        }
        for chunk in batch.pending_clear.chunks(CHUNK) {
            let sql = format!(
                "DELETE FROM pending_steps WHERE source = ? AND case_id IN ({})",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(&batch.source);
            for id in chunk {
                q = q.bind(id);
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in batch.pending_add.chunks(CHUNK) {
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT INTO pending_steps (source, case_id, seen_at, body) ");
            q.push_values(chunk, |mut b, (id, step)| {
                b.push_bind(&batch.source)
                    .push_bind(id)
                    .push_bind(batch.at)
                    .push_bind(serde_json::to_string(step).expect("a step serialises"));
            });
            q.push(" ON CONFLICT DO NOTHING");
            q.build().execute(&mut *tx).await?;
        }
        for chunk in batch.quarantine.chunks(CHUNK) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO quarantine (source, case_id, received_at, reason, body, hash, changed_at) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(&batch.source)
                    .push_bind(r.case_id.as_deref())
                    .push_bind(batch.at)
                    .push_bind(&r.reason)
                    .push_bind(&r.body)
                    .push_bind(body_hash(&r.body))
                    .push_bind(r.changed_at);
            });
            q.push(" ON CONFLICT DO NOTHING");
            q.build().execute(&mut *tx).await?;
        }
        for id in &batch.resolved {
            sqlx::query("UPDATE quarantine SET resolved = 1, retried_at = ?, resolution = 'normalised on retry' WHERE id = ?")
                .bind(batch.at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if !batch.valid.is_empty() {
            let rows: Vec<(i64, String, Option<DateTime<Utc>>)> = sqlx::query_as(
                "SELECT id, case_id, changed_at FROM quarantine \
                 WHERE source = ? AND resolved = 0 AND case_id IS NOT NULL",
            )
            .bind(&batch.source)
            .fetch_all(&mut *tx)
            .await?;
            for (id, why) in super::superseded(&batch.valid, &rows) {
                sqlx::query("UPDATE quarantine SET resolved = 1, resolution = ? WHERE id = ?")
                    .bind(why)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for (path, sha) in &batch.files {
            sqlx::query("INSERT INTO seen_files (source, path, sha256, seen_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING")
                .bind(&batch.source)
                .bind(path)
                .bind(sha)
                .bind(batch.at)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(cursor) = &batch.cursor {
            sqlx::query(
                "INSERT INTO cursors (source, cursor, updated_at) VALUES (?, ?, ?) \
                 ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
            )
            .bind(&batch.source)
            .bind(cursor)
            .bind(batch.at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn save_evaluations(&self, updates: &[EvalUpdate]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for chunk in updates.chunks(CHUNK) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "WITH v(source, case_id, is_open, state, outcome, flags, stuck, effective_due, overdue_workdays, \
                 evaluated_at, calendar_version, ended_at, on_time, calendar_estimated) AS (",
            );
            q.push_values(chunk, |mut b, u| {
                let e = &u.eval;
                b.push_bind(&u.source)
                    .push_bind(&u.case_id)
                    .push_bind(u.open)
                    .push_bind(e.state.map(|s| s.as_str()))
                    .push_bind(e.outcome.map(|o| o.as_str()))
                    .push_bind(e.flags.joined())
                    .push_bind(e.stuck)
                    .push_bind(e.due)
                    .push_bind(e.overdue_workdays)
                    .push_bind(e.evaluated_at)
                    .push_bind(&e.calendar_version)
                    .push_bind(e.ended_at)
                    .push_bind(e.on_time)
                    .push_bind(e.calendar_estimated);
            });
            q.push(
                ") UPDATE cases SET is_open = v.is_open, state = v.state, outcome = v.outcome, flags = v.flags, \
                 stuck = v.stuck, effective_due = v.effective_due, overdue_workdays = v.overdue_workdays, \
                 evaluated_at = v.evaluated_at, calendar_version = v.calendar_version, \
                 ended_at = v.ended_at, on_time = v.on_time, calendar_estimated = v.calendar_estimated \
                 FROM v WHERE cases.source = v.source AND cases.case_id = v.case_id",
            );
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn load_open_each(
        &self,
        visit: &mut (dyn FnMut(Case) + Send),
    ) -> Result<usize, StoreError> {
        use futures_util::TryStreamExt;
        let mut rows = sqlx::query("SELECT source, case_id, doc FROM cases WHERE is_open = 1")
            .fetch(&self.pool);
        let mut n = 0;
        while let Some(r) = rows.try_next().await? {
            let (s, c, d): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            visit(parse_doc(&s, &c, &d)?);
            n += 1;
        }
        Ok(n)
    }

    async fn load_report_each(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        visit: &mut (dyn FnMut(ReportRow) + Send),
    ) -> Result<usize, StoreError> {
        use futures_util::TryStreamExt;
        let groups = sqlx::query(
            "SELECT kind, unit_code, procedure_code, field_code, channel, status, outcome, on_time, \
             CASE WHEN received_at >= ?1 THEN 1 ELSE 0 END AS in_period, COUNT(*) AS n FROM cases \
             WHERE is_open = 0 AND ended_at >= ?1 AND ended_at < ?2 AND received_at IS NOT NULL \
             AND received_at < ?2 AND COALESCE(outcome, '') <> 'late' AND status <> 3 \
             AND evaluated_at IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        let mut n = 0;
        for r in &groups {
            let row = q::report_group(r)?;
            n += row.count as usize;
            visit(row);
        }
        let mut rows = sqlx::query(
            "SELECT source, case_id, doc FROM cases WHERE (received_at IS NULL OR received_at < ?2) \
             AND (is_open = 1 OR ended_at IS NULL OR ended_at >= ?2 OR (ended_at >= ?1 AND \
             (received_at IS NULL OR COALESCE(outcome, '') = 'late' OR status = 3 OR evaluated_at IS NULL)))",
        )
        .bind(from)
        .bind(to)
        .fetch(&self.pool);
        while let Some(r) = rows.try_next().await? {
            visit(q::report_case(&r)?);
            n += 1;
        }
        Ok(n)
    }

    async fn load_ended_each(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        visit: &mut (dyn FnMut(Case, Option<EvalSummary>) + Send),
    ) -> Result<usize, StoreError> {
        use futures_util::TryStreamExt;
        let mut rows = sqlx::query(
            "SELECT source, case_id, doc, state, outcome, flags, stuck, effective_due, overdue_workdays, \
             evaluated_at, calendar_version, ended_at, on_time, calendar_estimated FROM cases \
             WHERE is_open = 0 AND ended_at >= ?1 AND ended_at < ?2 ORDER BY ended_at, source, case_id",
        )
        .bind(from)
        .bind(to)
        .fetch(&self.pool);
        let mut n = 0;
        while let Some(r) = rows.try_next().await? {
            let (s, c, d): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            let eval = stored_eval_of!(r);
            visit(parse_doc(&s, &c, &d)?, eval);
            n += 1;
        }
        Ok(n)
    }

    async fn load_held_each(
        &self,
        ended_since: Option<DateTime<Utc>>,
        visit: &mut (dyn FnMut(Case, Option<EvalSummary>) + Send),
    ) -> Result<usize, StoreError> {
        use futures_util::TryStreamExt;
        let mut rows = sqlx::query(
            "SELECT source, case_id, doc, state, outcome, flags, stuck, effective_due, overdue_workdays, \
             evaluated_at, calendar_version, ended_at, on_time, calendar_estimated FROM cases \
             WHERE is_open = 1 OR (? IS NOT NULL AND ended_at >= ?)",
        )
        .bind(ended_since)
        .bind(ended_since)
        .fetch(&self.pool);
        let mut n = 0;
        while let Some(r) = rows.try_next().await? {
            let (s, c, d): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            let eval = stored_eval_of!(r);
            visit(parse_doc(&s, &c, &d)?, eval);
            n += 1;
        }
        Ok(n)
    }

    async fn load_unjudged_each(
        &self,
        visit: &mut (dyn FnMut(Case) + Send),
    ) -> Result<usize, StoreError> {
        use futures_util::TryStreamExt;
        let mut rows = sqlx::query(
            "SELECT source, case_id, doc FROM cases WHERE is_open = 0 AND ended_at IS NULL AND evaluated_at IS NOT NULL",
        )
        .fetch(&self.pool);
        let mut n = 0;
        while let Some(r) = rows.try_next().await? {
            let (s, c, d): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            visit(parse_doc(&s, &c, &d)?);
            n += 1;
        }
        Ok(n)
    }

    async fn get_cases(&self, source: &str, ids: &[String]) -> Result<Vec<Case>, StoreError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(CHUNK) {
            let sql = format!(
                "SELECT case_id, doc FROM cases WHERE source = ? AND case_id IN ({})",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(source);
            for id in chunk {
                q = q.bind(id);
            }
            for r in q.fetch_all(&self.pool).await? {
                let (c, d): (String, String) = (r.get(0), r.get(1));
                out.push(parse_doc(source, &c, &d)?);
            }
        }
        Ok(out)
    }

    async fn find_case(
        &self,
        case_id: &str,
    ) -> Result<Vec<(Case, Option<EvalSummary>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT source, doc, state, outcome, flags, stuck, effective_due, overdue_workdays, evaluated_at, \
             calendar_version, ended_at, on_time, calendar_estimated FROM cases WHERE case_id = ? ORDER BY source",
        )
        .bind(case_id)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let source: String = r.try_get("source")?;
            let case = parse_doc(&source, case_id, &r.try_get::<String, _>("doc")?)?;
            let eval = stored_eval_of!(r);
            out.push((case, eval));
        }
        Ok(out)
    }

    async fn pending_steps(
        &self,
        source: &str,
        ids: &[String],
    ) -> Result<HashMap<String, Vec<Step>>, StoreError> {
        let mut out: HashMap<String, Vec<Step>> = HashMap::new();
        for chunk in ids.chunks(CHUNK) {
            let sql = format!(
                "SELECT case_id, body FROM pending_steps WHERE source = ? AND case_id IN ({})",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(source);
            for id in chunk {
                q = q.bind(id);
            }
            for r in q.fetch_all(&self.pool).await? {
                let (c, b): (String, String) = (r.get(0), r.get(1));
                let step: Step = serde_json::from_str(&b).map_err(|e| StoreError::Corrupt {
                    origin: source.into(),
                    case_id: c.clone(),
                    message: e.to_string(),
                })?;
                out.entry(c).or_default().push(step);
            }
        }
        Ok(out)
    }

    async fn versions(
        &self,
        source: &str,
        case_id: &str,
    ) -> Result<Vec<(DateTime<Utc>, String)>, StoreError> {
        let rows = sqlx::query("SELECT seen_at, body FROM case_versions WHERE source = ? AND case_id = ? ORDER BY seen_at")
            .bind(source)
            .bind(case_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn cursor(&self, source: &str) -> Result<Option<String>, StoreError> {
        q::cursor(&self.pool, source).await
    }

    async fn file_seen(&self, source: &str, path: &str, sha256: &str) -> Result<bool, StoreError> {
        q::file_seen(&self.pool, source, path, sha256).await
    }

    async fn quarantine_list(
        &self,
        source: Option<&str>,
        include_resolved: bool,
        limit: i64,
    ) -> Result<Vec<QuarantineRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, source, case_id, received_at, reason, body, retried_at, resolved, resolution FROM quarantine \
             WHERE (? IS NULL OR source = ?) AND (? OR resolved = 0) ORDER BY id LIMIT ?",
        )
        .bind(source)
        .bind(source)
        .bind(include_resolved)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(q::quarantine_row)
            .collect::<Result<_, _>>()?)
    }

    async fn quarantine_get(&self, id: i64) -> Result<Option<QuarantineRow>, StoreError> {
        q::quarantine_get(&self.pool, id).await
    }

    async fn quarantine_mark_retried(
        &self,
        ids: &[i64],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        for id in ids {
            sqlx::query("UPDATE quarantine SET retried_at = ? WHERE id = ?")
                .bind(at)
                .bind(id)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    async fn quarantine_purge(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        q::quarantine_purge(&self.pool, before).await
    }

    async fn quarantine_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        q::quarantine_counts(&self.pool).await
    }

    async fn record_job(&self, run: &JobRun) -> Result<(), StoreError> {
        q::record_job(&self.pool, run).await
    }

    async fn unmatched_units(&self) -> Result<Vec<(String, i64)>, StoreError> {
        q::unmatched_units(&self.pool).await
    }

    async fn unit_weeks_mark(&self, marks: &[(String, String, i64)]) -> Result<(), StoreError> {
        q::unit_weeks_mark(&self.pool, marks).await
    }

    async fn unit_weeks_since(&self, week: &str) -> Result<Vec<(String, String)>, StoreError> {
        q::unit_weeks_since(&self.pool, week).await
    }

    async fn lease(
        &self,
        name: &str,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        q::lease(&self.pool, name, holder, until, now).await
    }

    async fn lease_release(
        &self,
        name: &str,
        holder: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        q::lease_release(&self.pool, name, holder, at).await
    }

    async fn lease_steal(
        &self,
        name: &str,
        from: &str,
        holder: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        q::lease_steal(&self.pool, name, from, holder, until).await
    }

    async fn lease_holder(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        q::lease_holder(&self.pool, name, now).await
    }

    async fn changes_after(&self, after: i64, limit: i64) -> Result<ChangePage, StoreError> {
        // One writer at a time, which takes its number first thing in its transaction:
        // numbers are in commit order, and the position is the last number read.
        let rows = sqlx::query(
            "SELECT seq, at, writer, source, case_ids FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let changes = rows
            .iter()
            .map(q::change_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next = changes.last().map_or(after, |c| c.seq);
        Ok(ChangePage { changes, next })
    }

    async fn changes_latest(&self) -> Result<i64, StoreError> {
        let n: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM changes")
            .fetch_one(&self.pool)
            .await?;
        Ok(n.unwrap_or(0))
    }

    async fn changes_purge(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        q::changes_purge(&self.pool, before).await
    }

    async fn alerts_open(&self) -> Result<Vec<AlertKey>, StoreError> {
        q::alerts_open(&self.pool).await
    }

    async fn alerts_apply(
        &self,
        fire: &[NewAlert],
        resolve: &[AlertKey],
        outbox: &[OutboxNew],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // Multi-row statements: a backlog of alerts is a few statements per thousand.
        let mut tx = self.pool.begin().await?;
        for chunk in fire.chunks(CHUNK) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO alerts (source, case_id, rule, level, due_key, unit_code, fired_at) ",
            );
            q.push_values(chunk, |mut b, a| {
                b.push_bind(&a.key.source)
                    .push_bind(&a.key.case_id)
                    .push_bind(&a.key.rule)
                    .push_bind(a.key.level)
                    .push_bind(&a.key.due_key)
                    .push_bind(a.unit.as_deref())
                    .push_bind(at);
            });
            q.push(" ON CONFLICT DO NOTHING");
            q.build().execute(&mut *tx).await?;
        }
        for k in resolve {
            sqlx::query(
                "UPDATE alerts SET resolved_at = ?1 WHERE source = ?2 AND case_id = ?3 AND rule = ?4 \
                 AND level = ?5 AND due_key = ?6 AND resolved_at IS NULL",
            )
            .bind(at)
            .bind(&k.source)
            .bind(&k.case_id)
            .bind(&k.rule)
            .bind(k.level)
            .bind(&k.due_key)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE outbox SET status = 'cancelled', last_error = 'resolved before sending' \
                 WHERE status = 'pending' AND source = ?1 AND case_id = ?2 AND rule = ?3 \
                 AND level = ?4 AND due_key = ?5",
            )
            .bind(&k.source)
            .bind(&k.case_id)
            .bind(&k.rule)
            .bind(k.level)
            .bind(&k.due_key)
            .execute(&mut *tx)
            .await?;
        }
        for chunk in outbox.chunks(CHUNK) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO outbox (message_id, channel, rule, source, case_id, to_addr, to_name, cc, lang, item, \
                 created_at, next_attempt_at, level, due_key) ",
            );
            q.push_values(chunk, |mut b, m| {
                b.push_bind(&m.message_id)
                    .push_bind(&m.channel)
                    .push_bind(&m.rule)
                    .push_bind(&m.source)
                    .push_bind(&m.case_id)
                    .push_bind(&m.to_addr)
                    .push_bind(&m.to_name)
                    .push_bind(&m.cc)
                    .push_bind(&m.lang)
                    .push_bind(&m.item)
                    .push_bind(at)
                    .push_bind(m.not_before)
                    .push_bind(m.level)
                    .push_bind(&m.due_key);
            });
            q.push(" ON CONFLICT (message_id) DO NOTHING");
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn outbox_claim(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = sqlx::query(
            "UPDATE outbox SET status = 'sending', claimed_until = ?1, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM outbox WHERE (status = 'pending' OR (status = 'sending' AND claimed_until < ?2)) \
             AND next_attempt_at <= ?2 AND lower(to_addr) IN (SELECT lower(to_addr) FROM outbox \
             WHERE (status = 'pending' OR (status = 'sending' AND claimed_until < ?2)) AND next_attempt_at <= ?2 \
             GROUP BY lower(to_addr) ORDER BY MIN(id) LIMIT ?3)) \
             RETURNING id, message_id, channel, rule, source, case_id, to_addr, to_name, cc, lang, item, attempts",
        )
        .bind(now + lease)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<OutboxRow> = rows
            .iter()
            .map(|r| {
                Ok(OutboxRow {
                    id: r.try_get("id")?,
                    message_id: r.try_get("message_id")?,
                    channel: r.try_get("channel")?,
                    rule: r.try_get("rule")?,
                    source: r.try_get("source")?,
                    case_id: r.try_get("case_id")?,
                    to_addr: r.try_get("to_addr")?,
                    to_name: r.try_get("to_name")?,
                    cc: r.try_get("cc")?,
                    lang: r.try_get("lang")?,
                    item: r.try_get("item")?,
                    attempts: r.try_get::<i32, _>("attempts")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    async fn outbox_sent(
        &self,
        ids: &[i64],
        at: DateTime<Utc>,
        log: &[(String, String, NotificationRow)],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for id in ids {
            sqlx::query(
                "UPDATE outbox SET status = 'sent', sent_at = ?1, last_error = NULL WHERE id = ?2",
            )
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        for (source, case_id, n) in log {
            sqlx::query(
                "INSERT INTO notification_log (source, case_id, rule, level, recipient, channel, status, message_id, at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .bind(source)
            .bind(case_id)
            .bind(&n.rule)
            .bind(n.level)
            .bind(&n.recipient)
            .bind(&n.channel)
            .bind(&n.status)
            .bind(n.message_id.as_deref())
            .bind(n.at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn outbox_postpone(&self, ids: &[i64], until: DateTime<Utc>) -> Result<(), StoreError> {
        q::outbox_postpone(&self.pool, ids, until).await
    }

    async fn outbox_failed(
        &self,
        ids: &[i64],
        error: &str,
        next: DateTime<Utc>,
        dead: bool,
    ) -> Result<(), StoreError> {
        q::outbox_failed(&self.pool, ids, error, next, dead).await
    }

    async fn outbox_dead(&self) -> Result<i64, StoreError> {
        q::outbox_dead(&self.pool).await
    }

    async fn outbox_requeue_dead(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        q::outbox_requeue_dead(&self.pool, now).await
    }

    async fn outbox_pending(&self) -> Result<i64, StoreError> {
        q::outbox_pending(&self.pool).await
    }

    async fn ack_add(&self, ack: &Ack) -> Result<i64, StoreError> {
        q::ack_add(&self.pool, ack).await
    }

    async fn acks(&self, source: &str, case_id: &str) -> Result<Vec<Ack>, StoreError> {
        q::acks(&self.pool, source, case_id).await
    }

    async fn acks_after(&self, after: i64) -> Result<Vec<(i64, Ack)>, StoreError> {
        q::acks_after(&self.pool, after).await
    }

    async fn unsent(&self, source: &str, case_id: &str) -> Result<Vec<Unsent>, StoreError> {
        q::unsent(&self.pool, source, case_id).await
    }

    async fn notifications(
        &self,
        source: &str,
        case_id: &str,
    ) -> Result<Vec<NotificationRow>, StoreError> {
        q::notifications(&self.pool, source, case_id).await
    }

    async fn finished_groups(
        &self,
        since: &PeriodStarts,
    ) -> Result<Vec<FinishedGroup>, StoreError> {
        // Instants are RFC 3339 text in UTC, so they compare as strings.
        let rows = sqlx::query(
            "SELECT kind, unit_code, outcome, on_time, instr(flags, 'returned_late') > 0 AS returned_late, \
             SUM(ended_at >= ?1) AS y, SUM(ended_at >= ?2) AS q, SUM(ended_at >= ?3) AS m, COUNT(*) AS a \
             FROM cases WHERE is_open = 0 AND ended_at IS NOT NULL GROUP BY 1, 2, 3, 4, 5",
        )
        .bind(since.year)
        .bind(since.quarter)
        .bind(since.month)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(FinishedGroup {
                    kind: r.try_get("kind")?,
                    unit: r.try_get("unit_code")?,
                    outcome: r.try_get("outcome")?,
                    on_time: r.try_get("on_time")?,
                    returned_late: r.try_get("returned_late")?,
                    in_year: r.try_get("y")?,
                    in_quarter: r.try_get("q")?,
                    in_month: r.try_get("m")?,
                    all_time: r.try_get("a")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn counts(&self) -> Result<Counts, StoreError> {
        q::counts(&self.pool).await
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn stored_eval(
    state: Option<String>,
    outcome: Option<String>,
    flags: String,
    stuck: bool,
    due: Option<DateTime<Utc>>,
    overdue_workdays: i32,
    evaluated_at: Option<DateTime<Utc>>,
    calendar_version: Option<String>,
) -> Option<EvalSummary> {
    Some(EvalSummary {
        state: state.as_deref().and_then(crate::sla::State::parse),
        outcome: outcome.as_deref().and_then(crate::sla::Outcome::parse),
        flags: crate::sla::Flags::parse(&flags),
        stuck,
        due,
        overdue_workdays,
        evaluated_at: evaluated_at?,
        calendar_version: calendar_version.unwrap_or_default(),
        calendar_estimated: false,
        ended_at: None,
        on_time: None,
    })
}
