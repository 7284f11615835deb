//! The PostgreSQL store: batched upserts through `UNNEST` of arrays (one statement per
//! table per batch), JSONB documents. SQL for PostgreSQL lives here and in
//! `migrations/postgres/`.

use super::*;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::ConnectOptions;
use sqlx::Row;
use std::time::Duration;

const MIGRATIONS: Embedded = Embedded(&[
    (
        1,
        "init",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "period facts",
        include_str!("../../migrations/postgres/0002_period_facts.sql"),
    ),
    (
        3,
        "acknowledgements and notification log",
        include_str!("../../migrations/postgres/0003_acks_notifications.sql"),
    ),
    (
        4,
        "case id index",
        include_str!("../../migrations/postgres/0004_case_id_index.sql"),
    ),
    (
        5,
        "alerts and outbox",
        include_str!("../../migrations/postgres/0005_alerts_outbox.sql"),
    ),
    (
        6,
        "leases",
        include_str!("../../migrations/postgres/0006_leases.sql"),
    ),
    (
        7,
        "unit weeks",
        include_str!("../../migrations/postgres/0007_unit_weeks.sql"),
    ),
    (
        8,
        "outbox alert key",
        include_str!("../../migrations/postgres/0008_outbox_alert_key.sql"),
    ),
    (
        9,
        "quarantine superseded",
        include_str!("../../migrations/postgres/0009_quarantine_supersede.sql"),
    ),
    (
        10,
        "calendar estimated",
        include_str!("../../migrations/postgres/0010_calendar_estimated.sql"),
    ),
    (
        11,
        "report columns",
        include_str!("../../migrations/postgres/0011_report_columns.sql"),
    ),
    (
        12,
        "change feed",
        include_str!("../../migrations/postgres/0012_changes.sql"),
    ),
]);

