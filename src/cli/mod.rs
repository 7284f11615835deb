//! The command line (SPEC §9, contract verbs): `deadline`, `calendar show`,
//! `check-config`. Errors are one line naming the file, line and key at fault; exit
//! codes: 0 success, 1 some batch rows failed, 2 bad usage or configuration.

mod report;

use crate::calendar::data::{self, RowKind};
use crate::calendar::{Calendar, FIRST_YEAR, LAST_YEAR};
use crate::clock::Clock;
use crate::config::{Loaded, DEFAULT_PATH};
use crate::sla::duration::Duration;
use crate::sla::explain::{explain_deadline, Lang};
use crate::timefmt::{parse_instant, push_rfc3339, rfc3339};
use anyhow::{anyhow, bail, Context, Result};
use chrono::{Datelike, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "slawatch",
    version,
    about = "Watches administrative-procedure deadlines in working time"
)]
pub struct Cli {
    /// Configuration file [default: config/slawatch.toml when present, else built-in defaults]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Test-only: the process's clock starts at this instant (RFC 3339) and runs on
    /// from it. Hidden from `--help`; never for production (see `clock`).
    #[arg(long, global = true, hide = true, value_name = "INSTANT")]
    pub test_clock_start: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// The clock of this process: the system clock unless `--test-clock-start` pinned it.
static CLOCK: std::sync::OnceLock<Clock> = std::sync::OnceLock::new();

fn clock() -> Clock {
    *CLOCK.get_or_init(Clock::system)
}

fn now() -> chrono::DateTime<Utc> {
    clock().now()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon: poll the sources, keep every case evaluated, serve health.
    Run,
    /// Apply the database migrations and exit.
    Migrate,
    /// Explain a stored case: its due, state and history.
    Explain {
        case_id: String,
        #[arg(long, value_enum, default_value_t = Lang::Vi)]
        lang: Lang,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Records that could not be normalised.
    #[command(subcommand)]
    Quarantine(QuarantineCommand),
    /// The unit directory: names the sources use, import from a spreadsheet.
    #[command(subcommand)]
    Units(UnitsCommand),
    /// The procedure catalogue: import from a spreadsheet.
    #[command(subcommand)]
    Procedures(ProceduresCommand),
    /// Compute a due date with its trace: one from flags, or a batch from CSV.
    Deadline(DeadlineArgs),
    /// Show the working calendar.
    #[command(subcommand)]
    Calendar(CalendarCommand),
    /// Load and validate the configuration, calendar and catalogue.
    CheckConfig,
    /// Reports the province files, from the store (read-only).
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// Alert delivery.
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Re-read a source (`http` or `sql`) from a given change time, on purpose: after
    /// a mapping fix, a restored outage, or to reach further back than the first poll
    /// did. Idempotent (records read again change nothing); the cursor is left alone.
    Backfill {
        /// The source's name.
        #[arg(long)]
        source: String,
        /// Change time to read from: a date `YYYY-MM-DD` (local midnight) or RFC 3339.
        #[arg(long)]
        since: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum NotifyCommand {
    /// Send a test message (the alert template with sample values) through the
    /// configured transport.
    Test {
        /// Recipient address.
        #[arg(long)]
        to: String,
    },
    /// Put dead-lettered messages (every attempt failed) back in the outbox with fresh
    /// attempts, once the cause (address, server, credentials) is fixed.
    Requeue,
    /// Render what would be sent now, from the store (read-only), without sending or
    /// recording anything: to look before going live.
    Preview {
        #[command(subcommand)]
        what: PreviewKind,
        /// Write each e-mail as `<recipient>.eml` into this folder instead of printing it.
        #[arg(long, global = true)]
        eml: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum PreviewKind {
    /// This morning's digest of a unit, to each person who would receive it.
    Digest {
        /// The unit's code in the directory.
        #[arg(long)]
        unit: String,
    },
    /// The alert e-mails a case would send now, one per person.
    Alert {
        /// The case id.
        #[arg(long)]
        case: String,
    },
    /// The weekly report to the provincial office.
    Weekly,
    /// The monthly report (Biểu 06 attached) to the heads tagged provincial_office
    /// and home_affairs.
    Monthly {
        /// The month (`2026-11`); default: the previous month.
        #[arg(long)]
        period: Option<String>,
    },
}

/// Calendar adjustments for one command.
#[derive(Args, Debug, Default)]
pub struct CalendarOverrides {
    /// An operator calendar file (date,kind,name[,status]) laid on top; repeatable.
    #[arg(long = "calendar", value_name = "FILE")]
    pub calendar_files: Vec<PathBuf>,
    /// Office hours: `07:30-11:30,13:30-17:00` for the whole year, or a season on top
    /// with `04-16..10-15=07:00-11:30,14:00-17:30`; repeatable, in order.
    #[arg(long = "hours", value_name = "SPEC")]
    pub hours: Vec<String>,
}

#[derive(Args, Debug)]
pub struct DeadlineArgs {
    /// Receipt time (yyyyMMddHHmmss, RFC 3339, `YYYY-MM-DD HH:MM`, `dd/MM/yyyy HH:mm`).
    #[arg(long, required_unless_present = "input", conflicts_with = "input")]
    pub received: Option<String>,
    /// Duration: `15 workdays`, `2.5 workdays`, `4 workhours`, `30 days`, `3 months`, `none`.
    #[arg(long, required_unless_present = "input", conflicts_with = "input")]
    pub duration: Option<String>,
    /// Batch input: CSV `id,received_at,duration` (header optional); `-` for stdin.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Batch output: CSV `id,start,due` [default: stdout].
    #[arg(long, value_name = "FILE", requires = "input")]
    pub output: Option<PathBuf>,
    /// Output format of a single deadline.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Language of the trace.
    #[arg(long, value_enum, default_value_t = Lang::Vi)]
    pub lang: Lang,
    /// Receipt cut-off `HH:MM` (`none` disables a configured one).
    #[arg(long, value_name = "HH:MM|none")]
    pub cutoff: Option<String>,
    #[command(flatten)]
    pub overrides: CalendarOverrides,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum CalendarCommand {
    /// Every holiday and make-up workday of a year, then its number of workdays.
    Show {
        year: i32,
        #[arg(long, value_enum, default_value_t = TableFormat::Table)]
        format: TableFormat,
        #[command(flatten)]
        overrides: CalendarOverrides,
    },
    /// What a new official days file would do to the cases in the store, before it is
    /// installed: each open case (and each ended in the running year) evaluated under
    /// the current and the new calendar at the same instant. Read-only. Exit 0: nothing
    /// changes; 1: something does; 2: bad input.
    Diff {
        /// The official days file as it will be installed (date,kind,name,status); it
        /// takes the place of `calendar.official_days`, the rest of the configuration
        /// stays.
        #[arg(long = "calendar", value_name = "NEW.csv")]
        calendar: PathBuf,
        #[arg(long, value_enum, default_value_t = crate::calendar_diff::DiffFormat::Text)]
        format: crate::calendar_diff::DiffFormat,
    },
}

#[derive(Subcommand, Debug)]
pub enum QuarantineCommand {
    /// List quarantined records (applicant fields are never shown).
    List {
        #[arg(long)]
        source: Option<String>,
        /// Include records a retry already resolved.
        #[arg(long)]
        all: bool,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Show one record, applicant fields redacted.
    Show { id: i64 },
    /// Fetch the current version of quarantined records by id from sources that
    /// serve one record (`record_url`), and store it: a valid one resolves the row.
    Refetch {
        /// Record ids; none means every unresolved record (of `--source`).
        ids: Vec<i64>,
        #[arg(long)]
        source: Option<String>,
    },
    /// Normalise records again with the current configuration (after a mapping fix).
    Retry {
        /// Record ids; none means every unresolved record (of `--source`).
        ids: Vec<i64>,
        #[arg(long)]
        source: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum UnitsCommand {
    /// Unit names no directory entry matches, with how many cases name them.
    Unmatched,
    /// Write the unit directory (units.toml) from a spreadsheet (CSV or XLSX; README
    /// lists the columns, Vietnamese headers accepted).
    Import(ImportArgs),
}

#[derive(Subcommand, Debug)]
pub enum ProceduresCommand {
    /// Write the procedure catalogue (procedures.toml) from a spreadsheet (CSV or
    /// XLSX; README lists the columns, Vietnamese headers accepted).
    Import(ImportArgs),
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The spreadsheet: .csv (UTF-8, `,` or `;`) or .xlsx (the first sheet).
    pub file: PathBuf,
    /// Where to write [default: the file the configuration names]; `-` for stdout.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Replace the output file when it exists (a running daemon reloads it).
    #[arg(long)]
    pub force: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TableFormat {
    Table,
    Csv,
}

/// Loads the configuration: `--config`, else `config/slawatch.toml` when present, else
/// the built-in defaults.
fn load(config: &Option<PathBuf>) -> Result<Loaded> {
    let path = match config {
        Some(p) => Some(p.clone()),
        None if Path::new(DEFAULT_PATH).exists() => Some(PathBuf::from(DEFAULT_PATH)),
        None => None,
    };
    Ok(Loaded::load(path.as_deref())?)
}

fn build_calendar(loaded: &mut Loaded, o: &CalendarOverrides) -> Result<Calendar> {
    for f in &o.calendar_files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("{}: cannot read", f.display()))?;
        loaded
            .calendar_spec
            .operator
            .extend(data::parse_rows(&text, &f.display().to_string())?);
    }
    for h in &o.hours {
        loaded
            .calendar_spec
            .hours
            .apply_override(h)
            .map_err(|e| anyhow!("--hours `{h}`: {e}"))?;
    }
    Ok(loaded.calendar())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Runs the command line.
pub fn run(cli: Cli) -> ExitCode {
    if let Some(t) = &cli.test_clock_start {
        match chrono::DateTime::parse_from_rfc3339(t) {
            Ok(t) => {
                let _ = CLOCK.set(Clock::starting_at(t.with_timezone(&Utc)));
            }
            Err(e) => {
                eprintln!("error: --test-clock-start `{t}`: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let result = match cli.command {
        Command::Run => load(&cli.config)
            .and_then(|l| runtime()?.block_on(crate::daemon::run(l, clock())))
            .map(|_| ExitCode::SUCCESS),
        Command::Migrate => runtime()
            .and_then(|rt| rt.block_on(migrate(&cli.config)))
            .map(|_| ExitCode::SUCCESS),
        Command::Explain {
            case_id,
            lang,
            format,
        } => runtime().and_then(|rt| rt.block_on(explain(&cli.config, &case_id, lang, format))),
        Command::Quarantine(q) => runtime().and_then(|rt| rt.block_on(quarantine(&cli.config, q))),
        Command::Units(UnitsCommand::Import(a)) => import(&cli.config, &a, true),
        Command::Procedures(ProceduresCommand::Import(a)) => import(&cli.config, &a, false),
        Command::Units(UnitsCommand::Unmatched) => runtime()
            .and_then(|rt| rt.block_on(units_unmatched(&cli.config)))
            .map(|_| ExitCode::SUCCESS),
        Command::Deadline(args) => deadline(&cli.config, args),
        Command::Calendar(CalendarCommand::Show {
            year,
            format,
            overrides,
        }) => calendar_show(&cli.config, year, format, &overrides).map(|_| ExitCode::SUCCESS),
        Command::Calendar(CalendarCommand::Diff { calendar, format }) => {
            runtime().and_then(|rt| rt.block_on(calendar_diff(&cli.config, &calendar, format)))
        }
        Command::CheckConfig => check_config(&cli.config).map(|_| ExitCode::SUCCESS),
        Command::Notify(NotifyCommand::Test { to }) => runtime()
            .and_then(|rt| rt.block_on(notify_test(&cli.config, &to)))
            .map(|_| ExitCode::SUCCESS),
        Command::Backfill { source, since } => {
            runtime().and_then(|rt| rt.block_on(backfill(&cli.config, &source, &since)))
        }
        Command::Notify(NotifyCommand::Requeue) => runtime()
            .and_then(|rt| rt.block_on(notify_requeue(&cli.config)))
            .map(|_| ExitCode::SUCCESS),
        Command::Report(report::ReportCommand::Tthc(args)) => {
            runtime().and_then(|rt| rt.block_on(report::tthc(&cli.config, args)))
        }
        Command::Notify(NotifyCommand::Preview { what, eml }) => {
            runtime().and_then(|rt| rt.block_on(notify_preview(&cli.config, &what, eml.as_deref())))
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                msg = format!("{msg}: {cause}");
            }
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}

fn warn_all(loaded: &Loaded) {
    for w in loaded.warnings_at(loaded.local_date(now())) {
        tracing::warn!("{w}");
    }
}

fn cutoff_of(arg: &Option<String>, configured: Option<u32>) -> Result<Option<u32>> {
    match arg.as_deref().map(str::trim) {
        None => Ok(configured),
        Some("none") => Ok(None),
        Some(t) => crate::calendar::hours::parse_time_of_day(t)
            .map(Some)
            .map_err(|e| anyhow!("--cutoff: {e}")),
    }
}

fn deadline(config: &Option<PathBuf>, args: DeadlineArgs) -> Result<ExitCode> {
    let mut loaded = load(config)?;
    let cal = build_calendar(&mut loaded, &args.overrides)?;
    let configured = loaded.policy.rules_for(None).receipt_cutoff;
    let cutoff = cutoff_of(&args.cutoff, configured)?;
    if let Some(input) = &args.input {
        return batch(&cal, cutoff, input, args.output.as_deref());
    }
    let received_text = args.received.as_deref().unwrap_or_default();
    let received = parse_instant(received_text, &cal)
        .map_err(|e| anyhow!("--received: {e}"))?
        .ok_or_else(|| anyhow!("--received: empty"))?;
    let duration: Duration = args
        .duration
        .as_deref()
        .unwrap_or_default()
        .parse()
        .map_err(|e| anyhow!("--duration: {e}"))?;
    let t = explain_deadline(&cal, received, &duration, cutoff, args.lang)?;
    let mut out = std::io::stdout().lock();
    match args.format {
        OutputFormat::Json => {
            let v = serde_json::json!({
                "received": rfc3339(received, &cal),
                "duration": duration.to_string(),
                "start": rfc3339(t.start, &cal),
                "due": t.due.map(|d| rfc3339(d, &cal)),
                "calendar_version": cal.version().to_string(),
                "calendar_estimated": t.calendar_estimated,
                "lang": args.lang,
                "trace": t.trace,
            });
            writeln!(out, "{v}")?;
        }
        OutputFormat::Text => {
            writeln!(out, "start:    {}", rfc3339(t.start, &cal))?;
            match t.due {
                Some(d) => writeln!(out, "due:      {}", rfc3339(d, &cal))?,
                None => writeln!(out, "due:      none")?,
            }
            if t.calendar_estimated {
                writeln!(out, "calendar: {} (estimated)", cal.version())?;
            } else {
                writeln!(out, "calendar: {}", cal.version())?;
            }
            for line in &t.trace {
                writeln!(out, "  - {line}")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Splits one CSV line into three fields; quoted fields go through the csv reader.
fn split3(line: &str) -> Option<(String, String, String)> {
    if !line.contains('"') {
        let mut it = line.split(',');
        let (a, b, c) = (it.next()?, it.next()?, it.next()?);
        if it.next().is_some() {
            return None;
        }
        return Some((a.trim().into(), b.trim().into(), c.trim().into()));
    }
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .trim(csv::Trim::All)
        .from_reader(line.as_bytes());
    let rec = r.records().next()?.ok()?;
    if rec.len() != 3 {
        return None;
    }
    Some((rec[0].into(), rec[1].into(), rec[2].into()))
}

fn csv_field(out: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// Batch mode: every row is computed; bad rows are reported on stderr with their line
/// number and do not stop the batch.
fn batch(
    cal: &Calendar,
    cutoff: Option<u32>,
    input: &Path,
    output: Option<&Path>,
) -> Result<ExitCode> {
    let name = input.display().to_string();
    let text = if input == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).context("stdin")?;
        s
    } else {
        std::fs::read_to_string(input).with_context(|| format!("{name}: cannot read"))?
    };
    let mut durations: HashMap<&str, Result<Duration, String>> = HashMap::new();
    let mut out = String::with_capacity(text.len() + text.len() / 2);
    out.push_str("id,start,due\n");
    let mut errors = std::io::stderr().lock();
    let mut failed = 0usize;
    let mut done = 0usize;
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let Some((id, received, duration)) = split3(line) else {
            writeln!(
                errors,
                "{name}:{lineno}: expected 3 fields `id,received_at,duration`"
            )?;
            failed += 1;
            continue;
        };
        if lineno == 1 && received.eq_ignore_ascii_case("received_at") {
            continue;
        }
        let received = match parse_instant(&received, cal) {
            Ok(Some(t)) => t,
            Ok(None) => {
                writeln!(errors, "{name}:{lineno}: received_at: empty")?;
                failed += 1;
                continue;
            }
            Err(e) => {
                writeln!(errors, "{name}:{lineno}: received_at: {e}")?;
                failed += 1;
                continue;
            }
        };
        let dkey = line.rsplit(',').next().unwrap_or("");
        let d = durations
            .entry(dkey)
            .or_insert_with(|| duration.parse::<Duration>().map_err(|e| e.to_string()));
        let d = match d {
            Ok(d) => *d,
            Err(e) => {
                writeln!(errors, "{name}:{lineno}: duration: {e}")?;
                failed += 1;
                continue;
            }
        };
        let computed = cal
            .snap(received, cutoff)
            .and_then(|s| cal.add(s, &d).map(|due| (s, due)));
        match computed {
            Ok((start, due)) => {
                csv_field(&mut out, &id);
                out.push(',');
                push_rfc3339(&mut out, start, cal);
                out.push(',');
                if let Some(due) = due {
                    push_rfc3339(&mut out, due, cal);
                }
                out.push('\n');
                done += 1;
            }
            Err(e) => {
                writeln!(errors, "{name}:{lineno}: {e}")?;
                failed += 1;
            }
        }
    }
    match output {
        Some(p) => std::fs::write(p, out.as_bytes())
            .with_context(|| format!("{}: cannot write", p.display()))?,
        None => std::io::stdout().lock().write_all(out.as_bytes())?,
    }
    if failed > 0 {
        writeln!(
            errors,
            "{name}: {done} row(s) computed, {failed} failed (calendar {})",
            cal.version()
        )?;
        return Ok(ExitCode::from(1));
    }
    tracing::info!(rows = done, calendar = %cal.version(), "{name}: all rows computed");
    Ok(ExitCode::SUCCESS)
}

fn calendar_show(
    config: &Option<PathBuf>,
    year: i32,
    format: TableFormat,
    o: &CalendarOverrides,
) -> Result<()> {
    if !(FIRST_YEAR..=LAST_YEAR).contains(&year) {
        bail!("year {year} is outside the calendar's range ({FIRST_YEAR}–{LAST_YEAR})");
    }
    let mut loaded = load(config)?;
    let cal = build_calendar(&mut loaded, o)?;
    warn_all(&loaded);
    let status = if cal.year_is_official(year) {
        "official"
    } else {
        "estimated"
    };
    let workdays = cal.workdays_in_year(year).unwrap_or(0);
    let mut out = std::io::stdout().lock();
    let kind = |k: RowKind| match k {
        RowKind::Holiday => "holiday",
        RowKind::Workday => "workday",
    };
    match format {
        TableFormat::Csv => {
            writeln!(out, "date,kind,name,origin")?;
            for e in cal.entries_in_year(year) {
                let mut line = format!("{},{},", e.date, kind(e.kind));
                csv_field(&mut line, &e.name);
                writeln!(out, "{line},{}", e.origin.as_str())?;
            }
            writeln!(out, "# {workdays} workdays in {year} ({status})")?;
        }
        TableFormat::Table => {
            writeln!(
                out,
                "Calendar {} — {year} ({status}), {}",
                cal.version(),
                cal.zone().name()
            )?;
            writeln!(
                out,
                "{:<10}  {:<3}  {:<7}  {:<9}  name",
                "date", "day", "kind", "origin"
            )?;
            for e in cal.entries_in_year(year) {
                let mut name = e.name.clone();
                if e.unconfirmed {
                    name += " [unconfirmed]";
                }
                if e.operator {
                    name += " [operator]";
                }
                writeln!(
                    out,
                    "{:<10}  {:<3}  {:<7}  {:<9}  {name}",
                    e.date.to_string(),
                    e.date.format("%a").to_string(),
                    kind(e.kind),
                    e.origin.as_str(),
                )?;
            }
            writeln!(out, "{workdays} workdays in {year}")?;
        }
    }
    Ok(())
}

async fn notify_requeue(config: &Option<PathBuf>) -> Result<()> {
    let loaded = load(config)?;
    let store = open_migrated_store(&loaded).await?;
    let n = store.outbox_requeue_dead(now()).await?;
    println!("{n} dead-lettered message(s) queued again");
    Ok(())
}

/// `notify preview`: the e-mails that would go out now, rendered exactly as the
/// dispatcher renders them, printed or written as `.eml` files; nothing is queued.
async fn notify_preview(
    config: &Option<PathBuf>,
    what: &PreviewKind,
    eml: Option<&Path>,
) -> Result<ExitCode> {
    use crate::store::OutboxRow;
    let loaded = load(config)?;
    let cfg = &loaded.config.alerts;
    let dir = cfg.templates_dir.as_ref().map(|d| loaded.dir.join(d));
    let templates = crate::notify::templates::Templates::load(dir.as_deref())?;
    let store = crate::store::open_read_only(&loaded.config.store.url)
        .await
        .with_context(|| {
            format!(
                "opening the store {} read-only",
                crate::store::redact_url(&loaded.config.store.url)
            )
        })?;
    let links = crate::desk::existing_secret(&store, &loaded.config.http.desk_secret_env)
        .await
        .map(|s| crate::desk::DeskLinks::from_config(&loaded, s, None));
    let templates = templates.with_desk_links(links);
    // Nothing is ingested, so no applicant id is hashed: the salt is not needed (and a
    // read-only store could not keep a new one).
    let context =
        crate::state::Context::from_loaded(&loaded, std::sync::Arc::new(loaded.calendar()));
    let shared =
        crate::state::Shared::new(store, context, "preview (unused)".into()).with_clock(clock());
    let at = now();
    shared.load(at).await.context("loading open cases")?;
    let ctx = shared.context();
    let row = |rule: &str, to: &crate::alert::Recipient, item: String| OutboxRow {
        id: 0,
        message_id: format!("<preview@{}>", crate::alert::message::domain_of(&cfg.from)),
        channel: "email".into(),
        rule: rule.into(),
        source: rule.into(),
        case_id: String::new(),
        to_addr: to.email.clone(),
        to_name: to.name.clone(),
        cc: "[]".into(),
        lang: cfg.language.clone(),
        item,
        attempts: 0,
    };
    // One group of rows per person, in the order they first appear.
    let mut groups: Vec<Vec<OutboxRow>> = Vec::new();
    match what {
        PreviewKind::Digest { unit } => {
            let digests = crate::jobs::build_digests(&shared, cfg, at).await?;
            let Some(d) = digests.iter().find(|d| d.unit == *unit) else {
                eprintln!("unit `{unit}` has nothing to report now: no digest");
                return Ok(ExitCode::from(1));
            };
            for to in d.to.iter().chain(&d.cc) {
                groups.push(vec![row("digest", to, d.context.to_string())]);
            }
        }
        PreviewKind::Alert { case } => {
            let found: Vec<_> = shared.with_open(|entries| {
                entries
                    .filter(|e| e.case.case_id == *case)
                    .filter_map(|e| Some((e.case.clone(), e.eval.clone()?)))
                    .collect()
            });
            if found.is_empty() {
                eprintln!("no open case `{case}` with an evaluation: nothing would be sent");
                return Ok(ExitCode::from(1));
            }
            for (c, ev) in &found {
                for (to, item) in crate::jobs::case_alerts(c, ev, &ctx, cfg, at) {
                    let r = row(&item.rule, &to, serde_json::to_string(&item)?);
                    match groups
                        .iter_mut()
                        .find(|g| g[0].to_addr.eq_ignore_ascii_case(&to.email))
                    {
                        Some(g) => g.push(r),
                        None => groups.push(vec![r]),
                    }
                }
            }
            if groups.is_empty() {
                eprintln!("case `{case}` wants no immediate alert now");
                return Ok(ExitCode::from(1));
            }
        }
        PreviewKind::Weekly => {
            let Some(to) = crate::alert::provincial_office(&ctx.directory) else {
                bail!("no unit tagged provincial_office with a head e-mail: no weekly report");
            };
            let today = ctx.calendar.local(at).date();
            let context = crate::jobs::weekly_context(&shared, cfg, today).await?;
            groups.push(vec![row("weekly", &to, context.to_string())]);
        }
        PreviewKind::Monthly { period } => {
            let to = crate::alert::tagged_heads(&ctx.directory, &crate::jobs::MONTHLY_TAGS);
            if to.is_empty() {
                bail!("no unit tagged provincial_office or home_affairs with a head e-mail: no monthly report");
            }
            let today = ctx.calendar.local(at).date();
            let period = match period {
                Some(p) => crate::report::ReportPeriod::parse(p).map_err(|e| anyhow!(e))?,
                None => crate::report::ReportPeriod::previous_month(today),
            };
            let item =
                crate::jobs::monthly_item(shared.store.as_ref(), &ctx, cfg, &period, at).await?;
            for r in &to {
                groups.push(vec![row("monthly_report", r, item.clone())]);
            }
        }
    }
    let local = ctx.calendar.with_zone(at);
    let mut out = std::io::stdout().lock();
    for group in &groups {
        let email = crate::jobs::compose_email(&templates, cfg, group, local)?;
        match eml {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                let path = dir.join(format!("{}.eml", email.to.email));
                std::fs::write(&path, crate::notify::build(&email)?.formatted())
                    .with_context(|| format!("writing {}", path.display()))?;
                writeln!(out, "{}", path.display())?;
            }
            None => {
                writeln!(
                    out,
                    "To: {}\nSubject: {}\n\n{}\n",
                    email.to.email, email.rendered.subject, email.rendered.text
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn notify_test(config: &Option<PathBuf>, to: &str) -> Result<()> {
    use crate::notify::templates::{fixture, Templates};
    let loaded = load(config)?;
    let cfg = &loaded.config.alerts;
    let transport = crate::notify::transport(cfg)?
        .ok_or_else(|| anyhow::anyhow!("alerts.transport is `none`: nothing to test"))?;
    let dir = cfg.templates_dir.as_ref().map(|d| loaded.dir.join(d));
    let templates = Templates::load(dir.as_deref())?;
    let mut ctx = fixture(&cfg.language);
    ctx["recipient"] = serde_json::json!({"name": "", "email": to});
    let mut rendered = templates.render("alert", &cfg.language, &ctx)?;
    rendered.subject = format!("[slawatch thử] {}", rendered.subject);
    let at = now();
    let stamp = at.timestamp_nanos_opt().unwrap_or(0);
    let email = crate::notify::Email {
        message_id: format!(
            "<test-{stamp}@{}>",
            crate::alert::message::domain_of(&cfg.from)
        ),
        date: loaded.calendar().with_zone(at),
        items: 1,
        from: cfg.from.clone(),
        to: crate::alert::Recipient {
            name: String::new(),
            email: to.to_string(),
        },
        cc: Vec::new(),
        rendered,
        attachments: Vec::new(),
    };
    transport
        .send(&email)
        .await
        .with_context(|| format!("sending through {}", transport.name()))?;
    println!(
        "sent a test message to {to} through {} ({})",
        transport.name(),
        email.message_id
    );
    Ok(())
}

fn check_config(config: &Option<PathBuf>) -> Result<()> {
    let loaded = load(config)?;
    let cal = loaded.calendar();
    warn_all(&loaded);
    let source = loaded
        .path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "built-in defaults".into());
    let today = cal.local(now()).date();
    let until = cal.official_until();
    match until {
        Some(u) if (u - today).num_days() < 60 => tracing::warn!(
            official_until = %u,
            "the official calendar ends within 60 days: add next year's days off (README, \"Holidays each year\")"
        ),
        None => tracing::warn!("no official calendar year: every year is estimated"),
        _ => {}
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "ok: {source}")?;
    writeln!(
        out,
        "calendar {} ({}), official until {}, {} workdays in {}",
        cal.version(),
        cal.zone().name(),
        until.map(|u| u.to_string()).unwrap_or_else(|| "-".into()),
        cal.workdays_in_year(today.year()).unwrap_or(0),
        today.year(),
    )?;
    writeln!(out, "office hours: {}", describe_hours(&cal))?;
    writeln!(out, "procedures: {}", loaded.catalogue.len())?;
    writeln!(
        out,
        "sla rule versions: {}",
        1 + loaded.policy.versions.len()
    )?;
    // Every template is rendered against a fixture: a broken one fails here.
    let dir = loaded
        .config
        .alerts
        .templates_dir
        .as_ref()
        .map(|d| loaded.dir.join(d));
    let templates = crate::notify::templates::Templates::load(dir.as_deref())?;
    let errors = templates.check();
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("error: {e}");
        }
        anyhow::bail!("{} template(s) do not render", errors.len());
    }
    writeln!(
        out,
        "templates: {} rendered ({})",
        crate::notify::templates::NAMES.len() * crate::notify::templates::LANGS.len() * 3,
        dir.map(|d| d.display().to_string())
            .unwrap_or_else(|| "built in".into())
    )?;
    // What the daemon would refuse at start-up or that would break a mail.
    let config_text = loaded
        .path
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok());
    let config_name = loaded.path.as_ref().map(|p| p.display().to_string());
    let directory_path = loaded
        .config
        .directory
        .file
        .as_ref()
        .map(|f| loaded.dir.join(f));
    let directory_text = directory_path
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok());
    let directory_name = directory_path.as_ref().map(|p| p.display().to_string());
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let places = crate::config::check::Places {
        file: config_name.as_deref().zip(config_text.as_deref()),
        env: &env,
    };
    let findings = crate::config::check::check(
        &loaded,
        &places,
        directory_name.as_deref().zip(directory_text.as_deref()),
    );
    for f in findings.iter().filter(|f| !f.error) {
        eprintln!("warning: {f}");
    }
    let errors: Vec<_> = findings.iter().filter(|f| f.error).collect();
    if !errors.is_empty() {
        for f in &errors {
            eprintln!("error: {f}");
        }
        anyhow::bail!(
            "{} problem(s) the daemon would refuse or that would break a mail",
            errors.len()
        );
    }
    for line in crate::config::check::summary(&loaded) {
        writeln!(out, "{line}")?;
    }
    // What a reload would move, from the daemon's stored evaluations (read-only).
    let summary = runtime()?.block_on(async {
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            crate::calendar_diff::reload_summary(&loaded, &cal),
        )
        .await
    });
    match summary {
        Ok(Ok(s)) => writeln!(out, "{}", crate::calendar_diff::reload_line(&s, &cal))?,
        Ok(Err(e)) => writeln!(out, "calendar reload: the store was not read ({e})")?,
        Err(_) => writeln!(
            out,
            "calendar reload: the store was not read (no answer within 10 s)"
        )?,
    }
    Ok(())
}

async fn calendar_diff(
    config: &Option<PathBuf>,
    new_file: &Path,
    format: crate::calendar_diff::DiffFormat,
) -> Result<ExitCode> {
    use crate::calendar_diff::{self as cd, DiffFormat};
    let loaded = load(config)?;
    let cal = loaded.calendar();
    let report = cd::diff(&loaded, new_file, now()).await?;
    tracing::info!(
        cases = report.diff.total.open + report.diff.total.ended,
        read_seconds = report.read_seconds,
        compare_seconds = report.compare_seconds,
        "calendar diff"
    );
    let out = match format {
        DiffFormat::Text => cd::text(&report, &loaded, &cal),
        DiffFormat::Json => format!("{}\n", cd::json(&report, &loaded, &cal)),
        DiffFormat::Csv => cd::csv(&report, &cal)?,
    };
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(if report.diff.changed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn describe_hours(cal: &Calendar) -> String {
    let h = cal.hours();
    let mut s = h.default.to_string();
    for season in &h.seasons {
        s += &format!("; {} {}={}", season.name, season.range, season.sessions);
    }
    s
}

async fn open_store(loaded: &Loaded) -> Result<std::sync::Arc<dyn crate::store::Store>> {
    let url = &loaded.config.store.url;
    let store = crate::store::open(url)
        .await
        .with_context(|| format!("opening the store {}", crate::store::redact_url(url)))?;
    Ok(store)
}

/// Opens the store for a command that reads it: it must already be migrated.
async fn open_migrated_store(loaded: &Loaded) -> Result<std::sync::Arc<dyn crate::store::Store>> {
    let store = open_store(loaded).await?;
    store
        .ready()
        .await
        .context("the store is not migrated: run `slawatch migrate`")?;
    Ok(store)
}

async fn migrate(config: &Option<PathBuf>) -> Result<()> {
    let loaded = load(config)?;
    let store = open_store(&loaded).await?;
    store.migrate().await?;
    store.ready().await?;
    println!("migrated: {} store is up to date", store.backend());
    store.close().await;
    Ok(())
}

/// `units import` / `procedures import`.
fn import(config: &Option<PathBuf>, a: &ImportArgs, units: bool) -> Result<ExitCode> {
    let what = if units { "units" } else { "procedures" };
    let text = match if units {
        crate::import::units(&a.file)
    } else {
        crate::import::procedures(&a.file)
    } {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("error: {} faults; nothing written", e.0.len());
            return Ok(ExitCode::from(2));
        }
    };
    let output = match &a.output {
        Some(p) => p.clone(),
        None => {
            let loaded = load(config)
                .context("reading the configuration for the output file (or give --output FILE)")?;
            let named = if units {
                loaded.config.directory.file.clone()
            } else {
                loaded.config.catalogue.file.clone()
            };
            let p = named.ok_or_else(|| {
                anyhow!("the configuration names no {what} file: give --output FILE")
            })?;
            if p.is_absolute() {
                p
            } else {
                loaded.dir.join(p)
            }
        }
    };
    let n = text
        .lines()
        .filter(|l| *l == "[[unit]]" || *l == "[[procedure]]")
        .count();
    if output == Path::new("-") {
        print!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    if output.exists() && !a.force {
        bail!(
            "{} exists: add --force to replace it (a running daemon reloads it), or --output another file",
            output.display()
        );
    }
    let tmp = output.with_extension("toml.importing");
    std::fs::write(&tmp, &text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &output).with_context(|| format!("writing {}", output.display()))?;
    eprintln!("{}: {n} {what} written", output.display());
    Ok(ExitCode::SUCCESS)
}

async fn backfill(config: &Option<PathBuf>, source: &str, since: &str) -> Result<ExitCode> {
    let loaded = load(config)?;
    let sc = loaded
        .config
        .source
        .iter()
        .find(|s| s.name == source)
        .ok_or_else(|| anyhow!("no source `{source}` in the configuration"))?
        .clone();
    if !matches!(sc.kind.as_str(), "http" | "sql") {
        bail!(
            "source `{source}` is of type `{}`: backfill re-reads sources asked by change time (http, sql)",
            sc.kind
        );
    }
    let store = open_migrated_store(&loaded).await?;
    let shared = shared_for_cli(&loaded, store.clone()).await?;
    let cal = shared.context().calendar.clone();
    let since_at = crate::source::SourceConfig {
        initial_cursor: Some(since.to_string()),
        ..sc.clone()
    }
    .initial_since(&cal, now())
    .map_err(|e| anyhow!("--since: {e}"))?;
    let mapping = sc
        .mapping()
        .map_err(|e| anyhow!("source `{source}`: {e}"))?;
    let built = crate::source::build(&sc, &cal)
        .map_err(|e| anyhow!("source `{source}`: {e}"))?
        .expect("http and sql sources poll");
    let rt = crate::daemon::SourceRuntime {
        config: sc,
        mapping,
        source: built,
    };
    let timeout = std::time::Duration::from_secs(loaded.config.daemon.poll_timeout_seconds);
    let started = now();
    let outcome = crate::daemon::read_source(&shared, &rt, Some(since_at), false, timeout, started)
        .await
        .map_err(|e| anyhow!("source `{source}`: {e}"))?;
    let c = outcome.committed;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{source}: read since {}: {} records, {} inserted, {} updated, {} unchanged, {} quarantined",
        rfc3339(since_at, &cal),
        c.records,
        c.stats.inserted,
        c.stats.updated,
        c.stats.unchanged,
        c.stats.quarantined
    )?;
    if c.stats.inserted + c.stats.updated > 0 {
        writeln!(
            out,
            "running daemons on this store take the cases read here within seconds (the change feed)"
        )?;
    }
    store.close().await;
    match outcome.error {
        None => Ok(ExitCode::SUCCESS),
        Some(e) => {
            eprintln!("error: source `{source}`: {e} (what was read before it is stored)");
            Ok(ExitCode::from(1))
        }
    }
}

/// The daemon's shared state for a CLI command that ingests, with the store's
/// applicant salt (so hashes match the daemon's).
async fn shared_for_cli(
    loaded: &Loaded,
    store: std::sync::Arc<dyn crate::store::Store>,
) -> Result<crate::state::Shared> {
    let salt = crate::daemon::applicant_salt(&store).await?;
    let context =
        crate::state::Context::from_loaded(loaded, std::sync::Arc::new(loaded.calendar()));
    Ok(crate::state::Shared::new(store, context, salt).with_clock(clock()))
}

async fn explain(
    config: &Option<PathBuf>,
    case_id: &str,
    lang: Lang,
    format: OutputFormat,
) -> Result<ExitCode> {
    let loaded = load(config)?;
    let store = open_migrated_store(&loaded).await?;
    let found = store.find_case(case_id).await?;
    if found.is_empty() {
        eprintln!("error: no case `{case_id}` in the store");
        return Ok(ExitCode::from(1));
    }
    let cal = loaded.calendar();
    let now = now();
    let mut out = std::io::stdout().lock();
    let mut all = Vec::new();
    for (case, stored) in found {
        let proc = loaded.catalogue.for_case(&case);
        let (e, trace) =
            crate::sla::explain::explain_case(&case, proc, &cal, &loaded.policy, now, lang)?;
        let versions = store.versions(&case.source, &case.case_id).await?;
        let at = |t: chrono::DateTime<Utc>| rfc3339(t, &cal);
        match format {
            OutputFormat::Json => all.push(serde_json::json!({
                "source": case.source,
                "case_id": case.case_id,
                "kind": case.kind,
                "unit": case.unit_code,
                "unit_name": case.unit_name,
                "status": case.status,
                "state": e.state,
                "outcome": e.outcome,
                "flags": e.flags,
                "stuck": e.stuck,
                "start": e.start.map(at),
                "due": e.due.map(at),
                "legal_due": e.legal_due.map(at),
                "calendar_version": cal.version().to_string(),
                "calendar_estimated": e.calendar_estimated,
                "trace": trace,
                "stored_evaluation": stored.map(|s| serde_json::json!({
                    "state": s.state, "flags": s.flags.joined(), "evaluated_at": at(s.evaluated_at), "calendar_version": s.calendar_version,
                })),
                "history": {
                    "statuses": case.status_history.iter().map(|h| serde_json::json!({"at": at(h.at), "status": h.status, "approximate": h.approximate})).collect::<Vec<_>>(),
                    "dues": case.due_history.iter().map(|d| serde_json::json!({"at": at(d.at), "from": d.from.map(at), "to": d.to.map(at), "cause": d.cause})).collect::<Vec<_>>(),
                    "supplements": case.supplements.iter().map(|s| serde_json::json!({"requested_at": at(s.requested_at), "resumed_at": s.resumed_at.map(at)})).collect::<Vec<_>>(),
                    "steps": case.steps.iter().map(|s| serde_json::json!({"title": s.title, "department": s.department, "unit": s.unit_code, "started_at": s.started_at.map(at), "acted_at": s.acted_at.map(at), "step_due_at": s.step_due_at.map(at)})).collect::<Vec<_>>(),
                    "versions": versions.len(),
                },
            })),
            OutputFormat::Text => {
                writeln!(out, "{} / {} ({}, {})", case.source, case.case_id, case.kind, case.unit_code.as_deref().or(case.unit_name.as_deref()).unwrap_or("?"))?;
                for line in &trace {
                    writeln!(out, "  - {line}")?;
                }
                writeln!(out, "  history:")?;
                for h in &case.status_history {
                    let approx = if h.approximate { " (as observed)" } else { "" };
                    writeln!(out, "    {}  status {} {}{approx}", at(h.at), h.status, crate::sla::model::status::name_vi(h.status))?;
                }
                for d in &case.due_history {
                    writeln!(out, "    {}  due {} → {} ({:?})", at(d.at), d.from.map(at).unwrap_or_default(), d.to.map(at).unwrap_or_default(), d.cause)?;
                }
                for s in &case.steps {
                    writeln!(
                        out,
                        "    step «{}» {} started {} acted {} due {}",
                        s.title.as_deref().unwrap_or("?"),
                        s.unit_code.as_deref().or(s.department.as_deref()).unwrap_or(""),
                        s.started_at.map(at).unwrap_or_else(|| "-".into()),
                        s.acted_at.map(at).unwrap_or_else(|| "-".into()),
                        s.step_due_at.map(at).unwrap_or_else(|| "-".into()),
                    )?;
                }
                writeln!(out, "    {} raw version(s) kept", versions.len())?;
            }
        }
    }
    if format == OutputFormat::Json {
        writeln!(out, "{}", serde_json::Value::Array(all))?;
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

fn shown_body(body: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) => {
            serde_json::to_string_pretty(&crate::source::normalize::redact(&v)).unwrap_or_default()
        }
        Err(_) => format!(
            "(not JSON: {} bytes; letters and long numbers masked)\n{}",
            body.len(),
            crate::source::normalize::redact_text(body)
        ),
    }
}

async fn quarantine(config: &Option<PathBuf>, cmd: QuarantineCommand) -> Result<ExitCode> {
    let loaded = load(config)?;
    let store = open_migrated_store(&loaded).await?;
    let mut out = std::io::stdout().lock();
    let code = match cmd {
        QuarantineCommand::List { source, all, limit } => {
            let rows = store.quarantine_list(source.as_deref(), all, limit).await?;
            writeln!(
                out,
                "{:>6}  {:<12}  {:<28}  {:<20}  reason",
                "id", "source", "case", "received"
            )?;
            for r in &rows {
                writeln!(
                    out,
                    "{:>6}  {:<12}  {:<28}  {:<20}  {}{}",
                    r.id,
                    r.source,
                    r.case_id.as_deref().unwrap_or("-"),
                    r.received_at.format("%Y-%m-%d %H:%M:%S"),
                    r.reason,
                    if r.resolved { " [resolved]" } else { "" }
                )?;
            }
            writeln!(out, "{} record(s)", rows.len())?;
            ExitCode::SUCCESS
        }
        QuarantineCommand::Show { id } => match store.quarantine_get(id).await? {
            Some(r) => {
                writeln!(out, "id:       {}", r.id)?;
                writeln!(out, "source:   {}", r.source)?;
                writeln!(out, "case:     {}", r.case_id.as_deref().unwrap_or("-"))?;
                writeln!(out, "received: {}", r.received_at.to_rfc3339())?;
                writeln!(out, "reason:   {}", r.reason)?;
                writeln!(
                    out,
                    "record (only fields known to carry no identity are shown; the rest is ***):\n{}",
                    shown_body(&r.body)
                )?;
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("error: no quarantined record {id}");
                ExitCode::from(1)
            }
        },
        QuarantineCommand::Refetch { ids, source } => {
            let shared = shared_for_cli(&loaded, store.clone()).await?;
            let cal = shared.context().calendar.clone();
            let mut total = crate::daemon::Refetched::default();
            let mut any = false;
            for sc in loaded
                .config
                .source
                .iter()
                .filter(|s| source.as_deref().is_none_or(|n| n == s.name))
            {
                if sc.record_url.is_none() {
                    if source.is_some() {
                        bail!(
                            "source `{}` has no record_url: it cannot serve one record by id",
                            sc.name
                        );
                    }
                    continue;
                }
                any = true;
                let rt = crate::daemon::SourceRuntime {
                    config: sc.clone(),
                    mapping: sc
                        .mapping()
                        .map_err(|e| anyhow!("source `{}`: {e}", sc.name))?,
                    source: crate::source::build(sc, &cal)
                        .map_err(|e| anyhow!("source `{}`: {e}", sc.name))?
                        .expect("an http source polls"),
                };
                let r = crate::daemon::refetch_quarantined(
                    &shared,
                    &rt,
                    &ids,
                    None,
                    chrono::Duration::zero(),
                    usize::MAX,
                )
                .await
                .map_err(|e| anyhow!("source `{}`: {e}", sc.name))?;
                writeln!(
                    out,
                    "{}: {} fetched, {} resolved, {} failed",
                    sc.name, r.fetched, r.resolved, r.failed
                )?;
                total.fetched += r.fetched;
                total.resolved += r.resolved;
                total.failed += r.failed;
            }
            if !any {
                bail!("no source has a record_url: none can serve one record by id");
            }
            if total.failed > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        QuarantineCommand::Retry { ids, source } => {
            let rows = if ids.is_empty() {
                store
                    .quarantine_list(source.as_deref(), false, i64::MAX)
                    .await?
            } else {
                let mut v = Vec::new();
                for id in ids {
                    match store.quarantine_get(id).await? {
                        Some(r) => v.push(r),
                        None => eprintln!("warning: no quarantined record {id}"),
                    }
                }
                v
            };
            let shared = shared_for_cli(&loaded, store.clone()).await?;
            let (mut fixed, mut still) = (0, 0);
            for r in rows.iter().filter(|r| !r.resolved) {
                let Some(sc) = loaded.config.source.iter().find(|s| s.name == r.source) else {
                    eprintln!("{}: source `{}` is no longer configured", r.id, r.source);
                    still += 1;
                    continue;
                };
                let mapping = sc
                    .mapping()
                    .map_err(|e| anyhow!("source `{}`: {e}", sc.name))?;
                let Ok(value) = serde_json::from_str::<serde_json::Value>(&r.body) else {
                    writeln!(out, "{}: still not JSON", r.id)?;
                    store.quarantine_mark_retried(&[r.id], now()).await?;
                    still += 1;
                    continue;
                };
                let cal = shared.context().calendar.clone();
                let salt = store.meta_get("applicant_salt").await?.unwrap_or_default();
                match crate::source::normalize::normalize(&value, &mapping, &r.source, &cal, &salt)
                {
                    Ok(_) => {
                        let rec =
                            crate::source::RawRecord::json(value, format!("quarantine #{}", r.id));
                        let delivery = crate::ingest::Delivery {
                            records: vec![rec],
                            resolved: vec![r.id],
                            ..Default::default()
                        };
                        crate::ingest::ingest(&shared, &r.source, &mapping, delivery, now())
                            .await?;
                        writeln!(out, "{}: ingested", r.id)?;
                        fixed += 1;
                    }
                    Err(e) => {
                        store.quarantine_mark_retried(&[r.id], now()).await?;
                        writeln!(out, "{}: still rejected: {}", r.id, e.reason)?;
                        still += 1;
                    }
                }
            }
            writeln!(out, "{fixed} ingested, {still} still quarantined")?;
            if still > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
    };
    store.close().await;
    Ok(code)
}

async fn units_unmatched(config: &Option<PathBuf>) -> Result<()> {
    let loaded = load(config)?;
    let store = open_migrated_store(&loaded).await?;
    let rows = store.unmatched_units().await?;
    let mut out = std::io::stdout().lock();
    for (name, n) in &rows {
        writeln!(out, "{n:>8}  {name}")?;
    }
    writeln!(
        out,
        "{} unit name(s) match no directory entry; add them as `aliases` in the unit directory",
        rows.len()
    )?;
    store.close().await;
    Ok(())
}
