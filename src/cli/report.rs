//! `slawatch report tthc`: Biểu số 06/VPCP/KSTT with indicator 2.1, the late cases and
//! the ranking, from the store (read-only).

use crate::jobs::report::TthcRequest;
use crate::report::render;
use crate::report::tthc::{By, Options};
use crate::report::ReportPeriod;
use crate::sla::model::Kind;
use anyhow::{anyhow, bail, Context as _, Result};
use chrono::NaiveDate;
use clap::{Args, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// Biểu số 06/VPCP/KSTT (Thông tư 01/2020/TT-VPCP): dossiers received, finished
    /// (early, on time, late) and in progress (in time, overdue) per unit, with
    /// Decision 766 indicator 2.1, the late cases and the units ranked.
    Tthc(TthcArgs),
}

#[derive(Args, Debug)]
pub struct TthcArgs {
    /// The period: 2026-11 (a month), 2026-Q4, 2026-H2, 2026-9M (the first nine
    /// months), 2026 (a year). A period still running is reported to this instant.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub period: Option<String>,
    /// First day (YYYY-MM-DD or dd/MM/yyyy), with --to.
    #[arg(long, requires = "to")]
    pub from: Option<String>,
    /// Last day, included.
    #[arg(long, requires = "from")]
    pub to: Option<String>,
    /// What the rows are.
    #[arg(long, value_enum, default_value_t = ByArg::Unit)]
    pub by: ByArg,
    /// Report one unit and its subtree (its code in the directory).
    #[arg(long)]
    pub unit: Option<String>,
    #[arg(long, value_enum, default_value_t = KindArg::Dossier)]
    pub kind: KindArg,
    /// csv, xlsx, json or html; by default from --output's extension, else csv.
    #[arg(long, value_enum)]
    pub format: Option<ReportFormat>,
    /// Write to this file instead of standard output (required for xlsx).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Count as some vendor reports do (comma-separated, off by default):
    /// dates-only, withdrawn-on-time, paused-in-time (see the README).
    #[arg(long, value_name = "NAMES")]
    pub compat: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ByArg {
    Unit,
    Field,
    Procedure,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    Dossier,
    Task,
    Feedback,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Csv,
    Xlsx,
    Json,
    Html,
}

impl ReportFormat {
    pub fn parse(s: &str) -> Option<ReportFormat> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Some(ReportFormat::Csv),
            "xlsx" => Some(ReportFormat::Xlsx),
            "json" => Some(ReportFormat::Json),
            "html" | "htm" => Some(ReportFormat::Html),
            _ => None,
        }
    }
}

/// A date as provinces write it, or ISO.
pub fn parse_day(s: &str) -> Result<NaiveDate> {
    let s = s.trim();
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(s, "%d/%m/%Y"))
        .map_err(|_| anyhow!("date {s:?}: expected YYYY-MM-DD or dd/MM/yyyy"))
}

impl TthcArgs {
    fn request(&self) -> Result<TthcRequest> {
        let period = match (&self.period, &self.from, &self.to) {
            (Some(p), _, _) => ReportPeriod::parse(p).map_err(|e| anyhow!(e))?,
            (None, Some(f), Some(t)) => {
                ReportPeriod::between(parse_day(f)?, parse_day(t)?).map_err(|e| anyhow!(e))?
            }
            _ => bail!("give --period (e.g. 2026-11) or --from and --to"),
        };
        Ok(TthcRequest {
            period,
            by: match self.by {
                ByArg::Unit => By::Unit,
                ByArg::Field => By::Field,
                ByArg::Procedure => By::Procedure,
            },
            unit: self.unit.clone(),
            kind: match self.kind {
                KindArg::Dossier => Kind::Dossier,
                KindArg::Task => Kind::Task,
                KindArg::Feedback => Kind::Feedback,
            },
            options: match &self.compat {
                Some(list) => Options::parse(list).map_err(|e| anyhow!(e))?,
                None => Options::default(),
            },
        })
    }

    fn format(&self) -> ReportFormat {
        self.format.unwrap_or_else(|| {
            self.output
                .as_ref()
                .and_then(|p| p.extension())
                .and_then(|e| e.to_str())
                .and_then(ReportFormat::parse)
                .unwrap_or(ReportFormat::Csv)
        })
    }
}

/// Renders a report in a format.
pub fn render_as(
    r: &crate::report::tthc::Report,
    cal: &crate::calendar::Calendar,
    format: ReportFormat,
) -> Result<Vec<u8>> {
    Ok(match format {
        ReportFormat::Csv => render::csv(r, cal).map_err(|e| anyhow!(e))?,
        ReportFormat::Xlsx => render::xlsx(r, cal).map_err(|e| anyhow!(e))?,
        ReportFormat::Json => {
            let mut v = serde_json::to_vec_pretty(&render::json(r, cal))?;
            v.push(b'\n');
            v
        }
        ReportFormat::Html => render::html(r, cal).map_err(|e| anyhow!(e))?.into_bytes(),
    })
}

pub async fn tthc(config: &Option<PathBuf>, args: TthcArgs) -> Result<ExitCode> {
    let req = args.request()?;
    let format = args.format();
    if format == ReportFormat::Xlsx && args.output.is_none() {
        bail!("an XLSX report is a file: give --output FILE.xlsx");
    }
    let loaded = super::load(config)?;
    let store = super::open_migrated_store(&loaded).await?;
    let ctx = crate::state::Context::from_loaded(&loaded, std::sync::Arc::new(loaded.calendar()));
    let report = crate::jobs::report::tthc(store.as_ref(), &ctx, &req, super::now()).await?;
    store.close().await;
    let bytes = render_as(&report, &ctx.calendar, format)?;
    match &args.output {
        Some(p) => std::fs::write(p, &bytes).with_context(|| format!("writing {}", p.display()))?,
        None => std::io::stdout().lock().write_all(&bytes)?,
    }
    Ok(ExitCode::SUCCESS)
}
