//! The `http` source: a JSON API over HTTP(S).
//!
//! The URL template may hold `{cursor}` (the change time to read from, as
//! `cursor_format` says: the newest change time stored minus the overlap, or
//! `initial_cursor` on the first poll) and `{page}`. Pages are followed through the
//! `next_page` JSON pointer when given (a link, or a page number put in `{page}`),
//! else `{page}` counts up from `first_page` until a page is empty. A pointer value
//! that is neither, or more than `max_pages` pages, is an error of the poll, never
//! its quiet end: the cursor stays at the last record stored. Records sit at the `records` pointer (default: the body
//! when it is an array, else `/data`). Auth: none, bearer or basic (secret from the
//! environment), or a DVCQG-style session: POST `{username, password}` to
//! `login_url`, take the token from `/session` (or `/access_token`, `/token`), send it
//! as a bearer token, and log in again when it is refused. Every request has a
//! timeout; network faults, 5xx and 429 are retried with exponential back-off and
//! jitter.

use super::{Page, Poll, PollContext, RawRecord, Source, SourceConfig, SourceError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;
use tokio::sync::Mutex;

enum Auth {
    None,
    Bearer(String),
    Basic(String, String),
    Session {
        login_url: String,
        username: String,
        password: String,
        token: Mutex<Option<String>>,
    },
}

pub struct HttpSource {
    client: reqwest::Client,
    template: String,
    records: Option<String>,
    next_page: Option<String>,
    first_page: u32,
    max_pages: u32,
    record_url: Option<String>,
    auth: Auth,
    retries: u32,
    cursor_format: CursorFormat,
}

#[derive(Clone, Copy)]
enum CursorFormat {
    Rfc3339,
    Dvcqg,
}

fn secret(cfg: &SourceConfig) -> Result<String, String> {
    let var = cfg
        .secret_env
        .as_deref()
        .ok_or("`secret_env` names the environment variable that holds the secret")?;
    std::env::var(var)
        .map_err(|_| format!("the environment variable `{var}` (secret_env) is not set"))
}

impl HttpSource {
    pub fn new(cfg: &SourceConfig) -> Result<HttpSource, String> {
        let template = cfg
            .url
            .clone()
            .ok_or("`url` is required for an http source")?;
        if !(template.starts_with("http://") || template.starts_with("https://")) {
            return Err(format!("url `{template}` is not http(s)"));
        }
        if let Some(r) = &cfg.record_url {
            if !(r.starts_with("http://") || r.starts_with("https://")) || !r.contains("{case_id}")
            {
                return Err(format!(
                    "record_url `{r}` must be an http(s) URL with `{{case_id}}` in it"
                ));
            }
        }
        let auth = match cfg.auth.as_deref().unwrap_or("none") {
            "none" => Auth::None,
            "bearer" => Auth::Bearer(secret(cfg)?),
            "basic" => Auth::Basic(
                cfg.username
                    .clone()
                    .ok_or("`username` is required for basic auth")?,
                secret(cfg)?,
            ),
            "session" => Auth::Session {
                login_url: cfg
                    .login_url
                    .clone()
                    .ok_or("`login_url` is required for session auth")?,
                username: cfg
                    .username
                    .clone()
                    .ok_or("`username` is required for session auth")?,
                password: secret(cfg)?,
                token: Mutex::new(None),
            },
            other => {
                return Err(format!(
                    "auth `{other}` is not one of none, bearer, basic, session"
                ))
            }
        };
        let cursor_format = match cfg.cursor_format.as_deref().unwrap_or("rfc3339") {
            "rfc3339" => CursorFormat::Rfc3339,
            "dvcqg" => CursorFormat::Dvcqg,
            other => {
                return Err(format!(
                    "cursor_format `{other}` is neither `rfc3339` nor `dvcqg`"
                ))
            }
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_seconds.max(1)))
            .connect_timeout(Duration::from_secs(cfg.timeout_seconds.clamp(1, 10)))
            .user_agent(concat!("slawatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(HttpSource {
            client,
            template,
            records: cfg.records.clone(),
            next_page: cfg.next_page.clone(),
            first_page: cfg.first_page.unwrap_or(1),
            max_pages: cfg.max_pages.unwrap_or(1000),
            record_url: cfg.record_url.clone(),
            auth,
            retries: cfg.retries.unwrap_or(3),
            cursor_format,
        })
    }

    fn format_cursor(&self, t: DateTime<Utc>, ctx: &PollContext<'_>) -> String {
        match self.cursor_format {
            CursorFormat::Rfc3339 => crate::timefmt::rfc3339(t, ctx.calendar),
            CursorFormat::Dvcqg => ctx.calendar.local(t).format("%Y%m%d%H%M%S").to_string(),
        }
    }

    async fn login(&self) -> Result<String, SourceError> {
        let Auth::Session {
            login_url,
            username,
            password,
            token,
        } = &self.auth
        else {
            return Err(SourceError::Response("not a session source".into()));
        };
        let resp = self
            .client
            .post(login_url)
            .json(&serde_json::json!({"username": username, "password": password}))
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(SourceError::Status {
                status: status.as_u16(),
                url: login_url.clone(),
            });
        }
        let v: Value = resp
            .json()
            .await
            .map_err(|e| SourceError::Response(format!("login: {e}")))?;
        let t = ["/session", "/access_token", "/token"]
            .iter()
            .find_map(|p| v.pointer(p).and_then(Value::as_str))
            .ok_or_else(|| SourceError::Response("login: no `session` in the answer".into()))?
            .to_string();
        *token.lock().await = Some(t.clone());
        Ok(t)
    }

    /// One GET with auth, retried on transient faults.
    async fn get(&self, url: &str) -> Result<Value, SourceError> {
        let mut attempt = 0;
        let mut relogged = false;
        loop {
            let result = self.get_once(url).await;
            match result {
                Err(SourceError::Status { status: 401, .. })
                    if matches!(self.auth, Auth::Session { .. }) && !relogged =>
                {
                    relogged = true;
                    self.login().await?;
                }
                Err(e) if e.transient() && attempt < self.retries => {
                    attempt += 1;
                    let base = 250u64 << attempt.min(8);
                    let jitter = jitter();
                    let delay = (base as f64 * (0.5 + jitter)) as u64;
                    tracing::debug!(url = %redact_query(url), attempt, delay_ms = delay, error = %e, "retrying");
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                other => return other,
            }
        }
    }

    async fn get_once(&self, url: &str) -> Result<Value, SourceError> {
        let mut req = self.client.get(url);
        req = match &self.auth {
            Auth::None => req,
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::Basic(u, p) => req.basic_auth(u, Some(p)),
            Auth::Session { token, .. } => {
                let current = token.lock().await.clone();
                let t = match current {
                    Some(t) => t,
                    None => self.login().await?,
                };
                req.bearer_auth(t)
            }
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        if status != StatusCode::OK {
            return Err(SourceError::Status {
                status: status.as_u16(),
                url: redact_query(url),
            });
        }
        let text = resp.text().await.map_err(transport)?;
        serde_json::from_str(&text)
            .map_err(|e| SourceError::Response(format!("{}: not JSON: {e}", redact_query(url))))
    }

    /// Takes the records out of a page (no copy).
    fn page_records(&self, page: &mut Value) -> Result<Vec<Value>, SourceError> {
        let found = match &self.records {
            Some(p) => page.pointer_mut(p),
            None if page.is_array() => Some(page),
            None => page.pointer_mut("/data"),
        };
        match found {
            Some(Value::Array(a)) => Ok(std::mem::take(a)),
            Some(Value::Null) | None => Ok(Vec::new()),
            Some(_) => Err(SourceError::Response(
                "the records pointer does not point at an array".into(),
            )),
        }
    }
}

/// A number in [0, 1) that differs between calls and processes, to spread retries.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    (h.finish() % 1000) as f64 / 1000.0
}

