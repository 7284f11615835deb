//! The `slawatch` binary: parse the command line, set up logging, hand over to the
//! library.

use clap::Parser;
use slawatch::cli::{run, Cli, LogFormat};
use std::process::ExitCode;

/// glibc's allocator spent a third of the ingest path in malloc and free, and
/// mimalloc's eager purging had the kernel zero pages again and again; jemalloc
/// measured fastest (README, load harness).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLAWATCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    run(cli)
}
