//! Several replicas on one store (SPEC §11): the leases that give singleton work —
//! polling a source, the alert pass, digests and reports, the case metrics — to one
//! replica at a time, kept alive by one task; and the change feed each replica follows
//! so its memory, answers, pages and metrics hold what the others committed.
//!
//! A lease is a row in the store with a holder and an end. The holder renews it every
//! third of its span; a replica that dies (even `kill -9`) stops renewing, and another
//! takes the work over once the end has passed — within one span and one tick of the
//! work's schedule. A replica that cannot renew (the store is down) stops counting the
//! lease as its own before its end, so two replicas never both believe they hold it.

use crate::state::{Entry, Shared, SourceHealth};
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Whether the lease holder `theirs` was a process of this host that no longer runs:
/// holders are `host:pid:nonce`, so one of this host whose pid is gone, or is this
/// process's own pid under another nonce (a container restarted as pid 1), is dead.
pub(crate) fn dead_here(theirs: &str, ours: &str) -> bool {
    let split = |h: &str| -> Option<(String, u32, String)> {
        let mut it = h.rsplitn(3, ':');
        let nonce = it.next()?.to_string();
        let pid = it.next()?.parse().ok()?;
        let host = it.next()?.to_string();
        Some((host, pid, nonce))
    };
    let (Some(t), Some(o)) = (split(theirs), split(ours)) else {
        return false;
    };
    if t.0 != o.0 || theirs == ours {
        return false;
    }
    t.1 == o.1 || !std::path::Path::new(&format!("/proc/{}", t.1)).exists()
}

/// How a replica stands towards a lease after asking for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// It held the lease already.
    Kept,
    /// It has just taken it (first, or over from a replica that stopped renewing).
    Taken,
    /// Another replica holds it.
    Other,
}

impl Held {
    pub fn ours(self) -> bool {
        self != Held::Other
    }
}

/// The lease that decides which replica exports the case metrics.
pub const METRICS_LEASE: &str = "metrics";

/// The lease of polling one source.
pub fn poll_lease(source: &str) -> String {
    format!("poll:{source}")
}

/// Change-feed entries read per query.
const FOLLOW_PAGE: i64 = 2000;
/// Cases read back per query when following.
const FOLLOW_CHUNK: usize = 1000;
/// How long the change feed is kept; a replica that could not follow for half of it
/// reloads every open case instead.
pub const CHANGES_KEPT: chrono::Duration = chrono::Duration::days(1);

/// Where a replica stands in the change feed.
#[derive(Debug, Default)]
pub(crate) struct FeedCursor {
    pub(crate) last_seq: i64,
    pub(crate) followed_at: Option<DateTime<Utc>>,
}

/// What one follow of the change feed did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Followed {
    /// Feed entries of other replicas applied.
    pub changes: usize,
    /// Cases read back from the store.
    pub cases: usize,
    /// Whether memory was reloaded whole (the feed had moved on too far).
    pub reloaded: bool,
}

/// The store key of a source's health as its poller last saw it.
fn health_key(source: &str) -> String {
    format!("source_health:{source}")
}

impl Shared {
    /// Holds the lease `name`: keeps it while this replica holds it (the keeper renews
    /// it), takes it when it is free or its holder stopped renewing.
    pub async fn hold(&self, name: &str, now: DateTime<Utc>) -> Result<Held, StoreError> {
        let until = self.leases.lock().expect("leases lock").get(name).copied();
        // Counted ours only while more than a third of its span is left: the keeper
        // renews at each third, so a lease it could not renew is let go in time.
        if until.is_some_and(|u| u - self.lease_span / 3 > now) {
            return Ok(Held::Kept);
        }
        let end = now + self.lease_span;
        if self.store.lease(name, &self.holder, end, now).await? {
            self.leases
                .lock()
                .expect("leases lock")
                .insert(name.to_string(), end);
            Ok(if until.is_some() {
                Held::Kept
            } else {
                Held::Taken
            })
        } else {
            self.leases.lock().expect("leases lock").remove(name);
            // A holder that was this host's process and is gone (a restart after a
            // crash) does not hold the work up until its lease ends.
            if let Some(theirs) = self.store.lease_holder(name, now).await? {
                if dead_here(&theirs, &self.holder)
                    && self
                        .store
                        .lease_steal(name, &theirs, &self.holder, end)
                        .await?
                {
                    tracing::info!(lease = name, from = %theirs, "lease taken from a process of this host that is gone");
                    self.leases
                        .lock()
                        .expect("leases lock")
                        .insert(name.to_string(), end);
                    return Ok(Held::Taken);
                }
            }
            Ok(Held::Other)
        }
    }

    /// Whether this replica holds the lease `name` (as far as it knows, without asking).
    pub fn holds(&self, name: &str, now: DateTime<Utc>) -> bool {
        self.leases
            .lock()
            .expect("leases lock")
            .get(name)
            .is_some_and(|u| *u > now)
    }

