//! Configuration: one typed tree read from `config/slawatch.toml`, with defaults in
//! code, validated on load; errors name the file, the line and the key.
//!
//! Paths inside the file are relative to the file's folder. Any value can be
//! overridden from the environment as `SLAWATCH__SECTION__KEY` (e.g.
//! `SLAWATCH__CALENDAR__TIMEZONE=Asia/Bangkok`), and `${NAME}` in the file is replaced
//! by the environment variable `NAME`. Secrets never live in this file.
//!
//! ```toml
//! [calendar]
//! name = "vn-official"            # shown in calendar versions
//! timezone = "Asia/Ho_Chi_Minh"
//! rest_days = ["sat", "sun"]
//! official_days = "calendar/vn-official-days.csv"   # default: the shipped data
//! operator_days = ["calendar/operator.csv"]         # your own additions/overrides
//! complete_years = [2027]         # years your rows cover completely
//! culture_day = true              # generate 24/11 for estimated years from 2026
//! culture_day_weekend_substitute = false   # a weekend 24/11 is not taken on Monday
//!
//! [calendar.office_hours]
//! default = "07:30-11:30,13:30-17:30"
//! weekdays = { fri = "07:30-11:30,13:30-16:30" }     # optional
//! [[calendar.office_hours.season]]
//! name = "summer"
//! dates = "04-16..10-15"
//! sessions = "07:00-11:30,14:00-17:30"
//!
//! [sla]                           # SPEC §4; every key optional
//! due_policy = "source_else_computed"                # or "source", "computed"
//! receipt_cutoff = "none"                            # e.g. "15:00"
//! due_soon_within = "2 workdays"
//! [[sla.version]]                 # rules for receipts from a date on
//! from = "2025-07-01"
//! receipt_cutoff = "15:00"
//!
//! [catalogue]
//! file = "procedures.toml"
//! ```

pub mod check;

use crate::calendar::data::{self, DayRow};
use crate::calendar::hours::{DaySessions, OfficeHours, Season, SeasonRange};
use crate::calendar::{Calendar, CalendarSpec, SHIPPED_OFFICIAL_DAYS};
use crate::catalogue::{line_of, Catalogue};
use crate::directory::Directory;
use crate::sla::duration::Duration;
use crate::sla::policy::{DuePolicy, Policy, Rules, SupplementView};
use chrono::{NaiveDate, Weekday};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The default config path, relative to the working directory.
pub const DEFAULT_PATH: &str = "config/slawatch.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}:{line}: {key}: {message}")]
    At {
        file: String,
        line: usize,
        key: String,
        message: String,
    },
    #[error("{file}: {message}")]
    File { file: String, message: String },
    /// A value set by a `SLAWATCH__SECTION__KEY` variable that does not parse.
    #[error("environment {var}: {key}: {message}")]
    Env {
        var: String,
        key: String,
        message: String,
    },
    #[error(transparent)]
    Rows(#[from] data::RowError),
    #[error(transparent)]
    Catalogue(#[from] crate::catalogue::CatalogueError),
    #[error(transparent)]
    Directory(#[from] crate::directory::DirectoryError),
}

/// A time zone name, validated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Zone(pub chrono_tz::Tz);

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<chrono_tz::Tz>()
            .map(Zone)
            .map_err(|_| serde::de::Error::custom(format!("unknown time zone `{s}`")))
    }
}

/// A weekday written `mon` … `sun` (or in full).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Day(pub u8);

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<Weekday>()
            .map(|w| Day(w.num_days_from_monday() as u8))
            .map_err(|_| serde::de::Error::custom(format!("`{s}` is not a weekday (mon … sun)")))
    }
}

impl Day {
    fn weekday(self) -> Weekday {
        Weekday::try_from(self.0).expect("0..7")
    }
}

