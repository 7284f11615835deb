//! The daemon (`slawatch run`), as wiring: opens the store, builds the shared state
//! ([`crate::state`]), registers the background jobs ([`crate::jobs`]), serves HTTP,
//! reloads on `SIGHUP` and shuts down on `SIGTERM`. Records enter through
//! [`crate::ingest`]; nothing here evaluates or sends anything itself.
//!
//! A poll is stored page by page: each page is one transaction, and memory and the
//! ingest counters follow a page only once it is committed. The cursor moves only as
//! far as what was committed, so the next poll reads on from there, and records read
//! twice change nothing. Each source is polled by its own job, never twice at once; a
//! slow or failing source delays nothing else and is retried with back-off.

use crate::calendar::Calendar;
use crate::clock::Clock;
use crate::config::{self, Loaded};
pub use crate::ingest::{
    apply, commit_pipelined, ingest, prepare, ChangeTimes, Committed, Delivery, Overlay, Prepared,
    PreparedPage,
};
use crate::scheduler::Scheduler;
use crate::source::normalize::Mapping;
use crate::source::{self, SourceConfig};
pub use crate::state::{Context, Entry, IngestStats, Shared, SourceHealth};
use crate::store;
use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub use crate::jobs::*;
pub use crate::store::{applicant_salt, redact_url};

/// Builds the reloadable part of the context from the configuration.
fn reload_context(loaded: &Loaded, calendar: Arc<Calendar>) -> Result<Context> {
    Ok(Context {
        calendar,
        policy: loaded.policy.clone(),
        catalogue: config::load_catalogue(&loaded.config, &loaded.dir)?,
        directory: config::load_directory(&loaded.config, &loaded.dir)?,
    })
}

/// The calendar as the configuration file now describes it (SIGHUP): the file is read
/// again, and a calendar it would refuse at start-up is refused here.
fn reload_calendar(loaded: &Loaded, now: DateTime<Utc>) -> Result<Arc<Calendar>> {
    let fresh = Loaded::load(loaded.path.as_deref())?;
    for w in fresh.warnings_at(fresh.local_date(now)) {
        tracing::warn!("{w}");
    }
    Ok(Arc::new(fresh.calendar()))
}

