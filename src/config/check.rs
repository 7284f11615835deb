//! What `check-config` finds beyond parsing: every value the daemon would refuse at
//! start-up or that would break a mail (cron expressions, transport and TLS names,
//! ports, listen addresses, e-mail addresses in the config and the directory, link
//! placeholders, secrets a source or transport needs), each named by `file:line: key`
//! or by the environment variable the value came from; and warnings (units without a
//! head, whose mail goes to the service centre).
//!
//! It reads the environment (through the function it is given) and the texts of the
//! files; it never opens the store or a network connection.

use super::Loaded;
use std::fmt;

/// One thing `check-config` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub error: bool,
    /// `file:line`, `file`, or `environment SLAWATCH__SECTION__KEY`.
    pub place: String,
    pub key: String,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.place, self.key, self.message)
    }
}

/// Where a configuration key's value came from, for messages.
pub struct Places<'a> {
    /// The config file's name and text (none for the built-in defaults).
    pub file: Option<(&'a str, &'a str)>,
    /// The environment, as `SLAWATCH__…` overrides and secrets are read.
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

impl Places<'_> {
    /// The override variable of `section.key`, when one is set.
    fn var_of(&self, section: &str, key: &str) -> Option<String> {
        let var = format!(
            "SLAWATCH__{}__{}",
            section.replace('.', "__").to_ascii_uppercase(),
            key.to_ascii_uppercase()
        );
        (self.env)(&var).map(|_| var)
    }

    /// Where `section.key` is set: the variable, the line of the file, or the file.
    fn of(&self, section: &str, key: &str) -> String {
        if let Some(var) = self.var_of(section, key) {
            return format!("environment {var}");
        }
        let Some((name, text)) = self.file else {
            return "built-in defaults".into();
        };
        match line_in_section(text, section, key, 0) {
            Some(l) => format!("{name}:{l}"),
            None => name.to_string(),
        }
    }

    /// Where key `key` of the `n`-th `[[array]]` table is set.
    fn of_nth(&self, array: &str, n: usize, key: &str) -> String {
        let Some((name, text)) = self.file else {
            return "built-in defaults".into();
        };
        match line_in_section(text, array, key, n) {
            Some(l) => format!("{name}:{l}"),
            None => name.to_string(),
        }
    }
}

/// The 1-based line that sets `key` inside the `nth` table headed `[section]` or
/// `[[section]]`.
fn line_in_section(text: &str, section: &str, key: &str, nth: usize) -> Option<usize> {
    let mut seen = 0usize;
    let mut inside = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('[') {
            let name = line.trim_matches(|c| c == '[' || c == ']').trim();
            inside = false;
            if name == section {
                inside = seen == nth;
                seen += 1;
            }
            continue;
        }
        if inside {
            let k = line.split('=').next().unwrap_or("").trim();
            if k == key && line.contains('=') {
                return Some(i + 1);
            }
        }
    }
    None
}

/// The 1-based line of the first occurrence of `needle` in `text`.
fn line_of_text(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

fn is_address(a: &str) -> bool {
    a.trim().parse::<lettre::Address>().is_ok()
}

/// The placeholders a case link may use.
pub const LINK_PLACEHOLDERS: [&str; 2] = ["case_id", "source"];

/// The `{names}` in a template that are not among `allowed`.
fn unknown_placeholders<'t>(template: &'t str, allowed: &[&str]) -> Vec<&'t str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push(after);
            break;
        };
        let name = &after[..close];
        if !allowed.contains(&name) {
            out.push(name);
        }
        rest = &after[close + 1..];
    }
    out
}