impl<'de> Deserialize<'de> for DaySessions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DaySessions::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for SeasonRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SeasonRange::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `[calendar]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CalendarConfig {
    /// Name shown in calendar versions.
    pub name: String,
    /// IANA zone of local time.
    pub timezone: Zone,
    /// Weekly rest days.
    pub rest_days: Vec<Day>,
    /// The official days-off file; `None` uses the data compiled into the binary (the
    /// same as `config/calendar/vn-official-days.csv`).
    pub official_days: Option<PathBuf>,
    /// Operator files, applied on top in order.
    pub operator_days: Vec<PathBuf>,
    /// Years the operator's rows cover completely (official years).
    pub complete_years: Vec<i32>,
    /// Generate 24/11 for estimated years from 2026.
    pub culture_day: bool,
    /// Take a 24/11 that falls on a rest day on the next workday (estimated years;
    /// the law does not say, first affected year 2029).
    pub culture_day_weekend_substitute: bool,
    pub office_hours: OfficeHoursConfig,
}

impl Default for CalendarConfig {
    fn default() -> Self {
        CalendarConfig {
            name: "vn-official".into(),
            timezone: Zone(chrono_tz::Asia::Ho_Chi_Minh),
            rest_days: vec![Day(5), Day(6)],
            official_days: None,
            operator_days: Vec::new(),
            complete_years: Vec::new(),
            culture_day: true,
            culture_day_weekend_substitute: false,
            office_hours: OfficeHoursConfig::default(),
        }
    }
}

/// `[calendar.office_hours]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OfficeHoursConfig {
    /// Sessions of an ordinary workday.
    pub default: DaySessions,
    /// Sessions of particular weekdays.
    pub weekdays: BTreeMap<String, DaySessions>,
    /// Seasons laid on top, the last declared winning.
    pub season: Vec<SeasonConfig>,
}

impl Default for OfficeHoursConfig {
    fn default() -> Self {
        OfficeHoursConfig {
            default: OfficeHours::default().default,
            weekdays: BTreeMap::new(),
            season: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeasonConfig {
    #[serde(default)]
    pub name: String,
    pub dates: SeasonRange,
    pub sessions: DaySessions,
    #[serde(default)]
    pub weekdays: BTreeMap<String, DaySessions>,
}

/// A cut-off that may be `"none"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cutoff(pub Option<u32>);

impl<'de> Deserialize<'de> for Cutoff {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.trim() {
            "" | "none" => Ok(Cutoff(None)),
            t => crate::calendar::hours::parse_time_of_day(t)
                .map(|c| Cutoff(Some(c)))
                .map_err(serde::de::Error::custom),
        }
    }
}

fn de_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Date(toml::value::Datetime),
        Text(String),
    }
    let text = match Either::deserialize(d)? {
        Either::Date(dt) => dt.to_string(),
        Either::Text(s) => s,
    };
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("`{text}` is not a date (YYYY-MM-DD)")))
}

/// `[sla]` and each `[[sla.version]]`: every key optional, laid over the defaults (and
/// a version over `[sla]`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesPatch {
    /// Effective date (versions only), `2025-07-01` or `"2025-07-01"`.
    #[serde(deserialize_with = "de_date")]
    pub from: Option<NaiveDate>,
    pub due_policy: Option<DuePolicy>,
    pub pause_financial: Option<bool>,
    pub stop_is_terminal: Option<bool>,
    pub supplement_view: Option<SupplementView>,
    pub receipt_cutoff: Option<Cutoff>,
    pub due_soon_within: Option<Duration>,
    pub apology_within: Option<Duration>,
    pub stuck_after: Option<Duration>,
    pub supplement_request_within: Option<Duration>,
    pub due_beyond_legal_tolerance_seconds: Option<i64>,
    /// Dated versions (in `[sla]` only).
    pub version: Vec<RulesPatch>,
}

impl RulesPatch {
    fn apply(&self, base: &Rules) -> Rules {
        let mut r = base.clone();
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { r.$f = v; } )* };
        }
        set!(
            due_policy,
            pause_financial,
            stop_is_terminal,
            supplement_view,
            due_soon_within,
            apology_within,
            stuck_after,
            supplement_request_within,
            due_beyond_legal_tolerance_seconds
        );
        if let Some(c) = self.receipt_cutoff {
            r.receipt_cutoff = c.0;
        }
        r
    }
}

/// `[catalogue]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogueConfig {
    /// The procedures file; none means an empty catalogue (source dues only).
    pub file: Option<PathBuf>,
}

/// `[directory]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DirectoryConfig {
    /// The unit directory file; none means every unit is unknown (kept by raw name).
    pub file: Option<PathBuf>,
}

/// `[store]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://data/slawatch.db` (relative to the working directory) or
    /// `postgres://…`; put credentials in the environment: `url = "${SLAWATCH_DATABASE_URL}"`.
    pub url: String,
    /// Days a quarantined record is kept.
    pub quarantine_retention_days: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: "sqlite://data/slawatch.db".into(),
            quarantine_retention_days: 30,
        }
    }
}