fn transport(e: reqwest::Error) -> SourceError {
    if e.is_timeout() {
        SourceError::Transport(format!("timed out: {e}"))
    } else {
        SourceError::Transport(e.without_url().to_string())
    }
}

/// A URL without its query string (which may carry tokens), for messages.
fn redact_query(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_string()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[async_trait]
impl Source for HttpSource {
    async fn poll(&self, cursor: Option<&str>, ctx: &PollContext<'_>) -> Result<Poll, SourceError> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let produce = self.poll_pages(cursor, ctx, tx);
        let collect = async {
            let mut records = Vec::new();
            while let Some(page) = rx.recv().await {
                records.extend(page.records);
            }
            records
        };
        let (cursor, records) = tokio::join!(produce, collect);
        Ok(Poll {
            records,
            cursor: cursor?,
            files: Vec::new(),
        })
    }

    fn cursor_from_records(&self) -> bool {
        true
    }

    fn fetches_by_id(&self) -> bool {
        self.record_url.is_some()
    }

    async fn fetch_one(
        &self,
        case_id: &str,
        _ctx: &PollContext<'_>,
    ) -> Result<Vec<RawRecord>, SourceError> {
        let Some(t) = &self.record_url else {
            return Err(SourceError::Response("no record_url".into()));
        };
        let url = t.replace("{case_id}", &encode(case_id));
        let mut body = self.get(&url).await?;
        let origin = format!("record {case_id}");
        let records = match &body {
            Value::Array(_) => self.page_records(&mut body)?,
            Value::Object(_) => match self.page_records(&mut body) {
                Ok(r) if !r.is_empty() => r,
                _ => vec![body],
            },
            _ => {
                return Err(SourceError::Response(format!(
                    "{}: not a record",
                    redact_query(&url)
                )))
            }
        };
        Ok(records
            .into_iter()
            .map(|v| RawRecord::json(v, origin.clone()))
            .collect())
    }

    async fn poll_pages(
        &self,
        _cursor: Option<&str>,
        ctx: &PollContext<'_>,
        pages: tokio::sync::mpsc::Sender<Page>,
    ) -> Result<Option<String>, SourceError> {
        let cursor_text = encode(&self.format_cursor(ctx.since, ctx));
        let base = self.template.replace("{cursor}", &cursor_text);
        let mut url = base.replace("{page}", &self.first_page.to_string());
        let mut page_no = self.first_page;
        let mut read = 0u32;
        loop {
            if read == self.max_pages {
                return Err(SourceError::Response(format!(
                    "max_pages ({}) reached with more pages to read: the rest is read by the next poll, \
                     from the last record stored; raise max_pages if this repeats",
                    self.max_pages
                )));
            }
            let mut page = self.get(&url).await?;
            read += 1;
            let records = self.page_records(&mut page)?;
            let count = records.len();
            let next = match &self.next_page {
                Some(p) => match next_of(page.pointer(p), &url)? {
                    Next::End => None,
                    Next::Url(u) => Some(u),
                    Next::Number(n) if self.template.contains("{page}") => {
                        page_no = n;
                        Some(base.replace("{page}", &n.to_string()))
                    }
                    Next::Number(n) => {
                        return Err(SourceError::Response(format!(
                            "next_page `{p}` is the page number {n}, but url has no {{page}} to put it in"
                        )))
                    }
                },
                None if self.template.contains("{page}") && count > 0 => {
                    page_no += 1;
                    Some(base.replace("{page}", &page_no.to_string()))
                }
                None => None,
            };
            if count > 0 {
                let records = records
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| RawRecord::json(v, format!("page {read} [{i}]")))
                    .collect();
                pages
                    .send(Page {
                        records,
                        files: Vec::new(),
                    })
                    .await
                    .map_err(|_| SourceError::Transport("storing stopped".into()))?;
            }
            match next {
                Some(u) if u == url => {
                    return Err(SourceError::Response(format!(
                        "the next page of {} is the same page",
                        redact_query(&url)
                    )))
                }
                Some(u) => url = u,
                None => break,
            }
        }
        // The daemon's cursor follows the records' change times (`cursor_from_records`).
        Ok(None)
    }
}

