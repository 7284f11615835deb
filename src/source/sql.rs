//! The `sql` source: a read-only query against the one-stop system's own database —
//! PostgreSQL, MySQL/MariaDB or SQLite — with one bound parameter, the cursor.
//!
//! Columns are named after the canonical fields (`case_id`, `status`, `received_at`,
//! `due_at`, `unit`, …; alias them in the query: `SELECT MaHoSo AS case_id, …`).
//! Supplements and steps come as JSON text columns named `supplements` and `steps`,
//! each an array of objects with canonical keys (`requested_at`, `resumed_at`, …;
//! `title`, `department`, `started_at`, `acted_at`, `step_due_at`, …) — build them
//! with the database's JSON functions or a view. Date columns may be timestamps (read
//! as local time when they carry no zone) or text in any accepted format.
//!
//! The query runs in a read-only transaction (SQLite: a read-only connection). The
//! cursor parameter is the newest change time (`updated_at` column) stored so far
//! minus the overlap (`initial_cursor` on the first poll), written as
//! `cursor_format` says: `local` (default, `YYYY-MM-DD HH:MM:SS` local time),
//! `rfc3339` or `dvcqg` (`yyyyMMddHHmmss`).

use super::{Poll, PollContext, RawRecord, Source, SourceConfig, SourceError};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Map, Value};
use sqlx::{Column, Row};
use std::time::Duration;
use tokio::sync::OnceCell;

enum Pool {
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
    Sqlite(sqlx::SqlitePool),
}

pub struct SqlSource {
    url: String,
    query: String,
    timeout: Duration,
    cursor_format: String,
    pool: OnceCell<Pool>,
}

impl SqlSource {
    pub fn new(cfg: &SourceConfig) -> Result<SqlSource, String> {
        let url = cfg.database_url.clone().ok_or(
            "`database_url` is required for an sql source (put it in the environment: \"${…}\")",
        )?;
        if ![
            "postgres://",
            "postgresql://",
            "mysql://",
            "mariadb://",
            "sqlite:",
        ]
        .iter()
        .any(|p| url.starts_with(p))
        {
            return Err(
                "database_url must start with postgres://, mysql://, mariadb:// or sqlite:".into(),
            );
        }
        let query = cfg
            .query
            .clone()
            .ok_or("`query` is required for an sql source")?;
        let cursor_format = cfg.cursor_format.clone().unwrap_or_else(|| "local".into());
        if !["local", "rfc3339", "dvcqg"].contains(&cursor_format.as_str()) {
            return Err(format!(
                "cursor_format `{cursor_format}` is not one of local, rfc3339, dvcqg"
            ));
        }
        Ok(SqlSource {
            url: url.replacen("mariadb://", "mysql://", 1),
            query,
            timeout: Duration::from_secs(cfg.timeout_seconds.max(1)),
            cursor_format,
            pool: OnceCell::new(),
        })
    }

    async fn pool(&self) -> Result<&Pool, SourceError> {
        self.pool
            .get_or_try_init(|| async {
                let u = &self.url;
                Ok::<Pool, sqlx::Error>(if u.starts_with("postgres") {
                    Pool::Postgres(
                        sqlx::postgres::PgPoolOptions::new()
                            .max_connections(2)
                            .acquire_timeout(self.timeout)
                            .connect(u)
                            .await?,
                    )
                } else if u.starts_with("mysql") {
                    Pool::MySql(
                        sqlx::mysql::MySqlPoolOptions::new()
                            .max_connections(2)
                            .acquire_timeout(self.timeout)
                            .connect(u)
                            .await?,
                    )
                } else {
                    let opts: sqlx::sqlite::SqliteConnectOptions = u.parse()?;
                    Pool::Sqlite(
                        sqlx::sqlite::SqlitePoolOptions::new()
                            .max_connections(1)
                            .acquire_timeout(self.timeout)
                            .connect_with(opts.read_only(true))
                            .await?,
                    )
                })
            })
            .await
            .map_err(SourceError::Database)
    }
}

