//! The unit head's desk (`/desk`): server-rendered pages a head opens from the signed
//! link in their e-mail: the links' signing and the scopes they grant ([`token`]), and
//! the unit and case pages ([`pages`]).
//!
//! It never shows applicant identity and never grants more than the link's scope.

pub mod pages;
pub mod token;

pub use pages::routes;

use crate::directory::Directory;
use chrono::{DateTime, Utc};

/// How e-mails link to the desk: the public address, the signing secret, how long a
/// link lasts, and the directory that says which units a person answers for.
#[derive(Clone)]
pub struct DeskLinks {
    pub base: String,
    pub secret: Vec<u8>,
    pub days: u32,
    pub directory: Directory,
}

/// One person's links, signed for their scope.
pub struct PersonLinks<'a> {
    links: &'a DeskLinks,
    token: String,
    pub units: Vec<String>,
}

impl DeskLinks {
    /// The links of a configuration: `[http] public_url`, or without one the address
    /// the daemon listens on (`listening`, else `http.listen`), signed with `secret`.
    pub fn from_config(
        loaded: &crate::config::Loaded,
        secret: Vec<u8>,
        listening: Option<std::net::SocketAddr>,
    ) -> DeskLinks {
        let http = &loaded.config.http;
        let base = http.public_url.clone().unwrap_or_else(|| match listening {
            Some(a) => format!("http://{a}"),
            None => format!("http://{}", http.listen),
        });
        DeskLinks {
            base,
            secret,
            days: http.desk_link_days,
            directory: loaded.directory.clone(),
        }
    }

    /// The links for `email` at `now`, or none when they answer for no unit.
    pub fn for_person(
        &self,
        email: &str,
        name: &str,
        now: DateTime<Utc>,
    ) -> Option<PersonLinks<'_>> {
        let units = token::units_of(&self.directory, email);
        if units.is_empty() {
            return None;
        }
        let scope = token::Scope {
            who: email.to_string(),
            name: name.to_string(),
            units: units.clone(),
            expires: now.timestamp() + i64::from(self.days) * 86_400,
        };
        Some(PersonLinks {
            token: token::sign(&scope, &self.secret),
            links: self,
            units,
        })
    }
}

impl PersonLinks<'_> {
    fn base(&self) -> &str {
        self.links.base.trim_end_matches('/')
    }

    /// A unit's page, when the link covers it.
    pub fn unit_url(&self, unit: &str) -> Option<String> {
        self.units.iter().any(|u| u == unit).then(|| {
            format!(
                "{}/desk/unit/{}?t={}",
                self.base(),
                pages::url_part(unit),
                self.token
            )
        })
    }

    /// A case's page, when the link covers its unit.
    pub fn case_url(&self, unit: Option<&str>, source: &str, case_id: &str) -> Option<String> {
        let unit = unit?;
        self.units.iter().any(|u| u == unit).then(|| {
            format!(
                "{}{}",
                self.base(),
                pages::case_href(source, case_id, &format!("?t={}", self.token))
            )
        })
    }
}

/// The secret desk links are signed with: the environment variable `var` when set,
/// else one generated once and kept in the store (`desk_secret`), so links work in the
/// default set-up; setting the variable (or deleting the stored one) rotates it and
/// revokes every link.
pub async fn secret(
    store: &std::sync::Arc<dyn crate::store::Store>,
    var: &str,
) -> Result<Vec<u8>, crate::store::StoreError> {
    if let Some(s) = std::env::var(var).ok().filter(|s| !s.is_empty()) {
        return Ok(s.into_bytes());
    }
    if let Some(s) = store.meta_get("desk_secret").await? {
        return Ok(s.into_bytes());
    }
    let mut bytes = [0u8; 32];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| {
            crate::store::StoreError::Config(format!(
                "reading /dev/urandom for the desk secret: {e}"
            ))
        })?;
    let s: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    store.meta_put("desk_secret", &s).await?;
    Ok(s.into_bytes())
}

/// The desk secret without creating one (read-only stores: `notify preview`).
pub async fn existing_secret(
    store: &std::sync::Arc<dyn crate::store::Store>,
    var: &str,
) -> Option<Vec<u8>> {
    if let Some(s) = std::env::var(var).ok().filter(|s| !s.is_empty()) {
        return Some(s.into_bytes());
    }
    store
        .meta_get("desk_secret")
        .await
        .ok()
        .flatten()
        .map(String::into_bytes)
}