    /// Renews every lease this replica holds; a lease another took meanwhile (or one
    /// that could not be renewed before its end) is let go.
    pub async fn renew_leases(&self, now: DateTime<Utc>) {
        let held: Vec<(String, DateTime<Utc>)> = self
            .leases
            .lock()
            .expect("leases lock")
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        for (name, until) in held {
            let end = now + self.lease_span;
            match self.store.lease(&name, &self.holder, end, now).await {
                Ok(true) => {
                    self.leases.lock().expect("leases lock").insert(name, end);
                }
                Ok(false) => {
                    tracing::warn!(lease = %name, "lease taken by another replica");
                    self.leases.lock().expect("leases lock").remove(&name);
                }
                Err(e) => {
                    tracing::warn!(lease = %name, error = %e, "cannot renew the lease");
                    if until <= now {
                        self.leases.lock().expect("leases lock").remove(&name);
                    }
                }
            }
        }
    }

    /// Lets go of every lease (a clean shutdown): the other replicas take the work at
    /// their next tick instead of after the lease's end.
    pub async fn release_leases(&self) {
        let held: Vec<String> = self
            .leases
            .lock()
            .expect("leases lock")
            .drain()
            .map(|(k, _)| k)
            .collect();
        let at = DateTime::<Utc>::UNIX_EPOCH;
        for name in held {
            if let Err(e) = self.store.lease_release(&name, &self.holder, at).await {
                tracing::warn!(lease = %name, error = %e, "cannot release the lease");
            }
        }
    }

    /// Registers a polled source, whose lease the keeper contends for.
    pub fn add_polled(&self, source: &str, wake: Arc<tokio::sync::Notify>) {
        self.polled
            .lock()
            .expect("polled lock")
            .push((source.to_string(), wake));
    }

    /// Contends for the polling lease of every source this replica does not poll; a
    /// lease taken (its poller stopped renewing) runs the poll at once, so a source is
    /// taken over within the lease's span and a third, whatever its schedule.
    pub async fn contend_polls(&self, now: DateTime<Utc>) {
        let polled = self.polled.lock().expect("polled lock").clone();
        for (source, wake) in polled {
            let lease = poll_lease(&source);
            if self.holds(&lease, now) {
                continue;
            }
            match self.hold(&lease, now).await {
                Ok(Held::Taken) => {
                    tracing::info!(source = %source, "taking over the polling of this source");
                    // Memory first catches up with what the last poller committed.
                    if let Err(e) = self.follow(now).await {
                        tracing::warn!(source = %source, error = %e, "cannot follow the change feed");
                    }
                    wake.notify_one();
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(source = %source, error = %e, "cannot contend for the polling lease")
                }
            }
        }
    }

    /// Contends for the metrics lease: the replica that holds it exports the case
    /// metrics, the others only their own process's.
    pub async fn contend_metrics(&self, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let held = self.hold(METRICS_LEASE, now).await?;
        let was = self.metrics.is_leader();
        self.metrics.set_leader(held.ours());
        if held.ours() != was {
            tracing::info!(
                leader = held.ours(),
                "{}",
                if held.ours() {
                    "this replica now exports the case metrics"
                } else {
                    "another replica exports the case metrics"
                }
            );
            self.metrics_changed();
        }
        Ok(held.ours())
    }

    /// Brings memory up to what other replicas committed since the last follow: the
    /// cases each change names are read back and evaluated (kept when open, dropped
    /// when ended), acknowledgements are read on, and the health of sources polled
    /// elsewhere is taken from the store.
    pub async fn follow(&self, now: DateTime<Utc>) -> Result<Followed, StoreError> {
        let mut feed = self.feed.lock().await;
        let mut done = Followed::default();
        if feed.followed_at.is_some_and(|t| now - t > CHANGES_KEPT / 2) {
            // Entries may have been purged meanwhile: read memory whole.
            drop(feed);
            self.load(now).await?;
            feed = self.feed.lock().await;
            done.reloaded = true;
        }
        loop {
            let page = self.store.changes_after(feed.last_seq, FOLLOW_PAGE).await?;
            let (changes, next) = (page.changes, page.next);
            let full = changes.len() as i64 == FOLLOW_PAGE;
            if changes.is_empty() {
                feed.last_seq = next;
                break;
            }
            let mut by_source: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for c in changes {
                if c.writer == self.holder {
                    continue;
                }
                done.changes += 1;
                by_source.entry(c.source).or_default().extend(c.case_ids);
            }
            for (source, ids) in by_source {
                done.cases += self.reload_cases(&source, ids, now).await?;
            }
            feed.last_seq = next;
            if !full {
                break;
            }
        }
        feed.followed_at = Some(now);
        drop(feed);
        self.refresh_acks().await?;
        self.import_health(now).await?;
        if done.changes > 0 {
            self.metrics_changed();
        }
        Ok(done)
    }