/// Turns a column value into JSON: text, numbers, booleans, timestamps (naive ones
/// as local `YYYY-MM-DD HH:MM:SS`, zoned ones as RFC 3339), JSON; `supplements` and
/// `steps` text is parsed. `$utc_timestamp` tells a column that holds UTC instants
/// though it decodes as naive (MySQL `TIMESTAMP`).
macro_rules! column_value {
    ($row:expr, $i:expr, $name:expr, $utc_timestamp:expr) => {{
        let row = $row;
        let i = $i;
        let v: Value = if let Ok(v) = row.try_get::<Option<String>, _>(i) {
            match v {
                Some(s) if ($name == "supplements" || $name == "steps") && !s.trim().is_empty() => {
                    serde_json::from_str(&s).unwrap_or(Value::String(s))
                }
                Some(s) => Value::String(s),
                None => Value::Null,
            }
        } else if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
            v.map(Value::from).unwrap_or(Value::Null)
        } else if let Ok(v) = row.try_get::<Option<i32>, _>(i) {
            v.map(Value::from).unwrap_or(Value::Null)
        } else if let Ok(v) = row.try_get::<Option<i16>, _>(i) {
            v.map(Value::from).unwrap_or(Value::Null)
        } else if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
            v.map(Value::from).unwrap_or(Value::Null)
        } else if let Ok(v) = row.try_get::<Option<bool>, _>(i) {
            v.map(Value::from).unwrap_or(Value::Null)
        } else if let (false, Ok(v)) = (
            $utc_timestamp(row, i),
            row.try_get::<Option<NaiveDateTime>, _>(i),
        ) {
            v.map(|t| Value::String(t.format("%Y-%m-%d %H:%M:%S").to_string()))
                .unwrap_or(Value::Null)
        } else if let Ok(v) = row.try_get::<Option<DateTime<Utc>>, _>(i) {
            v.map(|t| Value::String(t.to_rfc3339()))
                .unwrap_or(Value::Null)
        } else if let Ok(v) = row.try_get::<Option<NaiveDate>, _>(i) {
            v.map(|t| Value::String(t.format("%Y-%m-%d").to_string()))
                .unwrap_or(Value::Null)
        } else if let Ok(v) = row.try_get::<Option<sqlx::types::Json<Value>>, _>(i) {
            v.map(|j| j.0).unwrap_or(Value::Null)
        } else {
            return Err(SourceError::Response(format!(
                "column `{}` has a type slawatch cannot read: cast it to text in the query",
                $name
            )));
        };
        v
    }};
}

macro_rules! rows_to_records {
    ($rows:expr, $utc_timestamp:expr) => {{
        let mut out = Vec::with_capacity($rows.len());
        for (n, row) in $rows.iter().enumerate() {
            let mut obj = Map::new();
            for (i, col) in row.columns().iter().enumerate() {
                let name = col.name().to_ascii_lowercase();
                let v = column_value!(row, i, name.as_str(), $utc_timestamp);
                obj.insert(name, v);
            }
            out.push(RawRecord::json(
                Value::Object(obj),
                format!("row {}", n + 1),
            ));
        }
        out
    }};
}

#[async_trait]
impl Source for SqlSource {
    fn cursor_from_records(&self) -> bool {
        true
    }

    async fn poll(
        &self,
        _cursor: Option<&str>,
        ctx: &PollContext<'_>,
    ) -> Result<Poll, SourceError> {
        let since = ctx.since;
        let param = match self.cursor_format.as_str() {
            "rfc3339" => since.to_rfc3339(),
            "dvcqg" => ctx.calendar.local(since).format("%Y%m%d%H%M%S").to_string(),
            _ => ctx
                .calendar
                .local(since)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string(),
        };
        let work = async {
            let records = match self.pool().await? {
                Pool::Postgres(p) => {
                    let mut tx = p.begin().await?;
                    sqlx::query("SET TRANSACTION READ ONLY")
                        .execute(&mut *tx)
                        .await?;
                    let rows = sqlx::query(&self.query)
                        .bind(&param)
                        .fetch_all(&mut *tx)
                        .await?;
                    tx.rollback().await?;
                    rows_to_records!(rows, |_: &sqlx::postgres::PgRow, _: usize| false)
                }
                Pool::MySql(p) => {
                    let mut conn = p.acquire().await?;
                    sqlx::query("START TRANSACTION READ ONLY")
                        .execute(&mut *conn)
                        .await?;
                    let rows = sqlx::query(&self.query)
                        .bind(&param)
                        .fetch_all(&mut *conn)
                        .await;
                    sqlx::query("ROLLBACK").execute(&mut *conn).await?;
                    let rows = rows?;
                    // MySQL TIMESTAMP columns hold UTC instants; DATETIME ones local time.
                    rows_to_records!(rows, |r: &sqlx::mysql::MySqlRow, i: usize| {
                        use sqlx::TypeInfo;
                        r.column(i).type_info().name() == "TIMESTAMP"
                    })
                }
                Pool::Sqlite(p) => {
                    let rows = sqlx::query(&self.query).bind(&param).fetch_all(p).await?;
                    rows_to_records!(rows, |_: &sqlx::sqlite::SqliteRow, _: usize| false)
                }
            };
            Ok::<Vec<RawRecord>, SourceError>(records)
        };
        let records = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| SourceError::Timeout(self.timeout.as_secs()))??;
        Ok(Poll {
            records,
            // The daemon's cursor follows the records' change times.
            cursor: None,
            files: Vec::new(),
        })
    }
}