fn mtimes(files: &[PathBuf]) -> Vec<Option<std::time::SystemTime>> {
    files
        .iter()
        .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .collect()
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(loaded: Loaded, clock: Clock) -> Result<()> {
    let cfg = loaded.config.clone();
    for w in loaded.warnings_at(loaded.local_date(clock.now())) {
        tracing::warn!("{w}");
    }
    if let Some(d) = clock.describe() {
        tracing::warn!(now = %clock.now(), "{d}: this process does not run on the system time (tests only)");
    }
    let calendar = Arc::new(loaded.calendar());
    tracing::info!(calendar = %calendar.version(), official_until = ?calendar.official_until(), "calendar");
    let store = store::open(&cfg.store.url)
        .await
        .with_context(|| format!("opening the store {}", redact_url(&cfg.store.url)))?;
    store.migrate().await.context("applying migrations")?;
    let salt = applicant_salt(&store).await?;
    let context = Context::from_loaded(&loaded, calendar.clone());
    let shared = Arc::new(
        Shared::new(store.clone(), context, salt)
            .with_procedure_metrics(cfg.metrics.procedure_labels)
            .with_lease_span(chrono::Duration::seconds(cfg.daemon.lease_seconds as i64))
            .with_clock(clock),
    );
    let started = shared.now();
    shared.metrics.config_reload_ok.set(1);
    shared
        .metrics
        .config_reload_at
        .set(started.timestamp_millis() as f64 / 1000.0);
    let n = shared.load(started).await.context("loading open cases")?;
    let counts = store.counts().await?;
    tracing::info!(
        backend = store.backend(),
        open = n,
        cases = counts.cases,
        quarantined = counts.quarantined,
        ms = (shared.now() - started).num_milliseconds(),
        "store ready"
    );

    let mut runtimes = Vec::new();
    for sc in &cfg.source {
        let mapping = sc
            .mapping()
            .map_err(|e| anyhow::anyhow!("source `{}`: {e}", sc.name))?;
        crate::scheduler::validate(&sc.schedule)
            .map_err(|e| anyhow::anyhow!("source `{}`: schedule: {e}", sc.name))?;
        let built = source::build(sc, &calendar)
            .map_err(|e| anyhow::anyhow!("source `{}`: {e}", sc.name))?;
        shared.register_source(&sc.name, &sc.kind);
        if let Some(source) = built {
            runtimes.push(Arc::new(SourceRuntime {
                config: sc.clone(),
                mapping,
                source,
            }));
        }
    }
    let push_sources: Vec<(SourceConfig, Mapping)> = cfg
        .source
        .iter()
        .filter(|s| s.kind == "push")
        .map(|s| (s.clone(), s.mapping().expect("validated")))
        .collect();

    let backfilled = backfill_period_facts(&shared, shared.now())
        .await
        .context("recording the end of earlier finished cases")?;
    if backfilled > 0 {
        tracing::info!(
            cases = backfilled,
            "earlier finished cases given their end and on-time judgement"
        );
    }
    let cancel = CancellationToken::new();
    let leader = shared
        .contend_metrics(shared.now())
        .await
        .context("contending for the metrics lease")?;
    tracing::info!(
        holder = %shared.holder,
        metrics_leader = leader,
        lease_seconds = cfg.daemon.lease_seconds,
        "replica"
    );
    shared
        .refresh_metrics(shared.now())
        .await
        .context("first metrics")?;
    let metrics_task = tokio::spawn(metrics_loop(shared.clone(), cancel.clone()));
    let lease_task = tokio::spawn(lease_loop(shared.clone(), cancel.clone()));
    let follow_task = tokio::spawn(follow_loop(
        shared.clone(),
        std::time::Duration::from_millis(cfg.daemon.follow_interval_ms),
        cancel.clone(),
    ));
    let listener = tokio::net::TcpListener::bind(&cfg.http.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.http.listen))?;
    tracing::info!(listen = %listener.local_addr()?, "http listener");
    let api_token = std::env::var(&cfg.http.api_token_env)
        .ok()
        .filter(|t| !t.is_empty());
    let desk_secret = crate::desk::secret(&store, &cfg.http.desk_secret_env).await?;
    let links = crate::desk::DeskLinks::from_config(
        &loaded,
        desk_secret.clone(),
        listener.local_addr().ok(),
    );
    let (alerts, token) = (cfg.alerts.clone(), api_token.clone());
    let desk = crate::desk::routes(shared.clone(), Some(desk_secret), alerts, token);
    let body = cfg.http.max_body_bytes;
    let app = crate::http::router(shared.clone(), push_sources, body, api_token).merge(desk);
    let server_cancel = cancel.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { server_cancel.cancelled().await })
            .await
    });

    crate::scheduler::validate(&cfg.alerts.digest_schedule)
        .map_err(|e| anyhow::anyhow!("alerts.digest_schedule: {e}"))?;
    crate::scheduler::validate(&cfg.alerts.weekly_schedule)
        .map_err(|e| anyhow::anyhow!("alerts.weekly_schedule: {e}"))?;
    let env = Arc::new(JobEnv {
        shared: shared.clone(),
        alerts: Arc::new(cfg.alerts.clone()),
        dispatch_wanted: Arc::new(tokio::sync::Notify::new()),
    });
    let mut jobs: Vec<Arc<dyn Job>> = Vec::new();
    for rt in runtimes {
        let wake = Arc::new(tokio::sync::Notify::new());
        shared.add_polled(&rt.config.name, wake.clone());
        jobs.push(Arc::new(PollJob {
            runtime: rt,
            timeout: std::time::Duration::from_secs(cfg.daemon.poll_timeout_seconds),
            max_backoff: cfg.daemon.max_backoff_seconds,
            wake,
        }));
    }
    jobs.push(Arc::new(EvaluateJob {
        schedule: cfg.daemon.evaluate_schedule.clone(),
    }));
    jobs.push(Arc::new(DigestJob {
        schedule: cfg.alerts.digest_schedule.clone(),
    }));
    jobs.push(Arc::new(WeeklyJob {
        schedule: cfg.alerts.weekly_schedule.clone(),
    }));
    jobs.push(Arc::new(MonthlyJob {
        schedule: cfg.alerts.weekly_schedule.clone(),
    }));
    jobs.push(Arc::new(PurgeJob {
        retention_days: cfg.store.quarantine_retention_days as i64,
    }));
    let mut scheduler = Scheduler::new(calendar.zone(), clock);
    crate::jobs::register(&mut scheduler, env.clone(), jobs)?;
    let dispatcher =
        match crate::notify::transport(&cfg.alerts).map_err(|e| anyhow::anyhow!("alerts: {e}"))? {
            Some(transport) => {
                let dir = cfg
                    .alerts
                    .templates_dir
                    .as_ref()
                    .map(|d| loaded.dir.join(d));
                let templates = crate::notify::templates::Templates::load(dir.as_deref())?
                    .with_desk_links(Some(links));
                let errors = templates.check();
                if !errors.is_empty() {
                    anyhow::bail!("templates do not render: {}", errors.join("; "));
                }
                tracing::info!(transport = transport.name(), "alert delivery");
                Some(tokio::spawn(dispatch_loop(
                    shared.clone(),
                    transport,
                    templates,
                    env.alerts.clone(),
                    env.dispatch_wanted.clone(),
                    cancel.clone(),
                )))
            }
            None => {
                tracing::warn!("alerts.transport = none: alerts are recorded, no e-mail is sent");
                None
            }
        };
    scheduler.start();
    tracing::info!(sources = cfg.source.len(), "daemon running");

    // Reload the directory and catalogue on SIGHUP or when their files change, and the
    // calendar on SIGHUP only: its files are edited, checked with `calendar diff`, then
    // applied on purpose (README, "Holidays each year").
    let watched = config::watched_files(&loaded.config, &loaded.dir);
    let mut seen = mtimes(&watched);
    let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        let (reload, hup) = tokio::select! {
            _ = sigterm.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
            _ = tokio::signal::ctrl_c() => { tracing::info!("SIGINT: shutting down"); break; }
            _ = sighup.recv() => { tracing::info!("SIGHUP: reloading"); (true, true) }
            _ = tick.tick() => {
                let now = mtimes(&watched);
                let changed = now != seen;
                seen = now;
                (changed, false)
            }
        };
        if !reload {
            continue;
        }
        let old_calendar = shared.context().calendar.clone();
        let new_calendar = if hup {
            match reload_calendar(&loaded, shared.now()) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "reload failed: keeping the previous calendar, directory and catalogue");
                    shared.metrics.config_reload_ok.set(0);
                    shared.metrics.render();
                    continue;
                }
            }
        } else {
            old_calendar.clone()
        };
        match reload_context(&loaded, new_calendar.clone()) {
            Ok(c) => {
                tracing::info!(
                    units = c.directory.len(),
                    procedures = c.catalogue.len(),
                    "directory and catalogue reloaded"
                );
                shared.set_context(c);
                shared.metrics.config_reload_ok.set(1);
                shared
                    .metrics
                    .config_reload_at
                    .set(shared.now().timestamp_millis() as f64 / 1000.0);
                shared.metrics_changed();
                if new_calendar.version() != old_calendar.version() {
                    tokio::spawn(apply_calendar(shared.clone(), old_calendar));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "reload failed: keeping the previous calendar, directory and catalogue");
                shared.metrics.config_reload_ok.set(0);
                shared.metrics.render();
            }
        }
    }
    scheduler.shutdown().await;
    cancel.cancel();
    let _ = server.await;
    let _ = metrics_task.await;
    let _ = follow_task.await;
    let _ = lease_task.await;
    if let Some(d) = dispatcher {
        let _ = d.await;
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}