/// The statements this backend shares with the other ([`shared_sql!`]).
mod q {
    use super::*;
    type Pool = PgPool;
    type DbRow = PgRow;
    shared_sql!();
}

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await?;
        Ok(PgStore { pool })
    }

    /// A pool whose sessions are read-only (see [`super::open_read_only`]).
    pub async fn connect_read_only(url: &str) -> Result<PgStore, StoreError> {
        let options = <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(url)?
            .options([("default_transaction_read_only", "on")])
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        Ok(PgStore { pool })
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
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
        let rows = batch.dedup_cases();
        if !rows.is_empty() {
            let n = rows.len();
            let mut ids = Vec::with_capacity(n);
            let mut kinds = Vec::with_capacity(n);
            let mut statuses = Vec::with_capacity(n);
            let mut opens = Vec::with_capacity(n);
            let mut units = Vec::with_capacity(n);
            let mut unit_names = Vec::with_capacity(n);
            let mut procs = Vec::with_capacity(n);
            let mut received = Vec::with_capacity(n);
            let mut dues = Vec::with_capacity(n);
            let mut updated = Vec::with_capacity(n);
            let mut docs = Vec::with_capacity(n);
            let mut states = Vec::with_capacity(n);
            let mut outcomes = Vec::with_capacity(n);
            let mut flags = Vec::with_capacity(n);
            let mut stucks = Vec::with_capacity(n);
            let mut eff_dues = Vec::with_capacity(n);
            let mut ages = Vec::with_capacity(n);
            let mut evaluated = Vec::with_capacity(n);
            let mut versions = Vec::with_capacity(n);
            let mut ended = Vec::with_capacity(n);
            let mut on_times = Vec::with_capacity(n);
            let mut estimated = Vec::with_capacity(n);
            let mut channels = Vec::with_capacity(n);
            let mut fields = Vec::with_capacity(n);
            for r in rows {
                let c = &r.case;
                let e = r.eval.as_ref();
                ids.push(c.case_id.clone());
                kinds.push(c.kind.as_str().to_string());
                statuses.push(c.status as i16);
                opens.push(r.open);
                units.push(c.unit_code.as_deref());
                unit_names.push(c.unit_name.as_deref());
                procs.push(c.procedure_code.as_deref());
                received.push(c.received_at);
                dues.push(c.due_at);
                updated.push(c.updated_at);
                docs.push(case_doc(c));
                states.push(e.and_then(|e| e.state).map(|s| s.as_str().to_string()));
                outcomes.push(e.and_then(|e| e.outcome).map(|o| o.as_str().to_string()));
                flags.push(e.map(|e| e.flags.joined()).unwrap_or_default());
                stucks.push(e.is_some_and(|e| e.stuck));
                eff_dues.push(e.and_then(|e| e.due));
                ages.push(e.map(|e| e.overdue_workdays).unwrap_or(0));
                evaluated.push(e.map(|e| e.evaluated_at));
                versions.push(e.map(|e| e.calendar_version.clone()));
                ended.push(e.and_then(|e| e.ended_at));
                on_times.push(e.and_then(|e| e.on_time));
                estimated.push(e.is_some_and(|e| e.calendar_estimated));
                channels.push(c.channel.map(channel_name));
                fields.push(c.field_code.as_deref());
            }
            sqlx::query(
                "INSERT INTO cases (source, case_id, kind, status, is_open, unit_code, unit_name, procedure_code, \
                 received_at, due_at, updated_at, doc, state, outcome, flags, stuck, effective_due, \
                 overdue_workdays, evaluated_at, calendar_version, ended_at, on_time, calendar_estimated, \
                 channel, field_code) \
                 SELECT $1, t.case_id, t.kind, t.status, t.is_open, t.unit_code, t.unit_name, t.procedure_code, \
                 t.received_at, t.due_at, t.updated_at, t.doc::jsonb, t.state, t.outcome, t.flags, t.stuck, \
                 t.effective_due, t.overdue_workdays, t.evaluated_at, t.calendar_version, t.ended_at, t.on_time, \
                 t.calendar_estimated, t.channel, t.field_code \
                 FROM UNNEST($2::text[], $3::text[], $4::int2[], $5::bool[], $6::text[], $7::text[], $8::text[], \
                 $9::timestamptz[], $10::timestamptz[], $11::timestamptz[], $12::text[], $13::text[], $14::text[], \
                 $15::text[], $16::bool[], $17::timestamptz[], $18::int4[], $19::timestamptz[], $20::text[], \
                 $21::timestamptz[], $22::bool[], $23::bool[], $24::text[], $25::text[]) \
                 AS t(case_id, kind, status, is_open, unit_code, unit_name, procedure_code, received_at, due_at, \
                 updated_at, doc, state, outcome, flags, stuck, effective_due, overdue_workdays, evaluated_at, \
                 calendar_version, ended_at, on_time, calendar_estimated, channel, field_code) \
                 ON CONFLICT (source, case_id) DO UPDATE SET kind = excluded.kind, status = excluded.status, \
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
            )
            .bind(&batch.source)
            .bind(&ids)
            .bind(&kinds)
            .bind(&statuses)
            .bind(&opens)
            .bind(&units)
            .bind(&unit_names)
            .bind(&procs)
            .bind(&received)
            .bind(&dues)
            .bind(&updated)
            .bind(&docs)
            .bind(&states)
            .bind(&outcomes)
            .bind(&flags)
            .bind(&stucks)
            .bind(&eff_dues)
            .bind(&ages)
            .bind(&evaluated)
            .bind(&versions)
            .bind(&ended)
            .bind(&on_times)
            .bind(&estimated)
            .bind(&channels)
            .bind(&fields)
            .execute(&mut *tx)
            .await?;
        }
        if !batch.versions.is_empty() {
            let ids: Vec<&str> = batch.versions.iter().map(|v| v.case_id.as_str()).collect();
            let hashes: Vec<&str> = batch.versions.iter().map(|v| v.hash.as_str()).collect();
            let bodies: Vec<&str> = batch.versions.iter().map(|v| v.body.as_str()).collect();
            sqlx::query(
                "INSERT INTO case_versions (source, case_id, hash, seen_at, body) \
                 SELECT $1, t.case_id, t.hash, $2, t.body::jsonb FROM UNNEST($3::text[], $4::text[], $5::text[]) \
                 AS t(case_id, hash, body) ON CONFLICT DO NOTHING",
            )
            .bind(&batch.source)
            .bind(batch.at)
            .bind(&ids)
            .bind(&hashes)
            .bind(&bodies)
            .execute(&mut *tx)
            .await?;
        }
        if !batch.pending_clear.is_empty() {
            sqlx::query("DELETE FROM pending_steps WHERE source = $1 AND case_id = ANY($2)")
                .bind(&batch.source)
                .bind(&batch.pending_clear)
                .execute(&mut *tx)
                .await?;
        }
        if !batch.pending_add.is_empty() {
            let ids: Vec<&str> = batch
                .pending_add
                .iter()
                .map(|(id, _)| id.as_str())
                .collect();
            let bodies: Vec<String> = batch
                .pending_add
                .iter()
                .map(|(_, s)| serde_json::to_string(s).expect("a step serialises"))
                .collect();
            sqlx::query(
                "INSERT INTO pending_steps (source, case_id, seen_at, body) \
                 SELECT $1, t.case_id, $2, t.body::jsonb FROM UNNEST($3::text[], $4::text[]) AS t(case_id, body) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&batch.source)
            .bind(batch.at)
            .bind(&ids)
            .bind(&bodies)
            .execute(&mut *tx)
            .await?;
        }
        if !batch.quarantine.is_empty() {
            let ids: Vec<Option<&str>> = batch
                .quarantine
                .iter()
                .map(|q| q.case_id.as_deref())
                .collect();
            let reasons: Vec<&str> = batch.quarantine.iter().map(|q| q.reason.as_str()).collect();
            let bodies: Vec<&str> = batch.quarantine.iter().map(|q| q.body.as_str()).collect();
            let hashes: Vec<String> = batch
                .quarantine
                .iter()
                .map(|q| body_hash(&q.body))
                .collect();
            let changed: Vec<Option<DateTime<Utc>>> =
                batch.quarantine.iter().map(|q| q.changed_at).collect();
            sqlx::query(
                "INSERT INTO quarantine (source, case_id, received_at, reason, body, hash, changed_at) \
                 SELECT $1, t.case_id, $2, t.reason, t.body, t.hash, t.changed_at \
                 FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[]) \
                 AS t(case_id, reason, body, hash, changed_at) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&batch.source)
            .bind(batch.at)
            .bind(&ids)
            .bind(&reasons)
            .bind(&bodies)
            .bind(&hashes)
            .bind(&changed)
            .execute(&mut *tx)
            .await?;
        }
        if !batch.resolved.is_empty() {
            sqlx::query(
                "UPDATE quarantine SET resolved = TRUE, retried_at = $1, resolution = 'normalised on retry' WHERE id = ANY($2)",
            )
            .bind(batch.at)
            .bind(&batch.resolved)
            .execute(&mut *tx)
            .await?;
        }
        if !batch.valid.is_empty() {
            let rows: Vec<(i64, String, Option<DateTime<Utc>>)> = sqlx::query_as(
                "SELECT id, case_id, changed_at FROM quarantine \
                 WHERE source = $1 AND NOT resolved AND case_id IS NOT NULL",
            )
            .bind(&batch.source)
            .fetch_all(&mut *tx)
            .await?;
            let hits = super::superseded(&batch.valid, &rows);
            if !hits.is_empty() {
                let ids: Vec<i64> = hits.iter().map(|h| h.0).collect();
                let whys: Vec<&str> = hits.iter().map(|h| h.1.as_str()).collect();
                sqlx::query(
                    "UPDATE quarantine q SET resolved = TRUE, resolution = t.why \
                     FROM UNNEST($1::bigint[], $2::text[]) AS t(id, why) WHERE q.id = t.id",
                )
                .bind(&ids)
                .bind(&whys)
                .execute(&mut *tx)
                .await?;
            }
        }
        for (path, sha) in &batch.files {
            sqlx::query(
                "INSERT INTO seen_files (source, path, sha256, seen_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(&batch.source)
            .bind(path)
            .bind(sha)
            .bind(batch.at)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(cursor) = &batch.cursor {
            sqlx::query(
                "INSERT INTO cursors (source, cursor, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
            )
            .bind(&batch.source)
            .bind(cursor)
            .bind(batch.at)
            .execute(&mut *tx)
            .await?;
        }
        if batch.is_change() {
            sqlx::query(
                "INSERT INTO changes (at, writer, source, case_ids) VALUES ($1, $2, $3, $4)",
            )
            .bind(batch.at)
            .bind(&batch.writer)
            .bind(&batch.source)
            .bind(batch.change_ids())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn save_evaluations(&self, updates: &[EvalUpdate]) -> Result<(), StoreError> {
        if updates.is_empty() {
            return Ok(());
        }
        let sources: Vec<&str> = updates.iter().map(|u| u.source.as_str()).collect();
        let ids: Vec<&str> = updates.iter().map(|u| u.case_id.as_str()).collect();
        let opens: Vec<bool> = updates.iter().map(|u| u.open).collect();
        let states: Vec<Option<&str>> = updates
            .iter()
            .map(|u| u.eval.state.map(|s| s.as_str()))
            .collect();
        let outcomes: Vec<Option<&str>> = updates
            .iter()
            .map(|u| u.eval.outcome.map(|o| o.as_str()))
            .collect();
        let flags: Vec<String> = updates.iter().map(|u| u.eval.flags.joined()).collect();
        let stucks: Vec<bool> = updates.iter().map(|u| u.eval.stuck).collect();
        let dues: Vec<Option<DateTime<Utc>>> = updates.iter().map(|u| u.eval.due).collect();
        let ages: Vec<i32> = updates.iter().map(|u| u.eval.overdue_workdays).collect();
        let at: Vec<DateTime<Utc>> = updates.iter().map(|u| u.eval.evaluated_at).collect();
        let versions: Vec<&str> = updates
            .iter()
            .map(|u| u.eval.calendar_version.as_str())
            .collect();
        let ended: Vec<Option<DateTime<Utc>>> = updates.iter().map(|u| u.eval.ended_at).collect();
        let on_times: Vec<Option<bool>> = updates.iter().map(|u| u.eval.on_time).collect();
        let estimated: Vec<bool> = updates.iter().map(|u| u.eval.calendar_estimated).collect();
        sqlx::query(
            "UPDATE cases SET is_open = t.is_open, state = t.state, outcome = t.outcome, flags = t.flags, \
             stuck = t.stuck, effective_due = t.effective_due, overdue_workdays = t.overdue_workdays, \
             evaluated_at = t.evaluated_at, calendar_version = t.calendar_version, ended_at = t.ended_at, \
             on_time = t.on_time, calendar_estimated = t.calendar_estimated \
             FROM UNNEST($1::text[], $2::text[], $3::bool[], $4::text[], $5::text[], $6::text[], $7::bool[], \
             $8::timestamptz[], $9::int4[], $10::timestamptz[], $11::text[], $12::timestamptz[], $13::bool[], \
             $14::bool[]) \
             AS t(source, case_id, is_open, state, outcome, flags, stuck, effective_due, overdue_workdays, \
             evaluated_at, calendar_version, ended_at, on_time, calendar_estimated) \
             WHERE cases.source = t.source AND cases.case_id = t.case_id",
        )
        .bind(&sources)
        .bind(&ids)
        .bind(&opens)
        .bind(&states)
        .bind(&outcomes)
        .bind(&flags)
        .bind(&stucks)
        .bind(&dues)
        .bind(&ages)
        .bind(&at)
        .bind(&versions)
        .bind(&ended)
        .bind(&on_times)
        .bind(&estimated)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn load_open_each(
        &self,
        visit: &mut (dyn FnMut(Case) + Send),
    ) -> Result<usize, StoreError> {
        use futures_util::TryStreamExt;
        let mut rows = sqlx::query("SELECT source, case_id, doc::text FROM cases WHERE is_open")
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
            "SELECT kind, unit_code, procedure_code, field_code, channel, status::int8 AS status, outcome, on_time, \
             CASE WHEN received_at >= $1 THEN 1::int8 ELSE 0::int8 END AS in_period, COUNT(*) AS n FROM cases \
             WHERE NOT is_open AND ended_at >= $1 AND ended_at < $2 AND received_at IS NOT NULL \
             AND received_at < $2 AND COALESCE(outcome, '') <> 'late' AND status <> 3 \
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
            "SELECT source, case_id, doc::text AS doc FROM cases WHERE (received_at IS NULL OR received_at < $2) \
             AND (is_open OR ended_at IS NULL OR ended_at >= $2 OR (ended_at >= $1 AND \
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
            "SELECT source, case_id, doc::text AS doc, state, outcome, flags, stuck, effective_due, \
             overdue_workdays, evaluated_at, calendar_version, ended_at, on_time, calendar_estimated \
             FROM cases WHERE NOT is_open AND ended_at >= $1 AND ended_at < $2 ORDER BY ended_at, source, case_id",
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
            "SELECT source, case_id, doc::text AS doc, state, outcome, flags, stuck, effective_due, \
             overdue_workdays, evaluated_at, calendar_version, ended_at, on_time, calendar_estimated \
             FROM cases WHERE is_open OR ($1::timestamptz IS NOT NULL AND ended_at >= $1)",
        )
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
            "SELECT source, case_id, doc::text FROM cases WHERE NOT is_open AND ended_at IS NULL AND evaluated_at IS NOT NULL",
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
        let rows = sqlx::query(
            "SELECT case_id, doc::text FROM cases WHERE source = $1 AND case_id = ANY($2)",
        )
        .bind(source)
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let (c, d): (String, String) = (r.get(0), r.get(1));
                parse_doc(source, &c, &d)
            })
            .collect()
    }

    async fn find_case(
        &self,
        case_id: &str,
    ) -> Result<Vec<(Case, Option<EvalSummary>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT source, doc::text AS doc, state, outcome, flags, stuck, effective_due, overdue_workdays, \
             evaluated_at, calendar_version, ended_at, on_time, calendar_estimated FROM cases WHERE case_id = $1 \
             ORDER BY source",
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
        let rows = sqlx::query(
            "SELECT case_id, body::text FROM pending_steps WHERE source = $1 AND case_id = ANY($2)",
        )
        .bind(source)
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        let mut out: HashMap<String, Vec<Step>> = HashMap::new();
        for r in rows {
            let (c, b): (String, String) = (r.get(0), r.get(1));
            let step: Step = serde_json::from_str(&b).map_err(|e| StoreError::Corrupt {
                origin: source.into(),
                case_id: c.clone(),
                message: e.to_string(),
            })?;
            out.entry(c).or_default().push(step);
        }
        Ok(out)
    }

    async fn versions(
        &self,
        source: &str,
        case_id: &str,
    ) -> Result<Vec<(DateTime<Utc>, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT seen_at, body::text FROM case_versions WHERE source = $1 AND case_id = $2 ORDER BY seen_at",
        )
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
             WHERE ($1::text IS NULL OR source = $1) AND ($2 OR NOT resolved) ORDER BY id LIMIT $3",
        )
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
        sqlx::query("UPDATE quarantine SET retried_at = $1 WHERE id = ANY($2)")
            .bind(at)
            .bind(ids)
            .execute(&self.pool)
            .await?;
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
        // Numbers are taken as transactions write, not as they commit: the position
        // is a transaction id. Every transaction older than the oldest still running
        // has finished, so the entries below it are all there is below it.
        let horizon = self.changes_latest().await?;
        let rows = sqlx::query(
            "SELECT seq, at, writer, source, case_ids, xid::text::bigint AS x FROM changes \
             WHERE xid >= $1::text::xid8 AND xid < $2::text::xid8 ORDER BY xid, seq LIMIT $3",
        )
        .bind(after.to_string())
        .bind(horizon.to_string())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let full = rows.len() as i64 == limit;
        let last: Option<i64> = rows.last().map(|r| r.try_get("x")).transpose()?;
        let changes = rows
            .iter()
            .map(q::change_row)
            .collect::<Result<Vec<_>, _>>()?;
        // One entry per transaction: a full page reads on after its last one.
        let next = match (full, last) {
            (true, Some(x)) => x + 1,
            _ => horizon.max(after),
        };
        Ok(ChangePage { changes, next })
    }

    async fn changes_latest(&self) -> Result<i64, StoreError> {
        let x: i64 =
            sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
                .fetch_one(&self.pool)
                .await?;
        Ok(x)
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
        // One statement per table through UNNEST: a backlog of alerts (a first start,
        // the end of an outage) is a few round trips, not one per row.
        let mut tx = self.pool.begin().await?;
        if !fire.is_empty() {
            let col = |f: fn(&NewAlert) -> &str| fire.iter().map(f).collect::<Vec<&str>>();
            let levels: Vec<i32> = fire.iter().map(|a| a.key.level).collect();
            let units: Vec<Option<&str>> = fire.iter().map(|a| a.unit.as_deref()).collect();
            sqlx::query(
                "INSERT INTO alerts (source, case_id, rule, level, due_key, unit_code, fired_at) \
                 SELECT t.source, t.case_id, t.rule, t.level, t.due_key, t.unit_code, $7 \
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int4[], $5::text[], $6::text[]) \
                 AS t(source, case_id, rule, level, due_key, unit_code) ON CONFLICT DO NOTHING",
            )
            .bind(col(|a| &a.key.source))
            .bind(col(|a| &a.key.case_id))
            .bind(col(|a| &a.key.rule))
            .bind(&levels)
            .bind(col(|a| &a.key.due_key))
            .bind(&units)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        if !resolve.is_empty() {
            let col = |f: fn(&AlertKey) -> &str| resolve.iter().map(f).collect::<Vec<&str>>();
            let levels: Vec<i32> = resolve.iter().map(|k| k.level).collect();
            sqlx::query(
                "UPDATE alerts SET resolved_at = $6 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int4[], $5::text[]) \
                 AS t(source, case_id, rule, level, due_key) \
                 WHERE alerts.source = t.source AND alerts.case_id = t.case_id AND alerts.rule = t.rule \
                 AND alerts.level = t.level AND alerts.due_key = t.due_key AND alerts.resolved_at IS NULL",
            )
            .bind(col(|k| &k.source))
            .bind(col(|k| &k.case_id))
            .bind(col(|k| &k.rule))
            .bind(&levels)
            .bind(col(|k| &k.due_key))
            .bind(at)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE outbox SET status = 'cancelled', last_error = 'resolved before sending' \
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int4[], $5::text[]) \
                 AS t(source, case_id, rule, level, due_key) \
                 WHERE outbox.status = 'pending' AND outbox.source = t.source AND outbox.case_id = t.case_id \
                 AND outbox.rule = t.rule AND outbox.level = t.level AND outbox.due_key = t.due_key",
            )
            .bind(col(|k| &k.source))
            .bind(col(|k| &k.case_id))
            .bind(col(|k| &k.rule))
            .bind(&levels)
            .bind(col(|k| &k.due_key))
            .execute(&mut *tx)
            .await?;
        }
        if !outbox.is_empty() {
            let col = |f: fn(&OutboxNew) -> &str| outbox.iter().map(f).collect::<Vec<&str>>();
            let not_before: Vec<DateTime<Utc>> = outbox.iter().map(|m| m.not_before).collect();
            let levels: Vec<i32> = outbox.iter().map(|m| m.level).collect();
            sqlx::query(
                "INSERT INTO outbox (message_id, channel, rule, source, case_id, to_addr, to_name, cc, lang, item, \
                 created_at, next_attempt_at, level, due_key) \
                 SELECT t.message_id, t.channel, t.rule, t.source, t.case_id, t.to_addr, t.to_name, t.cc, t.lang, \
                 t.item, $12, t.not_before, t.level, t.due_key \
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
                 $8::text[], $9::text[], $10::text[], $11::timestamptz[], $13::int4[], $14::text[]) \
                 AS t(message_id, channel, rule, source, case_id, to_addr, to_name, cc, lang, item, not_before, level, due_key) \
                 ON CONFLICT (message_id) DO NOTHING",
            )
            .bind(col(|m| &m.message_id))
            .bind(col(|m| &m.channel))
            .bind(col(|m| &m.rule))
            .bind(col(|m| &m.source))
            .bind(col(|m| &m.case_id))
            .bind(col(|m| &m.to_addr))
            .bind(col(|m| &m.to_name))
            .bind(col(|m| &m.cc))
            .bind(col(|m| &m.lang))
            .bind(col(|m| &m.item))
            .bind(&not_before)
            .bind(at)
            .bind(&levels)
            .bind(col(|m| &m.due_key))
            .execute(&mut *tx)
            .await?;
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
            "UPDATE outbox SET status = 'sending', claimed_until = $1, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM outbox WHERE (status = 'pending' OR (status = 'sending' AND claimed_until < $2)) \
             AND next_attempt_at <= $2 AND lower(to_addr) IN (SELECT lower(to_addr) FROM outbox \
             WHERE (status = 'pending' OR (status = 'sending' AND claimed_until < $2)) AND next_attempt_at <= $2 \
             GROUP BY lower(to_addr) ORDER BY MIN(id) LIMIT $3) FOR UPDATE SKIP LOCKED) \
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
        sqlx::query(
            "UPDATE outbox SET status = 'sent', sent_at = $1, last_error = NULL WHERE id = ANY($2)",
        )
        .bind(at)
        .bind(ids)
        .execute(&mut *tx)
        .await?;
        if !log.is_empty() {
            let col = |f: fn(&(String, String, NotificationRow)) -> &str| {
                log.iter().map(f).collect::<Vec<&str>>()
            };
            let levels: Vec<i32> = log.iter().map(|l| l.2.level).collect();
            let ids: Vec<Option<&str>> = log.iter().map(|l| l.2.message_id.as_deref()).collect();
            let ats: Vec<DateTime<Utc>> = log.iter().map(|l| l.2.at).collect();
            sqlx::query(
                "INSERT INTO notification_log (source, case_id, rule, level, recipient, channel, status, message_id, at) \
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int4[], $5::text[], $6::text[], \
                 $7::text[], $8::text[], $9::timestamptz[])",
            )
            .bind(col(|l| &l.0))
            .bind(col(|l| &l.1))
            .bind(col(|l| &l.2.rule))
            .bind(&levels)
            .bind(col(|l| &l.2.recipient))
            .bind(col(|l| &l.2.channel))
            .bind(col(|l| &l.2.status))
            .bind(&ids)
            .bind(&ats)
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
        let rows = sqlx::query(
            "SELECT kind, unit_code, outcome, on_time, position('returned_late' in flags) > 0 AS returned_late, \
             COUNT(*) FILTER (WHERE ended_at >= $1) AS y, COUNT(*) FILTER (WHERE ended_at >= $2) AS q, \
             COUNT(*) FILTER (WHERE ended_at >= $3) AS m, COUNT(*) AS a \
             FROM cases WHERE NOT is_open AND ended_at IS NOT NULL GROUP BY 1, 2, 3, 4, 5",
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