/// Checks a loaded configuration; `directory_text` is the units file as read.
pub fn check(
    loaded: &Loaded,
    places: &Places<'_>,
    directory_text: Option<(&str, &str)>,
) -> Vec<Finding> {
    let cfg = &loaded.config;
    let calendar = loaded.calendar();
    let mut out = Vec::new();
    let mut err = |place: String, key: &str, message: String| {
        out.push(Finding {
            error: true,
            place,
            key: key.to_string(),
            message,
        })
    };
    // Cron expressions (six fields: seconds first).
    for (section, key, expr) in [
        ("daemon", "evaluate_schedule", &cfg.daemon.evaluate_schedule),
        ("alerts", "digest_schedule", &cfg.alerts.digest_schedule),
        ("alerts", "weekly_schedule", &cfg.alerts.weekly_schedule),
    ] {
        if let Err(e) = crate::scheduler::validate(expr) {
            err(
                places.of(section, key),
                &format!("{section}.{key}"),
                format!("`{expr}`: {e} (six fields: second minute hour day month weekday)"),
            );
        }
    }
    for (i, s) in cfg.source.iter().enumerate() {
        if let Err(e) = crate::scheduler::validate(&s.schedule) {
            err(
                places.of_nth("source", i, "schedule"),
                &format!("source `{}`.schedule", s.name),
                format!(
                    "`{}`: {e} (six fields: second minute hour day month weekday)",
                    s.schedule
                ),
            );
        }
    }
    // Names the daemon matches on.
    let a = &cfg.alerts;
    for (key, value, allowed) in [
        (
            "transport",
            a.transport.as_str(),
            &["file", "smtp", "webhook", "none"][..],
        ),
        (
            "smtp_tls",
            a.smtp_tls.as_str(),
            &["starttls", "tls", "none"][..],
        ),
        (
            "send_window",
            a.send_window.as_str(),
            &["office_hours", "always"][..],
        ),
        ("language", a.language.as_str(), &["vi", "en"][..]),
    ] {
        if !allowed.contains(&value) {
            err(
                places.of("alerts", key),
                &format!("alerts.{key}"),
                format!("`{value}` is not one of {}", allowed.join(", ")),
            );
        }
    }
    if a.transport == "smtp" {
        if a.smtp_port == 0 {
            err(
                places.of("alerts", "smtp_port"),
                "alerts.smtp_port",
                "0 is not a port".into(),
            );
        }
        if a.smtp_host.trim().is_empty() {
            err(
                places.of("alerts", "smtp_host"),
                "alerts.smtp_host",
                "empty".into(),
            );
        }
        // Credentials: both or neither.
        let user = (places.env)(&a.smtp_username_env).is_some();
        let pass = (places.env)(&a.smtp_password_env).is_some();
        if user != pass {
            let (missing, key) = if user {
                (&a.smtp_password_env, "smtp_password_env")
            } else {
                (&a.smtp_username_env, "smtp_username_env")
            };
            err(
                places.of("alerts", key),
                &format!("alerts.{key}"),
                format!("the environment variable `{missing}` is not set (the SMTP user name and password come together)"),
            );
        }
    }
    if a.transport == "webhook" {
        match a.webhook_url.as_deref() {
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => {}
            Some(u) => err(
                places.of("alerts", "webhook_url"),
                "alerts.webhook_url",
                format!("`{u}` is not an http(s) URL"),
            ),
            None => err(
                places.of("alerts", "webhook_url"),
                "alerts.webhook_url",
                "required by transport = \"webhook\"".into(),
            ),
        }
    }
    if a.from.parse::<lettre::message::Mailbox>().is_err() {
        err(
            places.of("alerts", "from"),
            "alerts.from",
            format!(
                "`{}` is not an address (`Name <user@domain>` or `user@domain`)",
                a.from
            ),
        );
    }
    if let Some(o) = a.override_recipient.as_deref().filter(|o| !o.is_empty()) {
        if !is_address(o) {
            err(
                places.of("alerts", "override_recipient"),
                "alerts.override_recipient",
                format!("`{o}` is not an e-mail address"),
            );
        }
    }
    if let Some(t) = &a.link_template {
        let unknown = unknown_placeholders(t, &LINK_PLACEHOLDERS);
        if !unknown.is_empty() {
            err(
                places.of("alerts", "link_template"),
                "alerts.link_template",
                format!(
                    "unknown placeholder {} (known: {{case_id}}, {{source}})",
                    unknown
                        .iter()
                        .map(|u| format!("{{{u}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        } else if !(t.starts_with("http://") || t.starts_with("https://")) {
            err(
                places.of("alerts", "link_template"),
                "alerts.link_template",
                format!("`{t}` is not an http(s) URL"),
            );
        }
    }
    if let Some(u) = cfg.http.public_url.as_deref() {
        let bare = u
            .strip_prefix("https://")
            .or_else(|| u.strip_prefix("http://"))
            .unwrap_or("");
        if bare.is_empty() || bare.contains(['?', '#', ' ', '{']) {
            err(
                places.of("http", "public_url"),
                "http.public_url",
                format!("`{u}` is not an http(s) address (e.g. https://slawatch.tinh.gov.vn)"),
            );
        }
    }
    if cfg.http.listen.parse::<std::net::SocketAddr>().is_err() {
        err(
            places.of("http", "listen"),
            "http.listen",
            format!(
                "`{}` is not an address and port (e.g. 127.0.0.1:9464)",
                cfg.http.listen
            ),
        );
    }
    // Secrets a source needs, read from the environment at its first poll.
    for (i, s) in cfg.source.iter().enumerate() {
        // What the daemon builds at start-up (no connection is opened).
        if let Err(message) = crate::source::build(s, &calendar) {
            err(
                places.of_nth("source", i, "type"),
                &format!("source `{}`", s.name),
                message,
            );
        }
        let needs = match s.kind.as_str() {
            "push" => s.token_env.as_ref().map(|v| ("token_env", v)),
            "http" => match s.auth.as_deref() {
                Some("bearer" | "basic" | "session") => {
                    s.secret_env.as_ref().map(|v| ("secret_env", v))
                }
                _ => None,
            },
            _ => None,
        };
        if let Some((key, var)) = needs {
            if (places.env)(var).is_none() {
                err(
                    places.of_nth("source", i, key),
                    &format!("source `{}`.{key}", s.name),
                    format!("the environment variable `{var}` is not set"),
                );
            }
        }
    }
    // E-mail addresses in the directory.
    let (dir_name, dir_text) = directory_text.unwrap_or(("units", ""));
    let at_dir = |needle: &str| match line_of_text(dir_text, needle) {
        Some(l) => format!("{dir_name}:{l}"),
        None => dir_name.to_string(),
    };
    let mut headless = Vec::new();
    for u in loaded.directory.units() {
        let mut addrs: Vec<(&str, &str)> = Vec::new();
        if let Some(h) = &u.head {
            match h.email.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
                Some(e) => addrs.push(("head.email", e)),
                None => headless.push(u.code.as_str()),
            }
        } else {
            headless.push(u.code.as_str());
        }
        for d in &u.deputies {
            addrs.push(("deputies.email", d.email.as_str()));
        }
        for c in &u.copies {
            addrs.push(("copies", c.as_str()));
        }
        for (key, addr) in addrs {
            if !is_address(addr) {
                err(
                    at_dir(addr),
                    &format!("unit `{}`.{key}", u.code),
                    format!("`{addr}` is not an e-mail address"),
                );
            }
        }
    }
    let centre = crate::alert::service_centre(&loaded.directory);
    let fallback = centre
        .as_ref()
        .map(|c| format!("their mail goes to the service centre ({})", c.email))
        .unwrap_or_else(|| {
            "and no unit is tagged `service_centre`: their mail goes nowhere".into()
        });
    if !headless.is_empty() {
        out.push(Finding {
            error: false,
            place: dir_name.to_string(),
            key: "head.email".into(),
            message: format!(
                "{} unit(s) without a head e-mail: {}; {fallback}",
                headless.len(),
                headless.join(", ")
            ),
        });
    }
    out
}

/// What the configuration sets up, one line each: sources, store, transport, units and
/// recipients.
pub fn summary(loaded: &Loaded) -> Vec<String> {
    let cfg = &loaded.config;
    let sources: Vec<String> = cfg
        .source
        .iter()
        .map(|s| format!("{} ({})", s.name, s.kind))
        .collect();
    let a = &cfg.alerts;
    let transport = match a.transport.as_str() {
        "smtp" => format!("smtp {}:{} ({})", a.smtp_host, a.smtp_port, a.smtp_tls),
        "file" => format!("file → {} (relative to the working directory)", a.file_dir),
        "webhook" => format!("webhook {}", a.webhook_url.as_deref().unwrap_or("-")),
        other => other.to_string(),
    };
    let units = loaded.directory.units();
    let mut recipients: Vec<String> = units
        .iter()
        .flat_map(|u| {
            u.head
                .iter()
                .filter_map(|h| h.email.clone())
                .chain(u.deputies.iter().map(|d| d.email.clone()))
                .chain(u.copies.iter().cloned())
        })
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .collect();
    recipients.sort();
    recipients.dedup();
    vec![
        format!(
            "sources: {}",
            if sources.is_empty() {
                "none".to_string()
            } else {
                format!("{} — {}", sources.len(), sources.join(", "))
            }
        ),
        format!(
            "store: {} (a relative SQLite path is from the working directory)",
            crate::store::redact_url(&cfg.store.url)
        ),
        format!("transport: {transport}, from {}", a.from),
        format!("units: {}, recipients: {}", units.len(), recipients.len()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_found_in_their_section_and_table() {
        let text = "[alerts]\ntransport = \"smpt\"\n\n[[source]]\nname = \"a\"\n[[source]]\nname = \"b\"\nschedule = \"x\"\n";
        assert_eq!(line_in_section(text, "alerts", "transport", 0), Some(2));
        assert_eq!(line_in_section(text, "source", "schedule", 1), Some(8));
        assert_eq!(line_in_section(text, "source", "schedule", 0), None);
    }

    #[test]
    fn unknown_placeholders_are_named() {
        assert!(
            unknown_placeholders("https://x/{case_id}?s={source}", &LINK_PLACEHOLDERS).is_empty()
        );
        assert_eq!(
            unknown_placeholders("https://x/{caseid}", &LINK_PLACEHOLDERS),
            ["caseid"]
        );
    }
}
