//! Delivery of alert e-mails (SPEC §10): the transports only — SMTP through lettre, a
//! `file` transport writing `.eml` files, a webhook — and building a message. It
//! knows nothing of the store: the outbox worker that claims messages, sends them
//! through a transport, and marks them sent or retries them is
//! [`crate::jobs::dispatch`]. Every message has a stable Message-ID derived from its
//! alert, so a resend after a crash between sending and marking is recognisable.

pub mod templates;

use crate::alert::Recipient;
use crate::config::AlertsConfig;
use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::PathBuf;
use std::sync::Arc;
use templates::Rendered;

/// A message ready for a transport.
#[derive(Clone, Debug)]
pub struct Email {
    pub message_id: String,
    pub from: String,
    pub to: Recipient,
    pub cc: Vec<Recipient>,
    /// When it is sent, in the local zone (the `Date:` header).
    pub date: chrono::DateTime<chrono::FixedOffset>,
    /// How many queued messages it carries (`X-Slawatch-Items`).
    pub items: usize,
    pub rendered: Rendered,
    /// Files sent with it (the monthly report's XLSX).
    pub attachments: Vec<Attachment>,
}

/// A file sent with an e-mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
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

/// The MIME message: UTF-8 subject (encoded), a plain-text and an HTML part, `Date:`
/// in the local zone, `Auto-Submitted: auto-generated` (RFC 3834: no auto-replies),
/// and `X-Slawatch-Items` (how many queued messages it carries).
pub fn build(email: &Email) -> Result<Message, NotifyError> {
    use lettre::message::header::{HeaderName, HeaderValue};
    let raw = |name: &'static str, value: String| {
        HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
    };
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
    b = b
        .raw_header(raw("Auto-Submitted", "auto-generated".into()))
        .raw_header(raw("X-Slawatch-Items", email.items.to_string()));
    let body = MultiPart::alternative()
        .singlepart(SinglePart::plain(email.rendered.text.clone()))
        .singlepart(SinglePart::html(email.rendered.html.clone()));
    let body = if email.attachments.is_empty() {
        body
    } else {
        let mut mixed = MultiPart::mixed().multipart(body);
        for a in &email.attachments {
            let ct = lettre::message::header::ContentType::parse(&a.content_type)
                .map_err(|e| NotifyError::Build(format!("attachment {}: {e}", a.name)))?;
            mixed = mixed.singlepart(
                lettre::message::Attachment::new(a.name.clone()).body(a.bytes.clone(), ct),
            );
        }
        mixed
    };
    let mut m = b
        .multipart(body)
        .map_err(|e| NotifyError::Build(e.to_string()))?;
    // lettre writes `Date:` in UTC; a reader's client shows the zone it was sent in.
    m.headers_mut().remove_raw("Date");
    m.headers_mut()
        .insert_raw(raw("Date", email.date.to_rfc2822()));
    Ok(m)
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
            "attachments": email.attachments.iter().map(|a| serde_json::json!({
                "name": a.name,
                "content_type": a.content_type,
                "base64": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &a.bytes),
            })).collect::<Vec<_>>(),
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
