//! SQL that both backends run as written: `$N` placeholders (SQLite reads them as
//! `?N`), standard `ON CONFLICT … RETURNING`, and row mapping by column name.
//!
//! [`shared_sql!`] expands inside each backend's `q` module, where `Pool` and `DbRow`
//! name that backend's pool and row; the backends' `Store` methods call these. A
//! statement whose text must differ between the two (array binds, booleans stored as
//! integers, JSON operators) stays in its backend and never comes here.

macro_rules! shared_sql {
    () => {
        pub(super) fn quarantine_row(r: &DbRow) -> Result<QuarantineRow, sqlx::Error> {
            Ok(QuarantineRow {
                id: r.try_get("id")?,
                source: r.try_get("source")?,
                case_id: r.try_get("case_id")?,
                received_at: r.try_get("received_at")?,
                reason: r.try_get("reason")?,
                body: r.try_get("body")?,
                retried_at: r.try_get("retried_at")?,
                resolved: r.try_get("resolved")?,
                resolution: r.try_get("resolution")?,
            })
        }

        /// A report row counted by the store: its columns and how many.
        pub(super) fn report_group(r: &DbRow) -> Result<ReportRow, StoreError> {
            let in_period: i64 = r.try_get("in_period")?;
            let n: i64 = r.try_get("n")?;
            Ok(ReportRow {
                case: None,
                count: n.max(0) as u64,
                kind: r.try_get("kind")?,
                unit_code: r.try_get("unit_code")?,
                procedure_code: r.try_get("procedure_code")?,
                field_code: r.try_get("field_code")?,
                channel: r.try_get("channel")?,
                status: r.try_get("status")?,
                received_in_period: in_period != 0,
                outcome: r.try_get("outcome")?,
                on_time: r.try_get("on_time")?,
            })
        }

        /// A report row of one case with its document.
        pub(super) fn report_case(r: &DbRow) -> Result<ReportRow, StoreError> {
            let (s, c, d): (String, String, String) =
                (r.try_get("source")?, r.try_get("case_id")?, r.try_get("doc")?);
            let case = super::super::parse_doc(&s, &c, &d)?;
            Ok(ReportRow {
                count: 1,
                kind: case.kind.as_str().to_string(),
                unit_code: None,
                procedure_code: None,
                field_code: None,
                channel: None,
                status: case.status as i64,
                received_in_period: false,
                outcome: None,
                on_time: None,
                case: Some(case),
            })
        }

        /// An acknowledgement row with its id.
        pub(super) fn ack_of(r: &DbRow) -> Result<(i64, Ack), sqlx::Error> {
            Ok((
                r.try_get("id")?,
                Ack {
                    source: r.try_get("source")?,
                    case_id: r.try_get("case_id")?,
                    rule: r.try_get("rule")?,
                    due_at: r.try_get("due_at")?,
                    note: r.try_get("note")?,
                    by: r.try_get("by_whom")?,
                    at: r.try_get("at")?,
                },
            ))
        }

        pub(super) async fn migrate(pool: &Pool) -> Result<(), StoreError> {
            sqlx::migrate::Migrator::new(super::MIGRATIONS)
                .await?
                .run(pool)
                .await?;
            Ok(())
        }

        pub(super) async fn ready(pool: &Pool) -> Result<(), StoreError> {
            let latest: Option<i64> =
                sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                    .fetch_one(pool)
                    .await?;
            super::MIGRATIONS.check(latest)
        }

        pub(super) async fn close(pool: &Pool) {
            pool.close().await;
        }

        pub(super) async fn meta_get(pool: &Pool, key: &str) -> Result<Option<String>, StoreError> {
            Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
                .bind(key)
                .fetch_optional(pool)
                .await?)
        }

        pub(super) async fn meta_put(pool: &Pool, key: &str, value: &str) -> Result<(), StoreError> {
            sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
                .bind(key)
                .bind(value)
                .execute(pool)
                .await?;
            Ok(())
        }

        pub(super) async fn cursor(pool: &Pool, source: &str) -> Result<Option<String>, StoreError> {
            Ok(
                sqlx::query_scalar("SELECT cursor FROM cursors WHERE source = $1")
                    .bind(source)
                    .fetch_optional(pool)
                    .await?,
            )
        }

        pub(super) async fn quarantine_purge(pool: &Pool, before: DateTime<Utc>) -> Result<u64, StoreError> {
            Ok(sqlx::query("DELETE FROM quarantine WHERE received_at < $1")
                .bind(before)
                .execute(pool)
                .await?
                .rows_affected())
        }

        pub(super) async fn record_job(pool: &Pool, run: &JobRun) -> Result<(), StoreError> {
            sqlx::query("INSERT INTO job_runs (job, started_at, finished_at, ok, message) VALUES ($1, $2, $3, $4, $5)")
                .bind(&run.job)
                .bind(run.started_at)
                .bind(run.finished_at)
                .bind(run.ok)
                .bind(&run.message)
                .execute(pool)
                .await?;
            Ok(())
        }

        pub(super) async fn unmatched_units(pool: &Pool) -> Result<Vec<(String, i64)>, StoreError> {
            let rows = sqlx::query(
                "SELECT unit_name, COUNT(*) FROM cases WHERE unit_code IS NULL AND unit_name IS NOT NULL \
                 GROUP BY unit_name ORDER BY 2 DESC, 1",
            )
            .fetch_all(pool)
            .await?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        }

        pub(super) async fn unit_weeks_mark(pool: &Pool, marks: &[(String, String, i64)]) -> Result<(), StoreError> {
            let mut tx = pool.begin().await?;
            for (unit, week, n) in marks {
                sqlx::query(
                    "INSERT INTO unit_weeks (unit, week, max_overdue) VALUES ($1, $2, $3) \
                     ON CONFLICT (unit, week) DO UPDATE SET max_overdue = excluded.max_overdue \
                     WHERE excluded.max_overdue > unit_weeks.max_overdue",
                )
                .bind(unit)
                .bind(week)
                .bind(n)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        }

        pub(super) async fn unit_weeks_since(pool: &Pool, week: &str) -> Result<Vec<(String, String)>, StoreError> {
            Ok(
                sqlx::query_as(
                    "SELECT unit, week FROM unit_weeks WHERE week >= $1 ORDER BY unit, week",
                )
                .bind(week)
                .fetch_all(pool)
                .await?,
            )
        }

        pub(super) async fn lease_release(pool: &Pool, name: &str, holder: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
            sqlx::query("UPDATE leases SET until = $3 WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(holder)
                .bind(at)
                .execute(pool)
                .await?;
            Ok(())
        }

        pub(super) async fn lease_steal(pool: &Pool, name: &str, from: &str, holder: &str, until: DateTime<Utc>) -> Result<bool, StoreError> {
            Ok(sqlx::query("UPDATE leases SET holder = $3, until = $4 WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(from)
                .bind(holder)
                .bind(until)
                .execute(pool)
                .await?
                .rows_affected()
                == 1)
        }

        pub(super) async fn lease_holder(pool: &Pool, name: &str, now: DateTime<Utc>) -> Result<Option<String>, StoreError> {
            Ok(sqlx::query_scalar("SELECT holder FROM leases WHERE name = $1 AND until >= $2")
                .bind(name)
                .bind(now)
                .fetch_optional(pool)
                .await?)
        }

        pub(super) fn change_row(r: &DbRow) -> Result<Change, StoreError> {
            let seq: i64 = r.try_get("seq")?;
            let ids: String = r.try_get("case_ids")?;
            Ok(Change {
                seq,
                at: r.try_get("at")?,
                writer: r.try_get("writer")?,
                source: r.try_get("source")?,
                case_ids: serde_json::from_str(&ids).map_err(|e| StoreError::Corrupt {
                    origin: "changes".into(),
                    case_id: seq.to_string(),
                    message: e.to_string(),
                })?,
            })
        }

        pub(super) async fn changes_purge(pool: &Pool, before: DateTime<Utc>) -> Result<u64, StoreError> {
            Ok(sqlx::query("DELETE FROM changes WHERE at < $1")
                .bind(before)
                .execute(pool)
                .await?
                .rows_affected())
        }

        pub(super) async fn lease(pool: &Pool, name: &str, holder: &str, until: DateTime<Utc>, now: DateTime<Utc>) -> Result<bool, StoreError> {
            let got: Option<String> = sqlx::query_scalar(
                "INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
                 WHERE leases.until < $4 OR leases.holder = excluded.holder RETURNING holder",
            )
            .bind(name)
            .bind(holder)
            .bind(until)
            .bind(now)
            .fetch_optional(pool)
            .await?;
            Ok(got.is_some())
        }

        pub(super) async fn alerts_open(pool: &Pool) -> Result<Vec<AlertKey>, StoreError> {
            let rows = sqlx::query(
                "SELECT source, case_id, rule, level, due_key FROM alerts WHERE resolved_at IS NULL",
            )
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(AlertKey {
                        source: r.try_get("source")?,
                        case_id: r.try_get("case_id")?,
                        rule: r.try_get("rule")?,
                        level: r.try_get::<i32, _>("level")?,
                        due_key: r.try_get("due_key")?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(StoreError::from)
        }

        pub(super) async fn outbox_postpone(pool: &Pool, ids: &[i64], until: DateTime<Utc>) -> Result<(), StoreError> {
            for id in ids {
                sqlx::query(
                    "UPDATE outbox SET status = 'pending', next_attempt_at = $1, claimed_until = NULL, \
                     attempts = attempts - 1 WHERE id = $2",
                )
                .bind(until)
                .bind(id)
                .execute(pool)
                .await?;
            }
            Ok(())
        }

        pub(super) async fn outbox_failed(pool: &Pool, ids: &[i64], error: &str, next: DateTime<Utc>, dead: bool) -> Result<(), StoreError> {
            let status = if dead { "dead" } else { "pending" };
            for id in ids {
                sqlx::query(
                    "UPDATE outbox SET status = $1, last_error = $2, next_attempt_at = $3, claimed_until = NULL WHERE id = $4",
                )
                .bind(status)
                .bind(error)
                .bind(next)
                .bind(id)
                .execute(pool)
                .await?;
            }
            Ok(())
        }

        pub(super) async fn outbox_dead(pool: &Pool) -> Result<i64, StoreError> {
            Ok(
                sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE status = 'dead'")
                    .fetch_one(pool)
                    .await?,
            )
        }

        pub(super) async fn outbox_requeue_dead(pool: &Pool, now: DateTime<Utc>) -> Result<u64, StoreError> {
            Ok(sqlx::query(
                "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $1, \
                 claimed_until = NULL WHERE status = 'dead'",
            )
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected())
        }

        pub(super) async fn outbox_pending(pool: &Pool) -> Result<i64, StoreError> {
            Ok(
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'sending')",
                )
                .fetch_one(pool)
                .await?,
            )
        }

        pub(super) async fn ack_add(pool: &Pool, ack: &Ack) -> Result<i64, StoreError> {
            let mut tx = pool.begin().await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO acknowledgements (source, case_id, rule, due_at, note, by_whom, at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(&ack.source)
            .bind(&ack.case_id)
            .bind(&ack.rule)
            .bind(ack.due_at)
            .bind(&ack.note)
            .bind(&ack.by)
            .bind(ack.at)
            .fetch_one(&mut *tx)
            .await?;
            // Messages of that case, rule and due still waiting are not sent.
            sqlx::query(
                "UPDATE outbox SET status = 'cancelled', last_error = 'acknowledged before sending' \
                 WHERE status = 'pending' AND source = $1 AND case_id = $2 AND rule = $3 AND due_key = $4",
            )
            .bind(&ack.source)
            .bind(&ack.case_id)
            .bind(&ack.rule)
            .bind(crate::store::due_key(ack.due_at))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(id)
        }

        pub(super) async fn acks(pool: &Pool, source: &str, case_id: &str) -> Result<Vec<Ack>, StoreError> {
            let rows = sqlx::query(
                "SELECT id, source, case_id, rule, due_at, note, by_whom, at FROM acknowledgements \
                 WHERE source = $1 AND case_id = $2 ORDER BY id",
            )
            .bind(source)
            .bind(case_id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| ack_of(r).map(|(_, a)| a))
                .collect::<Result<_, sqlx::Error>>()
                .map_err(StoreError::from)
        }

        pub(super) async fn acks_after(pool: &Pool, after: i64) -> Result<Vec<(i64, Ack)>, StoreError> {
            let rows = sqlx::query(
                "SELECT id, source, case_id, rule, due_at, note, by_whom, at FROM acknowledgements \
                 WHERE id > $1 ORDER BY id",
            )
            .bind(after)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(ack_of)
                .collect::<Result<_, sqlx::Error>>()
                .map_err(StoreError::from)
        }

        pub(super) async fn unsent(pool: &Pool, source: &str, case_id: &str) -> Result<Vec<Unsent>, StoreError> {
            let rows = sqlx::query(
                "SELECT rule, level, to_addr, status, attempts, next_attempt_at, last_error, message_id \
                 FROM outbox WHERE source = $1 AND case_id = $2 AND status <> 'sent' ORDER BY id",
            )
            .bind(source)
            .bind(case_id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(Unsent {
                        rule: r.try_get("rule")?,
                        level: r.try_get("level")?,
                        recipient: r.try_get("to_addr")?,
                        status: r.try_get("status")?,
                        attempts: r.try_get("attempts")?,
                        next_attempt_at: r.try_get("next_attempt_at")?,
                        last_error: r.try_get("last_error")?,
                        message_id: r.try_get("message_id")?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(StoreError::from)
        }

        pub(super) async fn notifications(pool: &Pool, source: &str, case_id: &str) -> Result<Vec<NotificationRow>, StoreError> {
            let rows = sqlx::query(
                "SELECT at, rule, level, recipient, channel, status, message_id FROM notification_log \
                 WHERE source = $1 AND case_id = $2 ORDER BY id",
            )
            .bind(source)
            .bind(case_id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(NotificationRow {
                        at: r.try_get("at")?,
                        rule: r.try_get("rule")?,
                        level: r.try_get("level")?,
                        recipient: r.try_get("recipient")?,
                        channel: r.try_get("channel")?,
                        status: r.try_get("status")?,
                        message_id: r.try_get("message_id")?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(StoreError::from)
        }

        pub(super) async fn file_seen(pool: &Pool, source: &str, path: &str, sha256: &str) -> Result<bool, StoreError> {
            Ok(sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM seen_files WHERE source = $1 AND path = $2 AND sha256 = $3)",
            )
            .bind(source)
            .bind(path)
            .bind(sha256)
            .fetch_one(pool)
            .await?)
        }

        pub(super) async fn quarantine_get(pool: &Pool, id: i64) -> Result<Option<QuarantineRow>, StoreError> {
            let row = sqlx::query(
                "SELECT id, source, case_id, received_at, reason, body, retried_at, resolved, resolution FROM quarantine WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?;
            Ok(row.as_ref().map(q::quarantine_row).transpose()?)
        }

        pub(super) async fn quarantine_counts(pool: &Pool) -> Result<Vec<(String, i64)>, StoreError> {
            let rows = sqlx::query("SELECT source, COUNT(*) FROM quarantine WHERE NOT resolved GROUP BY source ORDER BY source")
                .fetch_all(pool)
                .await?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        }

        pub(super) async fn counts(pool: &Pool) -> Result<Counts, StoreError> {
            let (cases, open): (i64, i64) =
                sqlx::query_as("SELECT COUNT(*), COUNT(*) FILTER (WHERE is_open) FROM cases")
                    .fetch_one(pool)
                    .await?;
            let quarantined: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM quarantine WHERE NOT resolved")
                    .fetch_one(pool)
                    .await?;
            Ok(Counts {
                cases,
                open,
                quarantined,
            })
        }
    };
}