/// What a page's next-page pointer says.
#[derive(Debug, PartialEq)]
enum Next {
    End,
    Url(String),
    Number(u32),
}

/// Reads a next-page pointer's value: absent, `null` or `""` ends the poll; a number
/// (or a string of digits) is a page number for `{page}`; another string is a link,
/// absolute or relative to `current`. Anything else is an error, never an end.
fn next_of(v: Option<&Value>, current: &str) -> Result<Next, SourceError> {
    let bad = |v: &Value| {
        SourceError::Response(format!(
            "the next-page pointer holds `{v}`, which is neither a link nor a page number"
        ))
    };
    match v {
        None | Some(Value::Null) => Ok(Next::End),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Next::End),
        Some(Value::String(s)) if s.trim().bytes().all(|b| b.is_ascii_digit()) => s
            .trim()
            .parse()
            .map(Next::Number)
            .map_err(|_| bad(&Value::String(s.clone()))),
        Some(Value::String(s)) if s.starts_with("http://") || s.starts_with("https://") => {
            Ok(Next::Url(s.clone()))
        }
        Some(Value::String(s)) => Ok(Next::Url(join_url(current, s))),
        Some(v @ Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Next::Number)
            .ok_or_else(|| bad(v)),
        Some(v) => Err(bad(v)),
    }
}

