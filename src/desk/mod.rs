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
    /// The links a configuration asks for: `[http] public_url` and the secret in the
    /// environment variable `desk_secret_env`; none when either is missing.
    pub fn from_config(loaded: &crate::config::Loaded) -> Option<DeskLinks> {
        let http = &loaded.config.http;
        let base = http.public_url.clone()?;
        let secret = std::env::var(&http.desk_secret_env)
            .ok()
            .filter(|s| !s.is_empty())?;
        Some(DeskLinks {
            base,
            secret: secret.into_bytes(),
            days: http.desk_link_days,
            directory: loaded.directory.clone(),
        })
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
