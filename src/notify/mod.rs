//! Delivery of alert e-mails (SPEC §10): the transports (SMTP through lettre, a
//! `file` transport writing `.eml` files) and the dispatcher that drains the outbox.
//!
//! The outbox is written in the same transaction as the alert state (see the daemon);
//! the dispatcher claims due messages (on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so
//! several daemons share the work), renders them, sends them and marks them sent, or
//! retries with back-off and dead-letters after `max_attempts`. Every message has a
//! stable Message-ID derived from its alert, so a resend after a crash between sending
//! and marking is recognisable by the receiving side.

pub mod templates;

use crate::alert::Recipient;
use crate::config::AlertsConfig;
use crate::store::{NotificationRow, OutboxRow, Store};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use templates::{Rendered, Templates};

/// A message ready for a transport.
#[derive(Clone, Debug)]
pub struct Email {
    pub message_id: String,
    pub from: String,
    pub to: Recipient,
    pub cc: Vec<Recipient>,
    pub rendered: Rendered,
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("address `{0}`: {1}")]
    Address(String, String),
    #[error("building the message: {0}")]
    Build(String),
    #[error("sending: {0}")]
    Send(String),
}

/// Where messages go.
#[async_trait]
pub trait Transport: Send + Sync {
    fn name(&self) -> &'static str;
    async fn send(&self, email: &Email) -> Result<(), NotifyError>;
}

fn mailbox(r: &Recipient) -> Result<Mailbox, NotifyError> {
    let addr = r
        .email
        .parse()
        .map_err(|e: lettre::address::AddressError| {
            NotifyError::Address(r.email.clone(), e.to_string())
        })?;
    Ok(Mailbox::new(
        (!r.name.is_empty()).then(|| r.name.clone()),
        addr,
    ))
}

/// The MIME message: UTF-8 subject (encoded), a plain-text and an HTML part.
pub fn build(email: &Email) -> Result<Message, NotifyError> {
    let from: Mailbox = email
        .from
        .parse()
        .map_err(|e: lettre::address::AddressError| {
            NotifyError::Address(email.from.clone(), e.to_string())
        })?;
    let mut b = Message::builder()
        .from(from)
        .to(mailbox(&email.to)?)
        .subject(email.rendered.subject.clone())
        .message_id(Some(email.message_id.clone()));
    for c in &email.cc {
        b = b.cc(mailbox(c)?);
    }
    b.multipart(
        MultiPart::alternative()
            .singlepart(SinglePart::plain(email.rendered.text.clone()))
            .singlepart(SinglePart::html(email.rendered.html.clone())),
    )
    .map_err(|e| NotifyError::Build(e.to_string()))
}

/// Writes each message as `<folder>/<message-id>.eml` (the shipped config's default:
/// nothing leaves the machine).
pub struct FileTransport {
    pub dir: PathBuf,
}

#[async_trait]
impl Transport for FileTransport {
    fn name(&self) -> &'static str {
        "file"
    }

    async fn send(&self, email: &Email) -> Result<(), NotifyError> {
        let bytes = build(email)?.formatted();
        let name: String = email
            .message_id
            .trim_matches(['<', '>'])
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| NotifyError::Send(format!("{}: {e}", self.dir.display())))?;
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let path = self.dir.join(format!("{name}.eml"));
        tokio::fs::write(&tmp, bytes)
            .await
            .map_err(|e| NotifyError::Send(format!("{}: {e}", tmp.display())))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| NotifyError::Send(format!("{}: {e}", path.display())))
    }
}

/// SMTP through lettre: STARTTLS, implicit TLS or plain (a local relay); credentials
/// from the environment.
pub struct SmtpTransport {
    inner: AsyncSmtpTransport<Tokio1Executor>,
}