/// `[alerts]`: the ladder and how its e-mail goes out (SPEC §10).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Language of the messages: `vi` or `en`.
    pub language: String,
    /// A folder of template overrides (`alert.vi.txt`, …), relative to this file.
    pub templates_dir: Option<String>,
    /// Link to a case in the one-stop system; `{case_id}` and `{source}` are replaced.
    pub link_template: Option<String>,
    /// Workdays of overdue age per escalation level.
    pub escalate_every: u32,
    /// The mode of each rule: `immediate`, `digest` or `off`.
    pub rules: crate::alert::RuleModes,
    /// Extra addresses copied on each rule's alerts.
    pub copies: crate::alert::RuleCopies,
    /// Only alerts firing after this instant (RFC 3339) send immediate e-mail: going
    /// live quietly, the backlog shows in digests only.
    pub start_after: Option<String>,
    /// `file` (write `.eml` files to `file_dir`: dry run), `smtp` or `none`.
    pub transport: String,
    /// Folder of the `file` transport, relative to the working directory.
    pub file_dir: String,
    /// Sender address (`Name <address>`).
    pub from: String,
    /// Send every message to this address instead (pilots).
    pub override_recipient: Option<String>,
    /// SMTP server; credentials come from the variables named below.
    pub smtp_host: String,
    pub smtp_port: u16,
    /// `starttls`, `tls` (implicit) or `none` (a local relay).
    pub smtp_tls: String,
    /// A PEM file of extra root certificates to trust for the SMTP server (a
    /// province's own certificate authority), besides the public ones. A relative
    /// path is from the working directory.
    pub smtp_ca_file: Option<String>,
    pub smtp_username_env: String,
    pub smtp_password_env: String,
    /// Alerts to one recipient within this many minutes of the last e-mail to them
    /// wait and go out together.
    pub bundle_window_minutes: u32,
    /// At most this many alert e-mails per recipient per hour; the rest wait and go
    /// out together.
    pub hourly_cap: u32,
    /// Attempts before a message is dead-lettered.
    pub max_attempts: u32,
    /// First retry delay in seconds, doubling per attempt up to an hour.
    pub retry_base_seconds: u32,
    /// At most this many cases are listed in one alert e-mail and in each section of
    /// a digest, most urgent first; the rest are counted (the counts at the top cover
    /// them all).
    pub list_limit: u32,
    /// No longer used (every case is one line now); accepted so older files load.
    pub digest_trace_limit: Option<u32>,
    /// How long claimed messages stay reserved for the daemon sending them. A daemon
    /// stops sending a claimed batch once this has run out (another may take it);
    /// after a crash, the messages it held go out again once it has.
    pub claim_seconds: u32,
    /// `webhook` transport: the URL messages are POSTed to as JSON, and the variable
    /// holding a bearer token for it (optional).
    pub webhook_url: Option<String>,
    pub webhook_token_env: String,
    /// IT staff: operational faults (a source stale) go to them at any hour.
    pub it_recipients: Vec<String>,
    /// A source is stale when its last success is older than this, in minutes.
    pub stale_after_minutes: u32,
    /// When the morning digest is built (6-field cron, local time); it runs on workdays
    /// only, make-up Saturdays included.
    pub digest_schedule: String,
    /// When the weekly report is considered (6-field cron, local time): it goes out
    /// on the first workday of each week. The monthly report is considered at the
    /// same time.
    pub weekly_schedule: String,
    /// The previous month's Biểu 06 (XLSX attached) to the heads of the units tagged
    /// `provincial_office` and `home_affairs`, on the first workday of each month.
    pub monthly_report: bool,
    /// When unit heads' e-mail may go out: `office_hours` (from the first session's
    /// start to the last session's end on workdays) or `always`.
    pub send_window: String,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            language: "vi".into(),
            templates_dir: None,
            link_template: None,
            escalate_every: 3,
            rules: crate::alert::RuleModes::default(),
            copies: crate::alert::RuleCopies::default(),
            start_after: None,
            transport: "file".into(),
            file_dir: "data/outbox".into(),
            from: "slawatch <slawatch@localhost>".into(),
            override_recipient: None,
            smtp_host: "127.0.0.1".into(),
            smtp_port: 25,
            smtp_tls: "starttls".into(),
            smtp_ca_file: None,
            smtp_username_env: "SLAWATCH_SMTP_USERNAME".into(),
            smtp_password_env: "SLAWATCH_SMTP_PASSWORD".into(),
            max_attempts: 8,
            bundle_window_minutes: 10,
            hourly_cap: 20,
            retry_base_seconds: 30,
            claim_seconds: 300,
            list_limit: 30,
            digest_trace_limit: None,
            send_window: "office_hours".into(),
            digest_schedule: "0 30 7 * * *".into(),
            webhook_url: None,
            webhook_token_env: "SLAWATCH_WEBHOOK_TOKEN".into(),
            it_recipients: Vec::new(),
            stale_after_minutes: 60,
            weekly_schedule: "0 0 8 * * *".into(),
            monthly_report: true,
        }
    }
}

