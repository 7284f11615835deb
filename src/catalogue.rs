//! The procedure catalogue: each procedure's code, name and legal duration (its
//! published time limit), an optional separate duration for online dossiers, and an
//! optional step template. Loaded from `config/procedures.toml`:
//!
//! ```toml
//! [[procedure]]
//! code = "1.004227"
//! name = "Cấp giấy phép xây dựng nhà ở riêng lẻ"
//! field = "G09-XD02"
//! duration = "15 workdays"
//! online_duration = "12 workdays"   # optional
//! steps = [{ title = "Thẩm định", duration = "10 workdays" }]   # optional
//! ```
//!
//! Parsing is pure: the caller passes the text and the file name for messages.

use crate::sla::duration::Duration;
use crate::sla::model::{Channel, Kind};
use serde::Deserialize;
use std::collections::HashMap;

/// One step of a procedure's template.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepTemplate {
    /// Matched against a step's title (NoiDungXuLy), ignoring case and spaces around.
    pub title: String,
    /// The step's own time limit, counted from its start, when the source gives no
    /// step deadline.
    pub duration: Duration,
}

/// A procedure (thủ tục hành chính) with its legal duration.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Procedure {
    pub code: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub kind: Option<Kind>,
    pub duration: Duration,
    #[serde(default)]
    pub online_duration: Option<Duration>,
    #[serde(default)]
    pub steps: Vec<StepTemplate>,
}

impl Procedure {
    /// The template step whose title matches.
    pub fn step_template(&self, title: &str) -> Option<&StepTemplate> {
        let title = title.trim();
        self.steps
            .iter()
            .find(|t| t.title.trim().to_lowercase() == title.to_lowercase())
    }

    /// The legal duration for a channel: the online one for online dossiers when given.
    pub fn duration_for(&self, channel: Option<Channel>) -> Duration {
        match (channel, self.online_duration) {
            (Some(Channel::Online), Some(d)) => d,
            _ => self.duration,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalogue {
    by_code: HashMap<String, Procedure>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{file}:{line}: {message}")]
pub struct CatalogueError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    #[serde(default)]
    procedure: Vec<toml::Spanned<Procedure>>,
}

/// 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

impl Catalogue {
    pub fn parse(text: &str, file: &str) -> Result<Catalogue, CatalogueError> {
        let parsed: CatalogueFile = toml::from_str(text).map_err(|e| CatalogueError {
            file: file.to_string(),
            line: e.span().map(|s| line_of(text, s.start)).unwrap_or(0),
            message: e.message().to_string(),
        })?;
        let mut by_code = HashMap::new();
        for spanned in parsed.procedure {
            let line = line_of(text, spanned.span().start);
            let p = spanned.into_inner();
            if p.code.trim().is_empty() {
                return Err(CatalogueError {
                    file: file.into(),
                    line,
                    message: "`code` is empty".into(),
                });
            }
            if let Some(old) = by_code.insert(p.code.clone(), p) {
                return Err(CatalogueError {
                    file: file.into(),
                    line,
                    message: format!("`code`: procedure `{}` is listed twice", old.code),
                });
            }
        }
        Ok(Catalogue { by_code })
    }

    pub fn get(&self, code: &str) -> Option<&Procedure> {
        self.by_code.get(code)
    }

    /// The procedure a case names by its code, if the catalogue has it: the one lookup
    /// every evaluation goes through.
    pub fn for_case(&self, case: &crate::sla::model::Case) -> Option<&Procedure> {
        case.procedure_code.as_deref().and_then(|c| self.get(c))
    }

    pub fn len(&self) -> usize {
        self.by_code.len()
    }

    pub fn procedures(&self) -> impl Iterator<Item = &Procedure> {
        self.by_code.values()
    }

    pub fn is_empty(&self) -> bool {
        self.by_code.is_empty()
    }

    pub fn insert(&mut self, p: Procedure) {
        self.by_code.insert(p.code.clone(), p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_procedures_with_online_durations_and_steps() {
        let text = r#"
[[procedure]]
code = "1.004227"
name = "Cấp giấy phép xây dựng"
duration = "15 workdays"
online_duration = "12 workdays"
steps = [{ title = "Thẩm định", duration = "10 workdays" }]

[[procedure]]
code = "2.000635"
duration = "none"
"#;
        let c = Catalogue::parse(text, "procedures.toml").unwrap();
        assert_eq!(c.len(), 2);
        let p = c.get("1.004227").unwrap();
        assert_eq!(
            p.duration_for(Some(Channel::Online)),
            Duration::workdays(12)
        );
        assert_eq!(
            p.duration_for(Some(Channel::InPerson)),
            Duration::workdays(15)
        );
        assert_eq!(p.duration_for(None), Duration::workdays(15));
        assert_eq!(p.steps[0].duration, Duration::workdays(10));
        assert_eq!(c.get("2.000635").unwrap().duration, Duration::None);
    }

    #[test]
    fn errors_name_the_line_and_key() {
        let text = "[[procedure]]\ncode = \"1.1\"\nduration = \"15 weeks\"\n";
        let e = Catalogue::parse(text, "procedures.toml").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("15 weeks"), "{e}");

        let text = "[[procedure]]\ncode = \"1.1\"\nduration = \"1 days\"\n\n[[procedure]]\ncode = \"1.1\"\nduration = \"2 days\"\n";
        let e = Catalogue::parse(text, "procedures.toml").unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        assert!(e.message.contains("twice"));

        let text = "[[procedure]]\ncode = \"1.1\"\nduration = \"1 days\"\nduraton = \"x\"\n";
        let e = Catalogue::parse(text, "procedures.toml").unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("duraton"), "{e}");
    }
}
