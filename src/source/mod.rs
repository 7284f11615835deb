//! Sources of case records (SPEC §5), each behind one [`Source`] interface, and the
//! normalisation of their records into the case model.
//!
//! A source is polled on its own schedule with the cursor it left last time; it
//! returns raw records (JSON values, or the text that failed to parse), the next
//! cursor, and the files it read. Normalising, merging and storing is the daemon's
//! job, the same for every source.

pub mod demo;
pub mod file;
pub mod http;
pub mod normalize;
pub mod sql;

use crate::calendar::Calendar;
use crate::catalogue::Catalogue;
use crate::directory::Directory;
use crate::sla::model::Kind;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use normalize::Mapping;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

/// One record as a source delivered it.
#[derive(Clone, Debug)]
pub struct RawRecord {
    /// The parsed JSON, or the text that could not be parsed and why.
    pub value: Result<Value, (String, String)>,
    /// Where it came from (file and line, page), for quarantine messages.
    pub origin: String,
}

impl RawRecord {
    pub fn json(value: Value, origin: impl Into<String>) -> RawRecord {
        RawRecord {
            value: Ok(value),
            origin: origin.into(),
        }
    }

    pub fn unparsable(
        text: impl Into<String>,
        why: impl Into<String>,
        origin: impl Into<String>,
    ) -> RawRecord {
        RawRecord {
            value: Err((text.into(), why.into())),
            origin: origin.into(),
        }
    }
}