/// `[metrics]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Adds `slawatch_procedure_cases_open{kind,procedure,state}`. Off by default: a
    /// province has about 2,000 procedures, each a set of series.
    pub procedure_labels: bool,
}

/// `[http]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Listener for `/metrics`, `/healthz`, `/readyz` and the API.
    pub listen: String,
    /// Largest request body accepted (push), in bytes.
    pub max_body_bytes: usize,
    /// Environment variable holding the bearer token `/api/v1` requires. When it is
    /// unset or empty the API is open (a warning is logged); `/metrics` and the health
    /// endpoints are always open.
    pub api_token_env: String,
    /// The address people reach this daemon at (`https://slawatch.tinh.gov.vn`): the
    /// base of the desk links in e-mails. None: the address it listens on.
    pub public_url: Option<String>,
    /// Environment variable holding the secret desk links are signed with; when unset,
    /// one is generated and kept in the store. Rotating it revokes every link.
    pub desk_secret_env: String,
    /// How long a desk link in an e-mail stays valid, in days.
    pub desk_link_days: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:9464".into(),
            max_body_bytes: 16 * 1024 * 1024,
            api_token_env: "SLAWATCH_API_TOKEN".into(),
            public_url: None,
            desk_secret_env: "SLAWATCH_DESK_SECRET".into(),
            desk_link_days: 14,
        }
    }
}

/// `[daemon]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonConfig {
    /// When open cases are re-evaluated as time passes (6-field cron, local time).
    pub evaluate_schedule: String,
    /// Longest a poll may run before it is abandoned, in seconds.
    pub poll_timeout_seconds: u64,
    /// Longest back-off after repeated failures of a source, in seconds.
    pub max_backoff_seconds: u64,
    /// How long a replica's lease on singleton work (polling a source, the alert pass,
    /// digests, the case metrics) lasts unless renewed, in seconds: a replica that dies
    /// has its work taken over within this and one tick of the work's schedule.
    pub lease_seconds: u64,
    /// How often a replica reads the change feed for what other replicas committed,
    /// in milliseconds.
    pub follow_interval_ms: u64,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            evaluate_schedule: "0 * * * * *".into(),
            poll_timeout_seconds: 600,
            max_backoff_seconds: 900,
            lease_seconds: 30,
            follow_interval_ms: 2000,
        }
    }
}

/// The whole file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub calendar: CalendarConfig,
    pub sla: RulesPatch,
    pub catalogue: CatalogueConfig,
    pub directory: DirectoryConfig,
    pub store: StoreConfig,
    pub http: HttpConfig,
    pub metrics: MetricsConfig,
    pub alerts: AlertsConfig,
    pub daemon: DaemonConfig,
    pub source: Vec<crate::source::SourceConfig>,
}

/// A loaded configuration: the file and what it points to, built.
pub struct Loaded {
    pub config: Config,
    /// The file it came from (`None` for the built-in defaults).
    pub path: Option<PathBuf>,
    /// The folder relative paths are resolved against.
    pub dir: PathBuf,
    pub calendar_spec: CalendarSpec,
    pub policy: Policy,
    pub catalogue: Catalogue,
    pub directory: Directory,
    /// Things an operator should know; see also [`Loaded::warnings_at`].
    pub warnings: Vec<String>,
}

