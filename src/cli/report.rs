//! `slawatch report tthc`: Biểu số 06/VPCP/KSTT with indicator 2.1, the late cases and
//! the ranking, from the store (read-only).

use crate::jobs::report::TthcRequest;
use crate::report::render::{render_as, ReportFormat};
use anyhow::{anyhow, bail, Context as _, Result};
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
    pub format: Option<FormatArg>,
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
pub enum FormatArg {
    Csv,
    Xlsx,
    Json,
    Html,
}

impl FormatArg {
    fn format(self) -> ReportFormat {
        match self {
            FormatArg::Csv => ReportFormat::Csv,
            FormatArg::Xlsx => ReportFormat::Xlsx,
            FormatArg::Json => ReportFormat::Json,
            FormatArg::Html => ReportFormat::Html,
        }
    }
}

impl TthcArgs {
    fn request(&self) -> Result<TthcRequest> {
        let by = match self.by {
            ByArg::Unit => "unit",
            ByArg::Field => "field",
            ByArg::Procedure => "procedure",
        };
        let kind = match self.kind {
            KindArg::Dossier => "dossier",
            KindArg::Task => "task",
            KindArg::Feedback => "feedback",
        };
        TthcRequest::from_words(
            self.period.as_deref(),
            self.from.as_deref(),
            self.to.as_deref(),
            Some(by),
            self.unit.as_deref(),
            Some(kind),
            self.compat.as_deref(),
        )
        .map_err(|e| anyhow!(e))
    }

    fn format(&self) -> ReportFormat {
        self.format.map(FormatArg::format).unwrap_or_else(|| {
            self.output
                .as_ref()
                .and_then(|p| p.extension())
                .and_then(|e| e.to_str())
                .and_then(ReportFormat::parse)
                .unwrap_or(ReportFormat::Csv)
        })
    }
}

pub async fn tthc(config: &Option<PathBuf>, args: TthcArgs) -> Result<ExitCode> {
    let req = args.request()?;
    let format = args.format();
    if format == ReportFormat::Xlsx && args.output.is_none() {
        bail!("an XLSX report is a file: give --output FILE.xlsx");
    }
    let loaded = super::load(config)?;
    let url = &loaded.config.store.url;
    let store = crate::store::open_read_only(url)
        .await
        .with_context(|| format!("opening the store {}", crate::store::redact_url(url)))?;
    let ctx = crate::state::Context::from_loaded(&loaded, std::sync::Arc::new(loaded.calendar()));
    let report = crate::jobs::report::tthc(store.as_ref(), &ctx, &req, super::now()).await?;
    store.close().await;
    let bytes = render_as(&report, &ctx.calendar, format).map_err(|e| anyhow!(e))?;
    match &args.output {
        Some(p) => std::fs::write(p, &bytes).with_context(|| format!("writing {}", p.display()))?,
        None => std::io::stdout().lock().write_all(&bytes)?,
    }
    Ok(ExitCode::SUCCESS)
}