/// What one poll brought.
#[derive(Clone, Debug, Default)]
pub struct Poll {
    pub records: Vec<RawRecord>,
    /// The cursor to store with these records.
    pub cursor: Option<String>,
    /// Files read, `(path, sha256)`, remembered with the records.
    pub files: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    Transport(String),
    #[error("HTTP {status} from {url}")]
    Status { status: u16, url: String },
    #[error("bad response: {0}")]
    Response(String),
    #[error("timed out after {0} s")]
    Timeout(u64),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("store: {0}")]
    Ledger(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl SourceError {
    /// Worth retrying within the same poll (a network fault, 5xx, 429).
    pub fn transient(&self) -> bool {
        match self {
            SourceError::Transport(_) | SourceError::Timeout(_) => true,
            SourceError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// What a poll may use besides its cursor.
pub struct PollContext<'a> {
    pub source: &'a str,
    pub now: DateTime<Utc>,
    /// The change time the records are asked from (`http`, `sql`): the stored cursor
    /// minus the overlap, `initial_cursor` on the first poll, or a backfill's start.
    pub since: DateTime<Utc>,
    pub calendar: &'a Calendar,
    pub directory: &'a Directory,
    pub catalogue: &'a Catalogue,
    /// What the source may ask of the store, read-only.
    pub ledger: &'a dyn Ledger,
}

/// The one thing a source may ask of the store: whether a file (by its path and
/// SHA-256) was already ingested. Sources never get the store itself.
#[async_trait]
pub trait Ledger: Send + Sync {
    async fn file_seen(&self, source: &str, path: &str, sha256: &str) -> Result<bool, SourceError>;
}

#[async_trait]
pub trait Source: Send + Sync {
    /// Whether the cursor follows the records' own change times (the largest one
    /// committed), rather than the cursor the source returns. True for sources asked
    /// for changes since an instant (`http`, `sql`), so a source whose clock runs
    /// behind or ahead of ours loses nothing.
    fn cursor_from_records(&self) -> bool {
        false
    }

    /// Whether [`Source::fetch_one`] can fetch a record by its case id.
    fn fetches_by_id(&self) -> bool {
        false
    }

    /// The current version of one record, by case id (`http` with `record_url`), so a
    /// record quarantined because it came garbled can be read again.
    async fn fetch_one(
        &self,
        _case_id: &str,
        _ctx: &PollContext<'_>,
    ) -> Result<Vec<RawRecord>, SourceError> {
        Err(SourceError::Response(
            "this source cannot fetch one record by id".into(),
        ))
    }

    /// Records changed since `cursor` (`None` on the first poll).
    async fn poll(&self, cursor: Option<&str>, ctx: &PollContext<'_>) -> Result<Poll, SourceError>;

    /// The same, delivered page by page as it arrives, so storing one page overlaps
    /// fetching the next. Each page is stored in its own transaction; the returned
    /// cursor is stored only after every page. The default sends one page.
    async fn poll_pages(
        &self,
        cursor: Option<&str>,
        ctx: &PollContext<'_>,
        pages: tokio::sync::mpsc::Sender<Page>,
    ) -> Result<Option<String>, SourceError> {
        let poll = self.poll(cursor, ctx).await?;
        if !poll.records.is_empty() || !poll.files.is_empty() {
            pages
                .send(Page {
                    records: poll.records,
                    files: poll.files,
                })
                .await
                .map_err(|_| SourceError::Transport("storing stopped".into()))?;
        }
        Ok(poll.cursor)
    }
}

/// One page of a streamed poll: records, and the files they came from (stored with
/// them, in the same transaction).
#[derive(Clone, Debug, Default)]
pub struct Page {
    pub records: Vec<RawRecord>,
    pub files: Vec<(String, String)>,
}

/// `[[source]]` in the configuration. Which keys apply depends on `type`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique name; it identifies the cases (`source` + `case_id`) and labels metrics.
    pub name: String,
    /// `demo`, `http`, `sql`, `file` or `push`.
    #[serde(rename = "type")]
    pub kind: String,
    /// 6-field cron in local time (sec min hour day month weekday).
    #[serde(default = "default_schedule")]
    pub schedule: String,
    /// How far before the cursor each poll starts again, so nothing on the boundary is
    /// missed (the records seen twice change nothing).
    #[serde(default = "default_overlap")]
    pub overlap_seconds: i64,
    /// Where the first poll of an `http` or `sql` source starts (`since` of the first
    /// request): an RFC 3339 instant or a date `YYYY-MM-DD` (local midnight). Default:
    /// 1 January of the previous year, so the running and previous years' reports
    /// are complete.
    #[serde(default)]
    pub initial_cursor: Option<String>,
    /// Timeout of one request or query.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// Kind of the cases this source delivers.
    #[serde(default)]
    pub case_kind: Kind,
    /// Record format: `dvcqg` (the national portal's field names) or `canonical`.
    #[serde(default)]
    pub format: Option<String>,
    /// Canonical field → JSON pointer, over the format's defaults.
    #[serde(default)]
    pub mapping: BTreeMap<String, String>,
    /// Extra raw status values → DVCQG codes 1–10 (e.g. `done = 9`).
    #[serde(default)]
    pub status_map: HashMap<String, u8>,

    // demo
    /// Dossiers per workday (demo).
    #[serde(default)]
    pub per_day: Option<u32>,
    /// Seed of the demo province.
    #[serde(default)]
    pub seed: Option<u64>,

    // file
    /// Folder of exports (file).
    #[serde(default)]
    pub dir: Option<PathBuf>,

    // http
    /// URL template with `{cursor}` and `{page}` (http).
    #[serde(default)]
    pub url: Option<String>,
    /// JSON pointer to the records array in a page (http); default: the body itself, or `/data`.
    #[serde(default)]
    pub records: Option<String>,
    /// JSON pointer to the next page's URL in a page (http); otherwise `{page}` counts up
    /// until a page is empty.
    #[serde(default)]
    pub next_page: Option<String>,
    /// First page number for `{page}`.
    #[serde(default)]
    pub first_page: Option<u32>,
    /// Most pages one poll reads.
    #[serde(default)]
    pub max_pages: Option<u32>,
    /// URL of one record by id, with `{case_id}` (http): lets the daemon and
    /// `quarantine refetch` read a quarantined record's current version.
    #[serde(default)]
    pub record_url: Option<String>,
    /// `none`, `bearer`, `basic` or `session` (http).
    #[serde(default)]
    pub auth: Option<String>,
    /// Environment variable holding the bearer token, or the password (http).
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Environment variable holding the bearer token a push client sends (push).
    #[serde(default)]
    pub token_env: Option<String>,
    /// User name for `basic` and `session` (http), or of the push login (push).
    #[serde(default)]
    pub username: Option<String>,
    /// Login URL for `session`: POST `{username, password}` → `{session}` (http).
    #[serde(default)]
    pub login_url: Option<String>,
    /// How the cursor is written: `rfc3339` (http default), `dvcqg` (yyyyMMddHHmmss
    /// local) or `local` (sql default: `YYYY-MM-DD HH:MM:SS` local).
    #[serde(default)]
    pub cursor_format: Option<String>,
    /// Retries of a failed request within one poll.
    #[serde(default)]
    pub retries: Option<u32>,

    // sql
    /// Database URL, usually `${ENV}` (sql): postgres://, mysql://, sqlite://.
    #[serde(default)]
    pub database_url: Option<String>,
    /// Read-only query with one bound parameter, the cursor (sql).
    #[serde(default)]
    pub query: Option<String>,
}

fn default_schedule() -> String {
    "0 */5 * * * *".into()
}

fn default_overlap() -> i64 {
    300
}

fn default_timeout() -> u64 {
    30
}

impl SourceConfig {
    /// Checks `initial_cursor` without a calendar (at load time).
    pub fn check_initial_cursor(&self) -> Result<(), String> {
        match self.initial_cursor.as_deref().map(str::trim) {
            None | Some("") => Ok(()),
            Some(t) if DateTime::parse_from_rfc3339(t).is_ok() => Ok(()),
            Some(t) if chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").is_ok() => Ok(()),
            Some(t) => Err(format!(
                "initial_cursor `{t}` is neither an RFC 3339 instant nor a date YYYY-MM-DD"
            )),
        }
    }

    /// The instant the first poll reads from (see `initial_cursor`).
    pub fn initial_since(
        &self,
        calendar: &Calendar,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, String> {
        match self.initial_cursor.as_deref().map(str::trim) {
            None | Some("") => {
                use chrono::Datelike;
                let year = calendar.local(now).date().year() - 1;
                let d = chrono::NaiveDate::from_ymd_opt(year, 1, 1).expect("1 January");
                Ok(calendar.instant(d.and_hms_opt(0, 0, 0).expect("midnight")))
            }
            Some(t) => {
                if let Ok(i) = DateTime::parse_from_rfc3339(t) {
                    return Ok(i.with_timezone(&Utc));
                }
                chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
                    .map(|d| calendar.instant(d.and_hms_opt(0, 0, 0).expect("midnight")))
                    .map_err(|_| {
                        format!(
                            "initial_cursor `{t}` is neither an RFC 3339 instant nor a date YYYY-MM-DD"
                        )
                    })
            }
        }
    }

    /// The record mapping of this source.
    pub fn mapping(&self) -> Result<Mapping, String> {
        let format = self.format.as_deref().or(match self.kind.as_str() {
            "demo" | "sql" => Some("canonical"),
            _ => None,
        });
        let mut m = match format {
            None | Some("dvcqg") => {
                let mut m = Mapping::dvcqg();
                for (k, v) in &self.mapping {
                    let custom = Mapping::custom(&[(k.clone(), v.clone())].into_iter().collect())?;
                    apply_override(&mut m, &custom, k);
                }
                m
            }
            Some("canonical") => Mapping::custom(&self.mapping)?,
            Some(other) => {
                return Err(format!(
                    "format `{other}` is neither `dvcqg` nor `canonical`"
                ))
            }
        };
        m.kind = self.case_kind;
        for (raw, code) in &self.status_map {
            if !(1..=10).contains(code) {
                return Err(format!("status_map.{raw}: {code} is not a status 1–10"));
            }
        }
        m.status_map = self.status_map.clone();
        Ok(m)
    }
}

/// Copies one overridden key of `custom` onto `m`.
fn apply_override(m: &mut Mapping, custom: &Mapping, key: &str) {
    match key.split_once('.') {
        None if key == "supplements" => {
            if let (Some(a), Some(b)) = (m.supplements.as_mut(), custom.supplements.as_ref()) {
                a.0 = b.0.clone();
            }
        }
        None if key == "steps" => {
            if let (Some(a), Some(b)) = (m.steps.as_mut(), custom.steps.as_ref()) {
                a.0 = b.0.clone();
            }
        }
        None => {
            if let Some(p) = custom.fields.get(key) {
                m.fields.insert(key.into(), p.clone());
            }
        }
        Some(("supplements", f)) => {
            if let (Some(a), Some(b)) = (m.supplements.as_mut(), custom.supplements.as_ref()) {
                if let Some(p) = b.1.get(f) {
                    a.1.insert(f.into(), p.clone());
                }
            }
        }
        Some(("steps", f)) => {
            if let (Some(a), Some(b)) = (m.steps.as_mut(), custom.steps.as_ref()) {
                if let Some(p) = b.1.get(f) {
                    a.1.insert(f.into(), p.clone());
                    m.step_item.insert(f.into(), p.clone());
                }
            }
        }
        _ => {}
    }
}

/// Builds the source a configuration describes (`push` has no poller: `None`).
pub fn build(cfg: &SourceConfig, calendar: &Calendar) -> Result<Option<Arc<dyn Source>>, String> {
    Ok(match cfg.kind.as_str() {
        "demo" => Some(Arc::new(demo::DemoSource::new(cfg, calendar)?)),
        "file" => Some(Arc::new(file::FileSource::new(cfg)?)),
        "http" => Some(Arc::new(http::HttpSource::new(cfg)?)),
        "sql" => Some(Arc::new(sql::SqlSource::new(cfg)?)),
        "push" => None,
        other => {
            return Err(format!(
                "type `{other}` is not one of demo, http, sql, file, push"
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(initial: Option<&str>) -> SourceConfig {
        let mut text = "name = \"p\"\ntype = \"http\"\n".to_string();
        if let Some(i) = initial {
            text.push_str(&format!("initial_cursor = \"{i}\"\n"));
        }
        toml::from_str(&text).unwrap()
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_first_poll_reads_back_to_1_january_of_last_year() {
        let cal = Calendar::builtin();
        let s = source(None);
        // 01/12/2026 in Hà Nội: from 01/01/2025 00:00 local (31/12/2024 17:00 UTC).
        assert_eq!(
            s.initial_since(&cal, t("2026-12-01T10:00:00+07:00"))
                .unwrap(),
            t("2025-01-01T00:00:00+07:00")
        );
        // 00:30 on New Year's Day local is already the new year (still 31/12 in UTC).
        assert_eq!(
            s.initial_since(&cal, t("2027-01-01T00:30:00+07:00"))
                .unwrap(),
            t("2026-01-01T00:00:00+07:00")
        );
        assert_eq!(
            s.initial_since(&cal, t("2026-12-31T23:59:00+07:00"))
                .unwrap(),
            t("2025-01-01T00:00:00+07:00")
        );
    }

    #[test]
    fn initial_cursor_is_a_local_date_or_an_instant() {
        let cal = Calendar::builtin();
        let now = t("2026-12-01T10:00:00+07:00");
        assert_eq!(
            source(Some("2024-07-01")).initial_since(&cal, now).unwrap(),
            t("2024-07-01T00:00:00+07:00")
        );
        assert_eq!(
            source(Some("2024-07-01T08:00:00Z"))
                .initial_since(&cal, now)
                .unwrap(),
            t("2024-07-01T15:00:00+07:00")
        );
        for bad in ["01/07/2024", "last year", "2024-13-01"] {
            let s = source(Some(bad));
            assert!(s.initial_since(&cal, now).is_err(), "{bad}");
            assert!(s.check_initial_cursor().is_err(), "{bad}");
        }
        assert!(source(None).check_initial_cursor().is_ok());
    }
}