impl Loaded {
    /// What an operator should know on `today` (local date): the warnings of the load,
    /// and the unconfirmed calendar rows dated today or later — a row long past moves
    /// no due any more, so it is not repeated on every command.
    pub fn warnings_at(&self, today: NaiveDate) -> Vec<String> {
        let mut out = self.warnings.clone();
        let unconfirmed: Vec<String> = self
            .calendar_spec
            .official
            .iter()
            .chain(self.calendar_spec.operator.iter())
            .filter(|r| r.unconfirmed && r.date >= today)
            .map(|r| format!("{} {}", r.date, r.name))
            .collect();
        if !unconfirmed.is_empty() {
            out.push(format!(
                "the calendar uses {} unconfirmed row(s), check them against the official announcement: {}",
                unconfirmed.len(),
                unconfirmed.join("; ")
            ));
        }
        out
    }

    /// Today's local date in the configured zone at `now`.
    pub fn local_date(&self, now: chrono::DateTime<chrono::Utc>) -> NaiveDate {
        now.with_timezone(&self.config.calendar.timezone.0)
            .date_naive()
    }
}

/// Describes the key at a line: `section.key`.
fn key_at(text: &str, line: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let Some(this) = lines.get(line.saturating_sub(1)) else {
        return String::new();
    };
    let key = this.split('=').next().unwrap_or("").trim().to_string();
    let section = lines[..line.saturating_sub(1)]
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').to_string());
    match section {
        Some(s) if !key.starts_with('[') && !key.is_empty() => format!("{s}.{key}"),
        Some(s) => s,
        None => key,
    }
}

/// Where a line's comment starts (a `#` outside a string), if it has one.
fn comment_start(line: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && q == '"' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' => return Some(i),
            None => {}
        }
    }
    None
}

/// Replaces `${NAME}` by the environment variable `NAME` (not inside comments).
fn expand_env(text: &str, file: &str) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let cut = comment_start(line).unwrap_or(line.len());
        let (code, comment) = line.split_at(cut);
        let mut rest = code;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let Some(j) = after.find('}') else {
                out.push_str(&rest[i..]);
                rest = "";
                break;
            };
            let name = &after[..j];
            let value = std::env::var(name).map_err(|_| ConfigError::At {
                file: file.into(),
                line: n + 1,
                key: format!("${{{name}}}"),
                message: "the environment variable is not set".into(),
            })?;
            out.push_str(&value);
            rest = &after[j + 1..];
        }
        out.push_str(rest);
        out.push_str(comment);
    }
    Ok(out)
}

fn set_path(t: &mut toml::Table, keys: &[String], value: toml::Value) {
    if keys.len() == 1 {
        t.insert(keys[0].clone(), value);
        return;
    }
    let entry = t
        .entry(keys[0].clone())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if !entry.is_table() {
        *entry = toml::Value::Table(toml::Table::new());
    }
    if let toml::Value::Table(inner) = entry {
        set_path(inner, &keys[1..], value);
    }
}

