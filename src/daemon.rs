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
use crate::sla::model::Case;
use crate::source::normalize::Mapping;
use crate::source::{self, SourceConfig};
pub use crate::state::{Context, Entry, IngestStats, Shared, SourceHealth};
use crate::store::{self, Store};
use anyhow::{Context as _, Result};
use chrono::{DateTime, Duration as Span, Utc};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub use crate::jobs::*;
pub use crate::store::redact_url;

/// A random salt for applicant hashes, kept in the store so hashes stay comparable.
pub async fn applicant_salt(store: &Arc<dyn Store>) -> Result<String> {
    if let Ok(s) = std::env::var("SLAWATCH_APPLICANT_SALT") {
        if !s.is_empty() {
            return Ok(s);
        }
    }
    if let Some(s) = store.meta_get("applicant_salt").await? {
        return Ok(s);
    }
    let mut bytes = [0u8; 16];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for the applicant salt")?;
    let salt: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    store.meta_put("applicant_salt", &salt).await?;
    Ok(salt)
}

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

/// After a calendar reload: says what it moved among the open cases, then evaluates
/// them all under the new calendar at once (not at the next scheduled pass).
async fn apply_calendar(shared: Arc<Shared>, before: Arc<Calendar>) {
    let now = shared.now();
    let ctx = shared.context();
    let cases: Vec<Case> = shared
        .select_open(|_| true)
        .into_iter()
        .map(|e| e.case)
        .collect();
    let c = ctx.clone();
    let b = before.clone();
    let diff = tokio::task::spawn_blocking(move || {
        crate::sla::compare::compare(
            &cases,
            &crate::sla::compare::Sides {
                before: &b,
                after: &c.calendar,
                policy: &c.policy,
                catalogue: &c.catalogue,
                now,
            },
        )
    })
    .await;
    if let Ok(d) = diff {
        tracing::info!(
            from = %before.version(),
            to = %ctx.calendar.version(),
            official_until = ?ctx.calendar.official_until(),
            open = d.total.open,
            dues_moved = d.total.dues_moved,
            earlier = d.total.earlier,
            later = d.total.later,
            states_changed = d.total.states_changed,
            "calendar reloaded"
        );
    }
    match reevaluate(&shared, now).await {
        Ok(n) => tracing::info!(changed = n, "re-evaluated under the new calendar"),
        Err(e) => tracing::warn!(error = %e, "re-evaluation after the calendar reload failed"),
    }
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
    let context = Context {
        calendar: calendar.clone(),
        policy: loaded.policy.clone(),
        catalogue: loaded.catalogue.clone(),
        directory: loaded.directory.clone(),
    };
    let shared = Arc::new(
        Shared::new(store.clone(), context, salt)
            .with_procedure_metrics(cfg.metrics.procedure_labels)
            .with_clock(clock),
    );
    let started = shared.now();
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
    shared
        .refresh_metrics(shared.now())
        .await
        .context("first metrics")?;
    let metrics_task = tokio::spawn(metrics_loop(shared.clone(), cancel.clone()));
    let listener = tokio::net::TcpListener::bind(&cfg.http.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.http.listen))?;
    tracing::info!(listen = %listener.local_addr()?, "http listener");
    let api_token = std::env::var(&cfg.http.api_token_env)
        .ok()
        .filter(|t| !t.is_empty());
    let app = crate::http::router(
        shared.clone(),
        push_sources,
        cfg.http.max_body_bytes,
        api_token,
    );
    let server_cancel = cancel.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { server_cancel.cancelled().await })
            .await
    });

    let mut scheduler = Scheduler::new(calendar.zone(), clock);
    let poll_timeout = std::time::Duration::from_secs(cfg.daemon.poll_timeout_seconds);
    let max_backoff = cfg.daemon.max_backoff_seconds;
    for rt in &runtimes {
        let (job_shared, job_rt) = (shared.clone(), rt.clone());
        // A first poll right away, so a fresh start has data without waiting a tick;
        // it holds the job's guard, so a slow first poll and the ticks never overlap.
        scheduler.add_at_start(
            &format!("poll:{}", rt.config.name),
            &rt.config.schedule,
            move || {
                let (shared, rt) = (job_shared.clone(), job_rt.clone());
                Box::pin(async move { poll_once(&shared, &rt, poll_timeout, max_backoff).await })
            },
        )?;
    }
    let alerts_cfg = Arc::new(cfg.alerts.clone());
    let dispatch_wanted = Arc::new(tokio::sync::Notify::new());
    {
        let shared = shared.clone();
        let alerts_cfg = alerts_cfg.clone();
        let dispatch_wanted = dispatch_wanted.clone();
        scheduler.add("evaluate", &cfg.daemon.evaluate_schedule, move || {
            let shared = shared.clone();
            let alerts_cfg = alerts_cfg.clone();
            let dispatch_wanted = dispatch_wanted.clone();
            Box::pin(async move {
                let t = shared.now();
                match reevaluate(&shared, t).await {
                    Ok(n) => tracing::debug!(
                        changed = n,
                        ms = (shared.now() - t).num_milliseconds(),
                        "re-evaluated"
                    ),
                    Err(e) => tracing::warn!(error = %e, "re-evaluation failed"),
                }
                // Reports the daemon missed today (down at the time, or a replica
                // died halfway) go out late rather than never.
                match digest_catch_up(&shared, &alerts_cfg, shared.now()).await {
                    Ok(p) if p.ran => {
                        tracing::info!(
                            units = p.units,
                            queued = p.queued,
                            "morning digest caught up"
                        );
                        dispatch_wanted.notify_one();
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "digest catch-up failed"),
                }
                match weekly_catch_up(&shared, &alerts_cfg, shared.now()).await {
                    Ok(true) => {
                        tracing::info!("weekly report caught up");
                        dispatch_wanted.notify_one();
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "weekly catch-up failed"),
                }
                match alert_pass(&shared, &alerts_cfg, shared.now()).await {
                    Ok(p) if p.fired + p.resolved > 0 => {
                        tracing::info!(
                            fired = p.fired,
                            resolved = p.resolved,
                            queued = p.queued,
                            "alerts"
                        );
                        dispatch_wanted.notify_one();
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "alert pass failed"),
                }
            })
        })?;
    }
    {
        crate::scheduler::validate(&cfg.alerts.digest_schedule)
            .map_err(|e| anyhow::anyhow!("alerts.digest_schedule: {e}"))?;
        let shared = shared.clone();
        let alerts_cfg = alerts_cfg.clone();
        let dispatch_wanted = dispatch_wanted.clone();
        scheduler.add("digest", &cfg.alerts.digest_schedule, move || {
            let shared = shared.clone();
            let alerts_cfg = alerts_cfg.clone();
            let dispatch_wanted = dispatch_wanted.clone();
            Box::pin(async move {
                let t = std::time::Instant::now();
                match digest_pass(&shared, &alerts_cfg, shared.now()).await {
                    Ok(p) if p.ran => {
                        tracing::info!(
                            units = p.units,
                            cases = p.cases,
                            queued = p.queued,
                            ms = t.elapsed().as_millis() as u64,
                            "morning digest queued"
                        );
                        dispatch_wanted.notify_one();
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "digest failed"),
                }
            })
        })?;
    }
    {
        crate::scheduler::validate(&cfg.alerts.weekly_schedule)
            .map_err(|e| anyhow::anyhow!("alerts.weekly_schedule: {e}"))?;
        let shared = shared.clone();
        let alerts_cfg = alerts_cfg.clone();
        let dispatch_wanted = dispatch_wanted.clone();
        scheduler.add("weekly", &cfg.alerts.weekly_schedule, move || {
            let shared = shared.clone();
            let alerts_cfg = alerts_cfg.clone();
            let dispatch_wanted = dispatch_wanted.clone();
            Box::pin(async move {
                match weekly_pass(&shared, &alerts_cfg, shared.now()).await {
                    Ok(true) => {
                        tracing::info!("weekly report queued");
                        dispatch_wanted.notify_one();
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "weekly report failed"),
                }
            })
        })?;
    }
    let dispatcher =
        match crate::notify::transport(&cfg.alerts).map_err(|e| anyhow::anyhow!("alerts: {e}"))? {
            Some(transport) => {
                let dir = cfg
                    .alerts
                    .templates_dir
                    .as_ref()
                    .map(|d| loaded.dir.join(d));
                let templates = crate::notify::templates::Templates::load(dir.as_deref())?;
                let errors = templates.check();
                if !errors.is_empty() {
                    anyhow::bail!("templates do not render: {}", errors.join("; "));
                }
                tracing::info!(transport = transport.name(), "alert delivery");
                Some(tokio::spawn(dispatch_loop(
                    shared.clone(),
                    transport,
                    templates,
                    alerts_cfg.clone(),
                    dispatch_wanted.clone(),
                    cancel.clone(),
                )))
            }
            None => {
                tracing::warn!("alerts.transport = none: alerts are recorded, no e-mail is sent");
                None
            }
        };
    {
        let shared = shared.clone();
        let days = cfg.store.quarantine_retention_days as i64;
        scheduler.add("purge-quarantine", "0 15 3 * * *", move || {
            let shared = shared.clone();
            Box::pin(async move {
                match shared
                    .store
                    .quarantine_purge(shared.now() - Span::days(days))
                    .await
                {
                    Ok(n) if n > 0 => tracing::info!(purged = n, "quarantine purged"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "quarantine purge failed"),
                }
            })
        })?;
    }
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
                shared.metrics_changed();
                if new_calendar.version() != old_calendar.version() {
                    tokio::spawn(apply_calendar(shared.clone(), old_calendar));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "reload failed: keeping the previous calendar, directory and catalogue")
            }
        }
    }
    scheduler.shutdown().await;
    cancel.cancel();
    let _ = server.await;
    let _ = metrics_task.await;
    if let Some(d) = dispatcher {
        let _ = d.await;
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}
