//! The outbox worker: claims queued messages and sends them through the configured
//! transport, retrying with back-off; dead letters after the last attempt.

use crate::state::Shared;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Sends due messages every few seconds (and when an alert pass queued some) until
/// cancelled; a failing transport is retried per message with back-off.
pub async fn dispatch_loop(
    shared: Arc<Shared>,
    transport: Arc<dyn crate::notify::Transport>,
    templates: crate::notify::templates::Templates,
    cfg: Arc<crate::config::AlertsConfig>,
    wanted: Arc<tokio::sync::Notify>,
    cancel: CancellationToken,
) {
    let pace = crate::notify::Pace::default();
    loop {
        let now = shared.now();
        let generated_at = crate::timefmt::human(now, &shared.context().calendar);
        match crate::notify::dispatch_paced(
            shared.store.as_ref(),
            transport.as_ref(),
            &templates,
            &cfg,
            &pace,
            now,
            &generated_at,
        )
        .await
        {
            Ok(d) => {
                for (rule, result) in &d.events {
                    shared
                        .metrics
                        .notifications
                        .with_label_values(&[transport.name(), rule.as_str(), result])
                        .inc();
                }
                if d.sent + d.failed + d.dead > 0 {
                    tracing::info!(sent = d.sent, failed = d.failed, dead = d.dead, "outbox");
                }
            }
            Err(e) => tracing::warn!(error = %e, "outbox dispatch failed"),
        }
        if let Ok(n) = shared.store.outbox_pending().await {
            shared
                .metrics
                .outbox_pending
                .with_label_values(&[transport.name()])
                .set(n);
        }
        if let Ok(n) = shared.store.outbox_dead().await {
            shared
                .metrics
                .outbox_dead
                .with_label_values(&[transport.name()])
                .set(n);
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = wanted.notified() => {}
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
        }
    }
}