/// The dotted key an override variable sets: `SLAWATCH__ALERTS__SMTP_PORT` →
/// `alerts.smtp_port`.
fn override_key(var: &str) -> String {
    var.strip_prefix("SLAWATCH__")
        .unwrap_or(var)
        .split("__")
        .map(|k| k.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(".")
}

/// Applies `SLAWATCH__SECTION__KEY=value` overrides to a parsed table.
fn apply_env_overrides(table: &mut toml::Table, vars: &[(String, String)]) -> bool {
    let mut changed = false;
    for (name, value) in vars {
        let Some(path) = name.strip_prefix("SLAWATCH__") else {
            continue;
        };
        let keys: Vec<String> = path.split("__").map(|k| k.to_ascii_lowercase()).collect();
        let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        set_path(table, &keys, parsed);
        changed = true;
    }
    changed
}

impl Config {
    /// Parses a config text; `file` names it in messages.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("SLAWATCH__"))
            .collect();
        Self::parse_with_env(text, file, &vars)
    }

    fn parse_with_env(
        text: &str,
        file: &str,
        vars: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let text = expand_env(text, file)?;
        let at = |e: toml::de::Error, text: &str, file: &str| {
            let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(0);
            ConfigError::At {
                file: file.into(),
                line,
                key: key_at(text, line),
                message: e.message().trim().to_string(),
            }
        };
        if vars.is_empty() {
            return toml::from_str(&text).map_err(|e| at(e, &text, file));
        }
        let mut table: toml::Table = toml::from_str(&text).map_err(|e| at(e, &text, file))?;
        apply_env_overrides(&mut table, vars);
        let merged = toml::to_string(&table).map_err(|e| ConfigError::File {
            file: file.into(),
            message: e.to_string(),
        })?;
        let name = format!("{file} (with SLAWATCH__ overrides)");
        toml::from_str(&merged).map_err(|e| {
            let err = at(e, &merged, &name);
            // A value an override set: name the variable, not a line of the merge.
            if let ConfigError::At { key, message, .. } = &err {
                if let Some((var, _)) = vars.iter().find(|(v, _)| override_key(v) == *key) {
                    return ConfigError::Env {
                        var: var.clone(),
                        key: key.clone(),
                        message: message.clone(),
                    };
                }
            }
            err
        })
    }

    fn office_hours(&self) -> Result<OfficeHours, String> {
        let by_day =
            |m: &BTreeMap<String, DaySessions>| -> Result<Vec<(Weekday, DaySessions)>, String> {
                m.iter()
                    .map(|(k, v)| {
                        k.parse::<Weekday>()
                            .map(|w| (w, v.clone()))
                            .map_err(|_| format!("`{k}` is not a weekday (mon … sun)"))
                    })
                    .collect()
            };
        let oh = &self.calendar.office_hours;
        Ok(OfficeHours {
            default: oh.default.clone(),
            weekdays: by_day(&oh.weekdays)?,
            seasons: oh
                .season
                .iter()
                .map(|s| {
                    Ok(Season {
                        name: s.name.clone(),
                        range: s.dates,
                        sessions: s.sessions.clone(),
                        weekdays: by_day(&s.weekdays)?,
                    })
                })
                .collect::<Result<_, String>>()?,
        })
    }

    /// The SLA policy: `[sla]` over the defaults, each version over `[sla]`.
    pub fn policy(&self, file: &str) -> Result<Policy, ConfigError> {
        let bad = |message: String| ConfigError::File {
            file: file.into(),
            message,
        };
        if self.sla.from.is_some() {
            return Err(bad(
                "sla.from: only [[sla.version]] entries take `from`".into()
            ));
        }
        let base = self.sla.apply(&Rules::default());
        let mut versions = Vec::new();
        for (i, v) in self.sla.version.iter().enumerate() {
            let Some(from) = v.from else {
                return Err(bad(format!(
                    "sla.version[{i}].from: each version needs its effective date"
                )));
            };
            if !v.version.is_empty() {
                return Err(bad(format!(
                    "sla.version[{i}].version: versions do not nest"
                )));
            }
            versions.push((from, v.apply(&base)));
        }
        versions.sort_by_key(|v| v.0);
        if versions.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(bad("sla.version: two versions with the same `from`".into()));
        }
        Ok(Policy { base, versions })
    }
}

/// Reads the procedure catalogue the configuration names (reloadable).
pub fn load_catalogue(config: &Config, dir: &Path) -> Result<Catalogue, ConfigError> {
    match &config.catalogue.file {
        Some(p) => {
            let p = if p.is_absolute() {
                p.clone()
            } else {
                dir.join(p)
            };
            Ok(Catalogue::parse(&read(&p)?, &p.display().to_string())?)
        }
        None => Ok(Catalogue::default()),
    }
}

/// Reads the unit directory the configuration names (reloadable).
pub fn load_directory(config: &Config, dir: &Path) -> Result<Directory, ConfigError> {
    match &config.directory.file {
        Some(p) => {
            let p = if p.is_absolute() {
                p.clone()
            } else {
                dir.join(p)
            };
            Ok(Directory::parse(&read(&p)?, &p.display().to_string())?)
        }
        None => Ok(Directory::default()),
    }
}

/// The files a reload watches: the catalogue and the directory.
pub fn watched_files(config: &Config, dir: &Path) -> Vec<PathBuf> {
    [&config.catalogue.file, &config.directory.file]
        .into_iter()
        .flatten()
        .map(|p| {
            if p.is_absolute() {
                p.clone()
            } else {
                dir.join(p)
            }
        })
        .collect()
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        file: path.display().to_string(),
        message: format!("cannot read: {e}"),
    })
}