    /// Reads cases back from the store into memory: open ones evaluated and kept,
    /// ended ones dropped.
    async fn reload_cases(
        &self,
        source: &str,
        ids: BTreeSet<String>,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let ids: Vec<String> = ids.into_iter().collect();
        let ctx = self.context();
        let mut n = 0;
        for chunk in ids.chunks(FOLLOW_CHUNK) {
            let cases = self.store.get_cases(source, chunk).await?;
            n += cases.len();
            let mut entries = Vec::with_capacity(cases.len());
            {
                let mut interner = self.interner.lock().expect("interner lock");
                for mut case in cases {
                    interner.case(&mut case);
                    let judged = ctx.judge(&case, now).ok();
                    let open = match &judged {
                        Some((e, _)) => e.lifecycle == crate::sla::Lifecycle::Open,
                        None => !matches!(case.status, 3 | 7 | 9 | 10),
                    };
                    entries.push((open, case, judged.map(|(_, s)| s)));
                }
            }
            // Like a batch of this replica's own: shared with other writers, never
            // under a timer re-evaluation that reads memory and writes it back.
            let _gate = self.write_gate.read().await;
            let mut ended = false;
            let mut open = self.open.lock().expect("open lock");
            let mut seen: BTreeSet<&str> = BTreeSet::new();
            for (is_open, case, eval) in &entries {
                seen.insert(case.case_id.as_str());
                let key = (source.to_string(), case.case_id.clone());
                if *is_open {
                    open.insert(key, Entry::new(case.clone(), eval.clone()));
                } else {
                    open.remove(&key);
                    ended = true;
                }
            }
            for id in chunk {
                if !seen.contains(id.as_str()) {
                    open.remove(&(source.to_string(), id.clone()));
                }
            }
            drop(open);
            if ended {
                self.finished.lock().expect("finished lock").stale = true;
            }
        }
        Ok(n)
    }

    /// Stores a source's health as this replica sees it, for the replicas that do not
    /// poll it (their readiness, alerts on stale data, metrics).
    pub async fn share_health(&self, source: &str) -> Result<(), StoreError> {
        let h = self
            .health
            .lock()
            .expect("health lock")
            .iter()
            .find(|h| h.name == source)
            .cloned();
        if let Some(h) = h {
            let json = serde_json::to_string(&h).expect("health serialises");
            self.store.meta_put(&health_key(source), &json).await?;
        }
        Ok(())
    }

    /// Takes the health of sources this replica does not poll from the store, when
    /// the replica that polls them saw them more recently.
    async fn import_health(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        let names: Vec<(String, String)> = self
            .health
            .lock()
            .expect("health lock")
            .iter()
            .map(|h| (h.name.clone(), h.kind.clone()))
            .collect();
        for (name, kind) in names {
            if kind != "push" && self.holds(&poll_lease(&name), now) {
                continue;
            }
            let Some(json) = self.store.meta_get(&health_key(&name)).await? else {
                continue;
            };
            let Ok(theirs) = serde_json::from_str::<SourceHealth>(&json) else {
                continue;
            };
            self.update_health(&name, |h| {
                if theirs.last_poll > h.last_poll {
                    let next = h.next_attempt;
                    *h = SourceHealth {
                        name: h.name.clone(),
                        kind: h.kind.clone(),
                        next_attempt: next,
                        ..theirs
                    };
                }
            });
        }
        Ok(())
    }
}

/// Renews this replica's leases every third of their span and contends for the
/// metrics lease; lets go of them all on shutdown.
pub async fn lease_loop(shared: Arc<Shared>, cancel: CancellationToken) {
    let every = (shared.lease_span / 3)
        .to_std()
        .unwrap_or(std::time::Duration::from_secs(10))
        .max(std::time::Duration::from_millis(200));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now = shared.now();
        shared.renew_leases(now).await;
        shared.contend_polls(now).await;
        if let Err(e) = shared.contend_metrics(now).await {
            tracing::warn!(error = %e, "cannot contend for the metrics lease");
        }
    }
    shared.release_leases().await;
}

/// Follows the change feed every `every` until shutdown.
pub async fn follow_loop(
    shared: Arc<Shared>,
    every: std::time::Duration,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(every.max(std::time::Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        match shared.follow(shared.now()).await {
            Ok(f) => {
                if failing {
                    tracing::info!("following the change feed again");
                    failing = false;
                }
                if f.changes > 0 {
                    tracing::debug!(
                        changes = f.changes,
                        cases = f.cases,
                        "followed other replicas' changes"
                    );
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot follow the change feed (retrying)");
                }
                failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_is_dead_only_when_it_was_of_this_host_and_is_gone() {
        let me = format!("web-1:{}:aaaa", std::process::id());
        // Another host: never judged from here.
        assert!(!dead_here("web-2:4194303:bbbb", &me));
        // This host, a pid that does not run: dead.
        assert!(dead_here("web-1:4194303:bbbb", &me));
        // This host, pid 1 (init) runs: alive.
        assert!(!dead_here("web-1:1:bbbb", &me));
        // This very pid under another nonce: an earlier life of this process's
        // container (restarted as the same pid).
        assert!(dead_here(
            &format!("web-1:{}:bbbb", std::process::id()),
            &me
        ));
        // Itself, and names not of the form host:pid:nonce.
        assert!(!dead_here(&me, &me));
        assert!(!dead_here("cli", &me));
    }
}