/// Resolves a relative next-page link against the current URL.
fn join_url(current: &str, rel: &str) -> String {
    if let Some(path) = rel.strip_prefix('/') {
        let scheme_end = current.find("://").map(|i| i + 3).unwrap_or(0);
        let host_end = current[scheme_end..]
            .find('/')
            .map(|i| scheme_end + i)
            .unwrap_or(current.len());
        format!("{}/{path}", &current[..host_end])
    } else if rel.starts_with('?') {
        format!("{}{rel}", redact_query(current))
    } else {
        let dir = current.rsplit_once('/').map(|(d, _)| d).unwrap_or(current);
        format!("{dir}/{rel}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_links_resolve() {
        assert_eq!(
            join_url("http://h:1/api/hoso?page=1", "/api/hoso?page=2"),
            "http://h:1/api/hoso?page=2"
        );
        assert_eq!(
            join_url("http://h:1/api/hoso?page=1", "?page=2"),
            "http://h:1/api/hoso?page=2"
        );
        assert_eq!(
            join_url("http://h:1/api/hoso", "next"),
            "http://h:1/api/next"
        );
    }

    #[test]
    fn next_page_pointers_are_links_numbers_or_errors() {
        let cur = "http://h:1/api/hoso?page=1";
        let v = |j: Value| next_of(Some(&j), cur);
        assert_eq!(next_of(None, cur).unwrap(), Next::End);
        assert_eq!(v(Value::Null).unwrap(), Next::End);
        assert_eq!(v(serde_json::json!("")).unwrap(), Next::End);
        assert_eq!(v(serde_json::json!(2)).unwrap(), Next::Number(2));
        assert_eq!(v(serde_json::json!("3")).unwrap(), Next::Number(3));
        assert_eq!(
            v(serde_json::json!("?page=2")).unwrap(),
            Next::Url("http://h:1/api/hoso?page=2".into())
        );
        assert_eq!(
            v(serde_json::json!("https://x/y")).unwrap(),
            Next::Url("https://x/y".into())
        );
        for bad in [
            serde_json::json!(true),
            serde_json::json!(false),
            serde_json::json!(-1),
            serde_json::json!(2.5),
            serde_json::json!({"href": "/p2"}),
            serde_json::json!([2]),
        ] {
            assert!(v(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors_are_url_encoded() {
        assert_eq!(
            encode("2024-03-01T08:00:00+07:00"),
            "2024-03-01T08%3A00%3A00%2B07%3A00"
        );
    }
}