impl SmtpTransport {
    pub fn new(cfg: &AlertsConfig) -> Result<SmtpTransport, NotifyError> {
        use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
        let tls = match cfg.smtp_tls.as_str() {
            "tls" | "starttls" => {
                let mut params = TlsParameters::builder(cfg.smtp_host.clone());
                if let Some(path) = cfg.smtp_ca_file.as_ref().filter(|p| !p.is_empty()) {
                    let pem = std::fs::read(path).map_err(|e| {
                        NotifyError::Build(format!("alerts.smtp_ca_file {path}: {e}"))
                    })?;
                    let cert = Certificate::from_pem(&pem).map_err(|e| {
                        NotifyError::Build(format!("alerts.smtp_ca_file {path}: {e}"))
                    })?;
                    params = params.add_root_certificate(cert);
                }
                let params = params
                    .build()
                    .map_err(|e| NotifyError::Build(format!("TLS for {}: {e}", cfg.smtp_host)))?;
                if cfg.smtp_tls == "tls" {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
            "none" => Tls::None,
            other => {
                return Err(NotifyError::Build(format!(
                    "alerts.smtp_tls must be starttls, tls or none, not `{other}`"
                )))
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.smtp_host)
            .tls(tls)
            .port(cfg.smtp_port)
            .timeout(Some(std::time::Duration::from_secs(30)));
        let user = std::env::var(&cfg.smtp_username_env)
            .ok()
            .filter(|v| !v.is_empty());
        let pass = std::env::var(&cfg.smtp_password_env)
            .ok()
            .filter(|v| !v.is_empty());
        if let (Some(u), Some(p)) = (user, pass) {
            builder = builder.credentials(
                lettre::transport::smtp::authentication::Credentials::new(u, p),
            );
        }
        Ok(SmtpTransport {
            inner: builder.build(),
        })
    }
}

#[async_trait]
impl Transport for SmtpTransport {
    fn name(&self) -> &'static str {
        "smtp"
    }

    async fn send(&self, email: &Email) -> Result<(), NotifyError> {
        let msg = build(email)?;
        self.inner
            .send(msg)
            .await
            .map(|_| ())
            .map_err(|e| NotifyError::Send(e.to_string()))
    }
}

/// POSTs each message as JSON (`message_id`, `from`, `to`, `cc`, `subject`, `text`,
/// `html`) to a chat bot or ticketing hook; any 2xx answer is success.
pub struct WebhookTransport {
    url: String,
    token: Option<String>,
    client: reqwest::Client,
}

impl WebhookTransport {
    pub fn new(cfg: &AlertsConfig) -> Result<WebhookTransport, NotifyError> {
        let url = cfg
            .webhook_url
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                NotifyError::Build(
                    "alerts.webhook_url is required for the webhook transport".into(),
                )
            })?;
        Ok(WebhookTransport {
            url,
            token: std::env::var(&cfg.webhook_token_env)
                .ok()
                .filter(|t| !t.is_empty()),
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .map_err(|e| NotifyError::Build(e.to_string()))?,
        })
    }
}

#[async_trait]
impl Transport for WebhookTransport {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn send(&self, email: &Email) -> Result<(), NotifyError> {
        let body = serde_json::json!({
            "message_id": email.message_id,
            "from": email.from,
            "to": {"name": email.to.name, "email": email.to.email},
            "cc": email.cc.iter().map(|c| serde_json::json!({"name": c.name, "email": c.email})).collect::<Vec<_>>(),
            "subject": email.rendered.subject,
            "text": email.rendered.text,
            "html": email.rendered.html,
        });
        let mut req = self.client.post(&self.url).json(&body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let r = req
            .send()
            .await
            .map_err(|e| NotifyError::Send(e.to_string()))?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(NotifyError::Send(format!(
                "webhook answered {}",
                r.status()
            )))
        }
    }
}

/// The transport the configuration names (`None` for `none`).
pub fn transport(cfg: &AlertsConfig) -> Result<Option<Arc<dyn Transport>>, NotifyError> {
    if !matches!(cfg.send_window.as_str(), "office_hours" | "always") {
        return Err(NotifyError::Build(format!(
            "alerts.send_window must be office_hours or always, not `{}`",
            cfg.send_window
        )));
    }
    Ok(match cfg.transport.as_str() {
        "file" => Some(Arc::new(FileTransport {
            dir: PathBuf::from(&cfg.file_dir),
        })),
        "smtp" => Some(Arc::new(SmtpTransport::new(cfg)?)),
        "webhook" => Some(Arc::new(WebhookTransport::new(cfg)?)),
        "none" => None,
        other => {
            return Err(NotifyError::Build(format!(
                "alerts.transport must be file, smtp, webhook or none, not `{other}`"
            )))
        }
    })
}