impl Loaded {
    /// Loads `path`, or the built-in defaults when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Loaded, ConfigError> {
        let (config, dir, file) = match path {
            Some(p) => {
                let text = read(p)?;
                let file = p.display().to_string();
                (
                    Config::parse(&text, &file)?,
                    p.parent().map(Path::to_path_buf).unwrap_or_default(),
                    file,
                )
            }
            None => (
                Config::default(),
                PathBuf::new(),
                "built-in defaults".to_string(),
            ),
        };
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                dir.join(p)
            }
        };

        let official = match &config.calendar.official_days {
            Some(p) => {
                let p = resolve(p);
                data::parse_rows(&read(&p)?, &p.display().to_string())?
            }
            None => data::parse_rows(SHIPPED_OFFICIAL_DAYS, "vn-official-days.csv (built in)")?,
        };
        let mut operator: Vec<DayRow> = Vec::new();
        for p in &config.calendar.operator_days {
            let p = resolve(p);
            operator.extend(data::parse_rows(&read(&p)?, &p.display().to_string())?);
        }
        let mut rest_days = [false; 7];
        for d in &config.calendar.rest_days {
            rest_days[d.weekday().num_days_from_monday() as usize] = true;
        }
        if rest_days.iter().all(|r| *r) {
            return Err(ConfigError::File {
                file,
                message: "calendar.rest_days: every day is a rest day".into(),
            });
        }
        let hours = config.office_hours().map_err(|message| ConfigError::File {
            file: file.clone(),
            message: format!("calendar.office_hours.weekdays: {message}"),
        })?;
        let calendar_spec = CalendarSpec {
            name: config.calendar.name.clone(),
            zone: config.calendar.timezone.0,
            rest_days,
            culture_day: config.calendar.culture_day,
            culture_day_weekend_substitute: config.calendar.culture_day_weekend_substitute,
            official,
            operator,
            complete_years: config.calendar.complete_years.clone(),
            hours,
        };
        let policy = config.policy(&file)?;
        let catalogue = load_catalogue(&config, &dir)?;
        let directory = load_directory(&config, &dir)?;
        let mut names = std::collections::HashSet::new();
        for s in &config.source {
            if !names.insert(s.name.clone()) {
                return Err(ConfigError::File {
                    file,
                    message: format!("source.name: `{}` is used twice", s.name),
                });
            }
            if let Err(message) = s.mapping() {
                return Err(ConfigError::File {
                    file,
                    message: format!("source `{}`: {message}", s.name),
                });
            }
            if let Err(message) = s.check_initial_cursor() {
                return Err(ConfigError::File {
                    file,
                    message: format!("source `{}`: {message}", s.name),
                });
            }
        }
        if let Some((rule, addr)) = config.alerts.copies.invalid() {
            return Err(ConfigError::File {
                file,
                message: format!("alerts.copies.{rule}: `{addr}` is not an e-mail address"),
            });
        }
        for addr in &config.alerts.it_recipients {
            if addr.parse::<lettre::Address>().is_err() {
                return Err(ConfigError::File {
                    file,
                    message: format!("alerts.it_recipients: `{addr}` is not an e-mail address"),
                });
            }
        }
        let warnings = Vec::new();
        Ok(Loaded {
            config,
            path: path.map(Path::to_path_buf),
            dir,
            calendar_spec,
            policy,
            catalogue,
            directory,
            warnings,
        })
    }

    /// Builds the calendar.
    pub fn calendar(&self) -> Calendar {
        Calendar::build(&self.calendar_spec)
    }

    /// The calendar with `file` in place of the official days (`calendar diff`): read
    /// and checked exactly as the daemon reads `calendar.official_days`.
    pub fn calendar_with_official(&self, file: &Path) -> Result<Calendar, ConfigError> {
        let mut spec = self.calendar_spec.clone();
        spec.official = data::parse_rows(&read(file)?, &file.display().to_string())?;
        Ok(Calendar::build(&spec))
    }

    /// Where the official days come from, for messages.
    pub fn official_days_file(&self) -> String {
        match &self.config.calendar.official_days {
            Some(p) if p.is_absolute() => p.display().to_string(),
            Some(p) => self.dir.join(p).display().to_string(),
            None => "vn-official-days.csv (built in)".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_builtin_calendar() {
        let c = Config::parse("", "x.toml").unwrap();
        assert_eq!(c.calendar.timezone.0, chrono_tz::Asia::Ho_Chi_Minh);
        assert_eq!(c.policy("x.toml").unwrap(), Policy::default());
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let text = "[calendar]\nname = \"x\"\ntimezone = \"Asia/Hanoii\"\n";
        let e = Config::parse_with_env(text, "slawatch.toml", &[])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "slawatch.toml:3: calendar.timezone: unknown time zone `Asia/Hanoii`"
        );

        let text = "[calendar.office_hours]\ndefault = \"07:30-11:30,11:00-17:00\"\n";
        let e = Config::parse_with_env(text, "slawatch.toml", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("slawatch.toml:2: calendar.office_hours.default: sessions"),
            "{e}"
        );

        let text = "[sla]\ndue_soon_within = \"2 weeks\"\n";
        let e = Config::parse_with_env(text, "slawatch.toml", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("slawatch.toml:2: sla.due_soon_within:"),
            "{e}"
        );

        let text = "[sla]\ndue_son_within = \"2 workdays\"\n";
        let e = Config::parse_with_env(text, "slawatch.toml", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("slawatch.toml:2: sla.due_son_within: unknown field"),
            "{e}"
        );
    }

    #[test]
    fn versions_lay_over_the_base() {
        let text = "[sla]\ndue_soon_within = \"3 workdays\"\n[[sla.version]]\nfrom = 2025-07-01\nreceipt_cutoff = \"15:00\"\n";
        let c = Config::parse_with_env(text, "x.toml", &[]).unwrap();
        let p = c.policy("x.toml").unwrap();
        assert_eq!(p.base.due_soon_within, Duration::workdays(3));
        assert_eq!(p.base.receipt_cutoff, None);
        assert_eq!(p.versions[0].1.receipt_cutoff, Some(15 * 3600));
        assert_eq!(p.versions[0].1.due_soon_within, Duration::workdays(3));
        let bad = Config::parse_with_env(
            "[[sla.version]]\nstuck_after = \"1 workdays\"\n",
            "x.toml",
            &[],
        )
        .unwrap();
        assert!(bad
            .policy("x.toml")
            .unwrap_err()
            .to_string()
            .contains("effective date"));
    }

    #[test]
    fn environment_overrides_and_expansion() {
        let vars = vec![(
            "SLAWATCH__CALENDAR__TIMEZONE".to_string(),
            "Asia/Bangkok".to_string(),
        )];
        let c = Config::parse_with_env("[calendar]\nname = \"x\"\n", "x.toml", &vars).unwrap();
        assert_eq!(c.calendar.timezone.0, chrono_tz::Asia::Bangkok);
        assert_eq!(c.calendar.name, "x");
        // A bad value from an override names the variable, not a line of the file.
        let vars = vec![(
            "SLAWATCH__ALERTS__SMTP_PORT".to_string(),
            "99999".to_string(),
        )];
        let e = Config::parse_with_env("[alerts]\ntransport = \"smtp\"\n", "x.toml", &vars)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("environment SLAWATCH__ALERTS__SMTP_PORT: alerts.smtp_port: "),
            "{e}"
        );
        let e = expand_env("a = \"${SLAWATCH_TEST_SURELY_UNSET}\"\n", "x.toml").unwrap_err();
        assert!(e.to_string().contains("SLAWATCH_TEST_SURELY_UNSET"));
        assert_eq!(expand_env("a = 1", "x").unwrap(), "a = 1");
        // Comments are left alone, even with `${…}` in them.
        let text = "# url = \"${SLAWATCH_TEST_SURELY_UNSET}\"\nb = \"#x\" # ${SLAWATCH_TEST_SURELY_UNSET}\n";
        assert_eq!(expand_env(text, "x.toml").unwrap(), text);
    }

    #[test]
    fn the_shipped_config_loads() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let l = Loaded::load(Some(&root.join(DEFAULT_PATH))).unwrap();
        assert!(!l.catalogue.is_empty());
        // 03/05/2027 is unconfirmed: warned about until it has passed.
        let on = |d: &str| l.warnings_at(d.parse().unwrap());
        assert!(
            on("2026-12-01")[0].contains("1 unconfirmed row(s)"),
            "{:?}",
            on("2026-12-01")
        );
        assert!(on("2026-12-01")[0].contains("2027-05-03"));
        assert!(on("2027-05-03")[0].contains("2027-05-03"));
        assert!(on("2027-05-04").is_empty(), "{:?}", on("2027-05-04"));
        let cal = l.calendar();
        assert_eq!(cal.version().name, "vn-official");
        // The Hà Tĩnh profile: summer afternoons open at 14:00.
        let d = NaiveDate::from_ymd_opt(2024, 6, 3).unwrap();
        assert_eq!(cal.sessions(d)[1].open, 14 * 3600);
    }
}
