//! Delivery of alert e-mails (SPEC §10): templates now; the outbox, the dispatcher
//! and the transports (SMTP, file, webhook) follow.

pub mod templates;