/// Back-off after `attempts` failed attempts: `base` seconds doubling, at most an hour.
pub fn backoff(base: u32, attempts: i32) -> Duration {
    Duration::seconds(((base.max(1) as i64) << (attempts - 1).clamp(0, 12)).min(3600))
}

/// What one dispatch round did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dispatched {
    pub sent: usize,
    pub failed: usize,
    pub dead: usize,
    /// Held back by the bundling window or the hourly cap.
    pub postponed: usize,
    /// (rule, `sent` | `failed`) per attempt, for the metrics.
    pub events: Vec<(String, &'static str)>,
}

/// What each recipient was sent lately, for the bundling window and the hourly cap.
#[derive(Default)]
pub struct Pace {
    sent: std::sync::Mutex<
        std::collections::HashMap<String, std::collections::VecDeque<DateTime<Utc>>>,
    >,
}

impl Pace {
    /// When a new alert e-mail to `to` may go out (`now` when it may).
    fn allowed(&self, to: &str, now: DateTime<Utc>, cfg: &AlertsConfig) -> DateTime<Utc> {
        let mut sent = self.sent.lock().expect("pace lock");
        let hist = sent.entry(to.to_ascii_lowercase()).or_default();
        while hist.front().is_some_and(|t| *t <= now - Duration::hours(1)) {
            hist.pop_front();
        }
        let window = Duration::minutes(cfg.bundle_window_minutes as i64);
        if let Some(last) = hist.back() {
            if now < *last + window {
                return *last + window;
            }
        }
        if cfg.hourly_cap > 0 && hist.len() >= cfg.hourly_cap as usize {
            if let Some(first) = hist.front() {
                return *first + Duration::hours(1);
            }
        }
        now
    }

    fn record(&self, to: &str, at: DateTime<Utc>) {
        self.sent
            .lock()
            .expect("pace lock")
            .entry(to.to_ascii_lowercase())
            .or_default()
            .push_back(at);
    }
}

/// Messages claimed per round.
const CLAIM: i64 = 500;

/// Claims the due messages and sends them, one e-mail per recipient and language
/// bundling everything due for them (a backlog released after Tết or an outage is one
/// e-mail, not hundreds); marks them sent, with the cases' notification log, or
/// failed (retried with back-off, dead-lettered after `max_attempts`).
pub async fn dispatch_once(
    store: &dyn Store,
    transport: &dyn Transport,
    templates: &Templates,
    cfg: &AlertsConfig,
    now: DateTime<Utc>,
    generated_at: &str,
) -> Result<Dispatched, crate::store::StoreError> {
    dispatch_paced(
        store,
        transport,
        templates,
        cfg,
        &Pace::default(),
        now,
        generated_at,
    )
    .await
}

