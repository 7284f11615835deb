//! The unit directory: every agency or unit that can hold a case, with its code, name,
//! aliases (the names sources write in DonViXuLy), parent, level, head and copies.
//! Loaded from `config/units.toml`:
//!
//! ```toml
//! [[unit]]
//! code = "STP"
//! name = "Sở Tư pháp"
//! aliases = ["Sở Tư Pháp tỉnh Hà Tĩnh"]
//! parent = "UBND-TINH"
//! level = 1                      # 0 the province, 1 departments and communes, …
//! head = { name = "Nguyễn Văn A", email = "giamdoc.stp@example.gov.vn" }
//! copies = ["vanphong.stp@example.gov.vn"]
//! deputies = [{ field = "HT", name = "Trần Thị B", email = "pgd.stp@example.gov.vn" }]
//! ```
//!
//! Names are matched after Unicode NFC normalisation, lower-casing and folding
//! white space, so `Sở Tư pháp` written with combining marks or double spaces still
//! matches. Pure: the caller reads the file.

use crate::catalogue::line_of;
use serde::Deserialize;
use std::collections::HashMap;
use unicode_normalization::UnicodeNormalization;

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deputy {
    /// Field code (lĩnh vực) this deputy handles.
    pub field: String,
    pub name: String,
    pub email: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unit {
    pub code: String,
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub level: u8,
    #[serde(default)]
    pub head: Option<Person>,
    #[serde(default)]
    pub copies: Vec<String>,
    #[serde(default)]
    pub deputies: Vec<Deputy>,
    /// Roles: `service_centre`, `provincial_office`, `province`, `home_affairs` (who
    /// receives what: the monthly report goes to the provincial office and home
    /// affairs).
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Directory {
    units: Vec<Unit>,
    by_code: HashMap<String, usize>,
    by_name: HashMap<String, usize>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{file}:{line}: {message}")]
pub struct DirectoryError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectoryFile {
    #[serde(default)]
    unit: Vec<toml::Spanned<Unit>>,
}

/// The key a name is matched by.
pub fn name_key(name: &str) -> String {
    let nfc: String = name.nfc().collect::<String>().to_lowercase();
    nfc.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Directory {
    pub fn parse(text: &str, file: &str) -> Result<Directory, DirectoryError> {
        let err = |line: usize, message: String| DirectoryError {
            file: file.to_string(),
            line,
            message,
        };
        let parsed: DirectoryFile = toml::from_str(text).map_err(|e| {
            err(
                e.span().map(|s| line_of(text, s.start)).unwrap_or(0),
                e.message().to_string(),
            )
        })?;
        let mut d = Directory::default();
        let mut lines = Vec::new();
        for spanned in parsed.unit {
            let line = line_of(text, spanned.span().start);
            let unit = spanned.into_inner();
            if unit.code.trim().is_empty() {
                return Err(err(line, "`code` is empty".into()));
            }
            let i = d.units.len();
            if d.by_code.insert(unit.code.clone(), i).is_some() {
                return Err(err(
                    line,
                    format!("`code`: unit `{}` is listed twice", unit.code),
                ));
            }
            for name in std::iter::once(&unit.name).chain(unit.aliases.iter()) {
                if let Some(&other) = d.by_name.get(&name_key(name)) {
                    if other != i {
                        return Err(err(
                            line,
                            format!(
                                "`aliases`: `{name}` already names unit `{}`",
                                d.units[other].code
                            ),
                        ));
                    }
                }
                d.by_name.insert(name_key(name), i);
            }
            d.units.push(unit);
            lines.push(line);
        }
        for (unit, line) in d.units.iter().zip(&lines) {
            if let Some(p) = &unit.parent {
                if !d.by_code.contains_key(p) {
                    return Err(err(*line, format!("`parent`: no unit has the code `{p}`")));
                }
            }
        }
        // No cycles in the tree.
        for unit in &d.units {
            let mut seen = 0;
            let mut cur = unit.parent.as_deref();
            while let Some(code) = cur {
                seen += 1;
                if seen > d.units.len() {
                    let line = lines[d.by_code[&unit.code]];
                    return Err(err(
                        line,
                        format!("`parent`: unit `{}` is its own ancestor", unit.code),
                    ));
                }
                cur = d.get(code).and_then(|u| u.parent.as_deref());
            }
        }
        Ok(d)
    }

    /// Resolves a code or a name (or alias) to its unit.
    pub fn resolve(&self, code_or_name: &str) -> Option<&Unit> {
        let s = code_or_name.trim();
        if let Some(&i) = self.by_code.get(s) {
            return Some(&self.units[i]);
        }
        self.by_name.get(&name_key(s)).map(|&i| &self.units[i])
    }

    pub fn get(&self, code: &str) -> Option<&Unit> {
        self.by_code.get(code).map(|&i| &self.units[i])
    }

    pub fn units(&self) -> &[Unit] {
        &self.units
    }

    pub fn len(&self) -> usize {
        self.units.len()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// The unit's ancestors, nearest first.
    pub fn ancestors(&self, code: &str) -> Vec<&Unit> {
        let mut out = Vec::new();
        let mut cur = self.get(code).and_then(|u| u.parent.as_deref());
        while let Some(c) = cur {
            match self.get(c) {
                Some(u) => {
                    out.push(u);
                    cur = u.parent.as_deref();
                }
                None => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
[[unit]]
code = "UBND-TINH"
name = "UBND tỉnh Hà Tĩnh"
level = 0

[[unit]]
code = "STP"
name = "Sở Tư pháp"
aliases = ["Sở Tư Pháp tỉnh Hà Tĩnh"]
parent = "UBND-TINH"
level = 1
head = { name = "Nguyễn Văn A", email = "gd.stp@example.gov.vn" }

[[unit]]
code = "PX"
name = "UBND phường X"
parent = "UBND-TINH"
level = 1
"#;

    #[test]
    fn resolves_codes_names_and_aliases_loosely() {
        let d = Directory::parse(TEXT, "units.toml").unwrap();
        assert_eq!(d.resolve("STP").unwrap().code, "STP");
        assert_eq!(d.resolve("sở tư pháp").unwrap().code, "STP");
        assert_eq!(
            d.resolve("  Sở  Tư Pháp   tỉnh Hà Tĩnh ").unwrap().code,
            "STP"
        );
        // The same name with combining diacritics (NFD).
        let nfd: String = "UBND phường X".nfd().collect();
        assert_ne!(nfd, "UBND phường X");
        assert_eq!(d.resolve(&nfd).unwrap().code, "PX");
        assert!(d.resolve("UBND phường Y").is_none());
        assert_eq!(d.ancestors("STP")[0].code, "UBND-TINH");
    }

    #[test]
    fn rejects_broken_directories_with_the_line() {
        let e = Directory::parse(
            "[[unit]]\ncode = \"A\"\nname = \"a\"\nparent = \"B\"\n",
            "units.toml",
        )
        .unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("`B`"));
        let e = Directory::parse(
            "[[unit]]\ncode = \"A\"\nname = \"a\"\n[[unit]]\ncode = \"B\"\nname = \"A\"\n",
            "units.toml",
        )
        .unwrap_err();
        assert_eq!(e.line, 4);
        let e = Directory::parse(
            "[[unit]]\ncode = \"A\"\nname = \"a\"\nparent = \"B\"\n[[unit]]\ncode = \"B\"\nname = \"b\"\nparent = \"A\"\n",
            "units.toml",
        )
        .unwrap_err();
        assert!(e.message.contains("own ancestor"), "{e}");
    }
}