/// [`dispatch_once`] remembering what each recipient was sent in `pace`: an alert
/// e-mail within `bundle_window_minutes` of the last one to the same recipient, or
/// past `hourly_cap` in the last hour, waits and goes out with the others.
pub async fn dispatch_paced(
    store: &dyn Store,
    transport: &dyn Transport,
    templates: &Templates,
    cfg: &AlertsConfig,
    pace: &Pace,
    now: DateTime<Utc>,
    generated_at: &str,
) -> Result<Dispatched, crate::store::StoreError> {
    let lease = Duration::seconds(cfg.claim_seconds.max(1) as i64);
    // Our claim runs out at `now + lease`; past nine tenths of it, leave the rest to
    // whoever claims it next rather than risk sending it twice.
    let claimed = std::time::Instant::now();
    let stop_at = claimed + std::time::Duration::from_millis(cfg.claim_seconds.max(1) as u64 * 900);
    // The instants logged are `now` moved on by the time spent sending: the caller's
    // clock, not the system's.
    let at = || now + Duration::from_std(claimed.elapsed()).unwrap_or_default();
    let rows = store.outbox_claim(now, lease, CLAIM).await?;
    let mut groups: Vec<Vec<OutboxRow>> = Vec::new();
    for row in rows {
        // A digest or a report is a message of its own; alerts to one recipient are
        // bundled.
        if is_report(&row.rule) {
            groups.push(vec![row]);
            continue;
        }
        let key = (row.to_addr.to_ascii_lowercase(), row.lang.clone());
        match groups.iter_mut().find(|g| {
            !is_report(&g[0].rule) && (g[0].to_addr.to_ascii_lowercase(), g[0].lang.clone()) == key
        }) {
            Some(g) => g.push(row),
            None => groups.push(vec![row]),
        }
    }
    let mut done = Dispatched::default();
    for group in groups {
        if std::time::Instant::now() > stop_at {
            tracing::warn!(
                claim_seconds = cfg.claim_seconds,
                "outbox claim ran out before the batch was sent; the rest goes next round"
            );
            break;
        }
        let ids: Vec<i64> = group.iter().map(|r| r.id).collect();
        let paced = !is_report(&group[0].rule);
        if paced {
            let allowed = pace.allowed(&group[0].to_addr, now, cfg);
            if allowed > now {
                store.outbox_postpone(&ids, allowed).await?;
                done.postponed += group.len();
                continue;
            }
        }
        match send_group(transport, templates, cfg, &group, generated_at).await {
            Ok((message_id, recipients)) => {
                let mut log = Vec::new();
                for row in group.iter().filter(|r| r.rule == "digest") {
                    // Every case a digest lists logs it.
                    let item: Value = serde_json::from_str(&row.item).unwrap_or(Value::Null);
                    for sec in ["sections", "tasks"] {
                        for s in item[sec].as_array().into_iter().flatten() {
                            for c in s["cases"].as_array().into_iter().flatten() {
                                let (Some(src), Some(id)) =
                                    (c["source"].as_str(), c["case_id"].as_str())
                                else {
                                    continue;
                                };
                                log.push((
                                    src.to_string(),
                                    id.to_string(),
                                    NotificationRow {
                                        at: at(),
                                        rule: "digest".into(),
                                        level: 0,
                                        recipient: recipients[0].clone(),
                                        channel: transport.name().to_string(),
                                        status: "sent".into(),
                                        message_id: Some(message_id.clone()),
                                    },
                                ));
                            }
                        }
                    }
                    done.events.push(("digest".into(), "sent"));
                }
                for _ in group.iter().filter(|r| r.rule == "weekly") {
                    done.events.push(("weekly".into(), "sent"));
                }
                for row in group.iter().filter(|r| !is_report(&r.rule)) {
                    let level = serde_json::from_str::<Value>(&row.item)
                        .ok()
                        .and_then(|v| v["level"].as_i64())
                        .unwrap_or(0) as i32;
                    let cc: Vec<String> = recipients_of(row, cfg);
                    for r in std::iter::once(recipients[0].clone()).chain(cc) {
                        log.push((
                            row.source.clone(),
                            row.case_id.clone(),
                            NotificationRow {
                                at: at(),
                                rule: row.rule.clone(),
                                level,
                                recipient: r,
                                channel: transport.name().to_string(),
                                status: "sent".into(),
                                message_id: Some(message_id.clone()),
                            },
                        ));
                    }
                    done.events.push((row.rule.clone(), "sent"));
                }
                store.outbox_sent(&ids, at(), &log).await?;
                if paced {
                    pace.record(&group[0].to_addr, now);
                }
                done.sent += group.len();
            }
            Err(e) => {
                for row in &group {
                    let dead = row.attempts as u32 >= cfg.max_attempts;
                    if dead {
                        tracing::error!(
                            message_id = %row.message_id,
                            rule = %row.rule,
                            to = %row.to_addr,
                            attempts = row.attempts,
                            error = %e,
                            "message dead-lettered after its last attempt; \
                             `slawatch notify requeue` sends it again once the cause is fixed"
                        );
                    } else {
                        tracing::warn!(
                            message_id = %row.message_id,
                            attempts = row.attempts,
                            error = %e,
                            "message not sent; will retry"
                        );
                    }
                    store
                        .outbox_failed(
                            &[row.id],
                            &e.to_string(),
                            now + backoff(cfg.retry_base_seconds, row.attempts),
                            dead,
                        )
                        .await?;
                    done.events.push((row.rule.clone(), "failed"));
                    if dead {
                        done.dead += 1;
                    } else {
                        done.failed += 1;
                    }
                }
            }
        }
    }
    Ok(done)
}

/// Digests and the weekly report: whole messages, never bundled with alerts.
fn is_report(rule: &str) -> bool {
    matches!(rule, "digest" | "weekly")
}

fn cc_of(row: &OutboxRow) -> Vec<Recipient> {
    serde_json::from_str::<Vec<Value>>(&row.cc)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| {
            Some(Recipient {
                name: v["name"].as_str().unwrap_or("").to_string(),
                email: v["email"].as_str()?.to_string(),
            })
        })
        .collect()
}

/// The copies a row's message went to (none when an override recipient is set).
fn recipients_of(row: &OutboxRow, cfg: &AlertsConfig) -> Vec<String> {
    if cfg
        .override_recipient
        .as_ref()
        .is_some_and(|o| !o.is_empty())
    {
        return Vec::new();
    }
    cc_of(row).into_iter().map(|c| c.email).collect()
}

/// Renders and sends one e-mail for a recipient's messages; its Message-ID (the
/// message's own for one, derived from all of them for a bundle) and the address it
/// went to.
async fn send_group(
    transport: &dyn Transport,
    templates: &Templates,
    cfg: &AlertsConfig,
    group: &[OutboxRow],
    generated_at: &str,
) -> Result<(String, Vec<String>), NotifyError> {
    let first = &group[0];
    let mut items = Vec::new();
    let mut cc: Vec<Recipient> = Vec::new();
    for row in group {
        let item: Value = serde_json::from_str(&row.item)
            .map_err(|e| NotifyError::Build(format!("item of {}: {e}", row.message_id)))?;
        items.push(item);
        for c in cc_of(row) {
            if !cc.iter().any(|x| x.email.eq_ignore_ascii_case(&c.email))
                && !c.email.eq_ignore_ascii_case(&first.to_addr)
            {
                cc.push(c);
            }
        }
    }
    let mut to = Recipient {
        name: first.to_name.clone(),
        email: first.to_addr.clone(),
    };
    let recipient = serde_json::json!({"name": to.name, "email": to.email});
    let (name, ctx) = if is_report(&first.rule) {
        let mut ctx = items.into_iter().next().unwrap_or(Value::Null);
        ctx["recipient"] = recipient;
        ctx["generated_at"] = Value::String(generated_at.to_string());
        (first.rule.as_str(), ctx)
    } else {
        (
            "alert",
            serde_json::json!({"recipient": recipient, "generated_at": generated_at, "items": items}),
        )
    };
    let rendered = templates
        .render(name, &first.lang, &ctx)
        .map_err(|e| NotifyError::Build(e.to_string()))?;
    if let Some(o) = cfg.override_recipient.as_ref().filter(|o| !o.is_empty()) {
        to.email = o.clone();
        cc.clear();
    }
    let message_id = if group.len() == 1 {
        first.message_id.clone()
    } else {
        use sha2::Digest;
        let mut ids: Vec<&str> = group.iter().map(|r| r.message_id.as_str()).collect();
        ids.sort_unstable();
        let digest = sha2::Sha256::digest(ids.join(" ").as_bytes());
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!("<bundle-{hex}@slawatch>")
    };
    let email = Email {
        message_id: message_id.clone(),
        from: cfg.from.clone(),
        to: to.clone(),
        cc,
        rendered,
    };
    transport.send(&email).await?;
    Ok((message_id, vec![to.email]))
}
