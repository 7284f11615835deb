//! `slawatch units import` and `slawatch procedures import`: the unit directory and the
//! procedure catalogue from the spreadsheets provinces keep (CSV or XLSX), written as
//! `units.toml` / `procedures.toml`.
//!
//! The first row names the columns, in English or Vietnamese (matched without case,
//! accents or spacing: "Mã đơn vị", "ma don vi" and "code" are one column); unknown
//! columns are refused, so a misspelt header is not silently dropped. Every row is
//! checked — required cells, numbers, e-mail addresses, tags, parents that exist,
//! durations that parse, codes listed once — and each fault is reported as
//! `file:line:column (header): what is wrong`; a file with any fault writes nothing.
//! The TOML written is parsed back by the loader before it is returned.

use crate::catalogue::Catalogue;
use crate::directory::Directory;
use crate::sla::duration::Duration;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;
use unicode_normalization::UnicodeNormalization;

/// One cell as read, with where it is for messages.
#[derive(Clone, Debug)]
struct Cell {
    text: String,
    /// Whether a spreadsheet stored it as a number (codes must be text).
    numeric: bool,
}

/// A table read from a file: its header and rows, with the line of each row.
struct Table {
    file: String,
    xlsx: bool,
    header_line: usize,
    header: Vec<String>,
    rows: Vec<(usize, Vec<Cell>)>,
}

/// A fault in the input, pointing at its cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError(pub String);

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Everything wrong with a file (never only the first fault).
#[derive(Debug)]
pub struct ImportErrors(pub Vec<ImportError>);

impl std::fmt::Display for ImportErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ImportErrors {}

/// The key a header is matched by: NFD without combining marks, đ → d, lower case,
/// letters and digits only.
fn header_key(h: &str) -> String {
    h.nfd()
        .filter(|c| !('\u{300}'..='\u{36f}').contains(c))
        .map(|c| match c {
            'đ' | 'Đ' => 'd',
            c => c,
        })
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

fn column_letter(mut i: usize) -> String {
    let mut s = String::new();
    i += 1;
    while i > 0 {
        let r = (i - 1) % 26;
        s.insert(0, (b'A' + r as u8) as char);
        i = (i - 1) / 26;
    }
    s
}

fn read_table(path: &Path) -> Result<Table, ImportErrors> {
    let file = path.display().to_string();
    let one = |m: String| ImportErrors(vec![ImportError(m)]);
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "csv" => {
            let bytes =
                std::fs::read(path).map_err(|e| one(format!("{file}: cannot read: {e}")))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| one(format!("{file}: not UTF-8 (save the CSV as UTF-8)")))?;
            let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
            let delimiter = sniff_delimiter(text);
            let mut rdr = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .delimiter(delimiter)
                .from_reader(text.as_bytes());
            let mut lines = Vec::new();
            for (i, rec) in rdr.records().enumerate() {
                let rec = rec.map_err(|e| one(format!("{file}: {e}")))?;
                let line = rec.position().map(|p| p.line() as usize).unwrap_or(i + 1);
                let cells = rec
                    .iter()
                    .map(|t| Cell {
                        text: t.trim().to_string(),
                        numeric: false,
                    })
                    .collect();
                lines.push((line, cells));
            }
            Ok(Table::from_lines(file, false, lines))
        }
        "xlsx" | "xlsm" | "xls" | "ods" => {
            use calamine::{Data, Reader};
            let mut wb = calamine::open_workbook_auto(path)
                .map_err(|e| one(format!("{file}: cannot read the workbook: {e}")))?;
            let range = wb
                .worksheet_range_at(0)
                .ok_or_else(|| one(format!("{file}: the workbook has no sheet")))?
                .map_err(|e| one(format!("{file}: cannot read the first sheet: {e}")))?;
            let (first_row, first_col) = range.start().unwrap_or((0, 0));
            let lines = range.rows().enumerate().map(|(i, r)| {
                let blank = (0..first_col).map(|_| Cell {
                    text: String::new(),
                    numeric: false,
                });
                let cells = blank
                    .chain(r.iter().map(|d| Cell {
                        text: d.to_string().trim().to_string(),
                        numeric: matches!(d, Data::Int(_) | Data::Float(_)),
                    }))
                    .collect();
                (first_row as usize + i + 1, cells)
            });
            Ok(Table::from_lines(file, true, lines.collect()))
        }
        _ => Err(one(format!(
            "{file}: not a .csv or .xlsx file (save the sheet as one of them)"
        ))),
    }
}

/// `,` unless the header line has more `;` (spreadsheets in Vietnamese locales often
/// save with `;`).
fn sniff_delimiter(text: &str) -> u8 {
    let first = text.lines().next().unwrap_or("");
    if first.matches(';').count() > first.matches(',').count() {
        b';'
    } else {
        b','
    }
}

/// The columns one import knows: canonical name, accepted headers, required.
struct Columns {
    known: &'static [(&'static str, &'static [&'static str], bool)],
}

/// Where each known column is in a table.
struct Layout {
    at: HashMap<&'static str, usize>,
}

impl Columns {
    fn layout(&self, t: &Table) -> Result<Layout, ImportErrors> {
        let mut at = HashMap::new();
        let mut errors = Vec::new();
        for (i, h) in t.header.iter().enumerate() {
            if h.trim().is_empty() {
                continue;
            }
            let k = header_key(h);
            match self.known.iter().find(|(name, aliases, _)| {
                header_key(name) == k || aliases.iter().any(|a| header_key(a) == k)
            }) {
                Some((name, _, _)) => {
                    if at.insert(*name, i).is_some() {
                        errors.push(ImportError(format!(
                            "{}:{}:{}: column `{h}` is the same as an earlier one ({name})",
                            t.file,
                            t.header_line,
                            t.col(i)
                        )));
                    }
                }
                None => errors.push(ImportError(format!(
                    "{}:{}:{}: unknown column `{h}`; the columns are: {}",
                    t.file,
                    t.header_line,
                    t.col(i),
                    self.known
                        .iter()
                        .map(|(n, a, _)| format!("{n} ({})", a.first().unwrap_or(n)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            }
        }
        for (name, aliases, required) in self.known {
            if *required && !at.contains_key(name) {
                errors.push(ImportError(format!(
                    "{}:{}: the column `{name}` (\"{}\") is missing",
                    t.file,
                    t.header_line,
                    aliases.first().unwrap_or(name)
                )));
            }
        }
        if errors.is_empty() {
            Ok(Layout { at })
        } else {
            Err(ImportErrors(errors))
        }
    }
}

impl Table {
    /// The first non-empty line is the header; the other non-empty lines are rows.
    fn from_lines(file: String, xlsx: bool, lines: Vec<(usize, Vec<Cell>)>) -> Table {
        let mut lines = lines
            .into_iter()
            .filter(|(_, cells)| cells.iter().any(|c| !c.text.is_empty()));
        let (header_line, header) = lines
            .next()
            .map(|(line, cells)| (line, cells.into_iter().map(|c| c.text).collect()))
            .unwrap_or((1, Vec::new()));
        Table {
            file,
            xlsx,
            header_line,
            header,
            rows: lines.collect(),
        }
    }

    /// The column's name in messages: a letter in a spreadsheet, a number in a CSV.
    fn col(&self, i: usize) -> String {
        if self.xlsx {
            column_letter(i)
        } else {
            (i + 1).to_string()
        }
    }
}

/// One row's cells by column name, and a place to put its faults.
struct Row<'a> {
    table: &'a Table,
    layout: &'a Layout,
    line: usize,
    cells: &'a [Cell],
    errors: &'a mut Vec<ImportError>,
}

impl Row<'_> {
    fn cell(&self, name: &str) -> Option<&Cell> {
        let i = *self.layout.at.get(name)?;
        self.cells.get(i).filter(|c| !c.text.is_empty())
    }

    fn get(&self, name: &str) -> Option<String> {
        self.cell(name).map(|c| c.text.clone())
    }

    fn fault(&mut self, name: &str, message: String) {
        let i = self.layout.at.get(name).copied().unwrap_or(0);
        let header = self.table.header.get(i).cloned().unwrap_or_default();
        self.errors.push(ImportError(format!(
            "{}:{}:{} ({header}): {message}",
            self.table.file,
            self.line,
            self.table.col(i)
        )));
    }

    fn required(&mut self, name: &str) -> Option<String> {
        let v = self.get(name);
        if v.is_none() {
            self.fault(name, "is empty; it is required".into());
        }
        v
    }

    /// The row's code, required and listed once (`codes`: code → first line).
    fn code(&mut self, what: &str, codes: &mut HashMap<String, usize>) -> Option<String> {
        let code = self.required("code")?;
        if let Some(first) = codes.insert(code.clone(), self.line) {
            self.fault(
                "code",
                format!("{what} `{code}` is listed twice (first on line {first})"),
            );
        }
        Some(code)
    }

    /// A list cell: items separated by `;` or new lines.
    fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|s| {
                s.split([';', '\n'])
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn quote_list(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| quote(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn is_email(s: &str) -> bool {
    s.parse::<lettre::Address>().is_ok()
}

const UNIT_COLUMNS: Columns = Columns {
    known: &[
        ("code", &["Mã đơn vị", "Mã", "ma_don_vi"], true),
        ("name", &["Tên đơn vị", "Tên"], true),
        ("aliases", &["Tên gọi khác", "Tên khác", "Bí danh"], false),
        (
            "parent",
            &["Đơn vị cấp trên", "Mã đơn vị cấp trên", "Cấp trên"],
            false,
        ),
        ("level", &["Cấp", "Cấp đơn vị"], false),
        (
            "head_name",
            &["Người đứng đầu", "Thủ trưởng", "Họ tên người đứng đầu"],
            false,
        ),
        (
            "head_email",
            &[
                "Email người đứng đầu",
                "Thư điện tử người đứng đầu",
                "Email",
            ],
            false,
        ),
        ("copies", &["Email nhận bản sao", "Đồng gửi", "CC"], false),
        (
            "deputies",
            &["Cấp phó theo lĩnh vực", "Phó phụ trách lĩnh vực"],
            false,
        ),
        ("tags", &["Vai trò", "Nhãn"], false),
    ],
};

/// The tags a unit may carry, and what each one does.
pub const UNIT_TAGS: &[&str] = &[
    "service_centre",
    "provincial_office",
    "province",
    "home_affairs",
];

/// Reads a unit sheet and returns the text of `units.toml`.
pub fn units(path: &Path) -> Result<String, ImportErrors> {
    let t = read_table(path)?;
    let layout = UNIT_COLUMNS.layout(&t)?;
    let mut errors = Vec::new();
    let mut out = String::from(
        "# Unit directory, imported by `slawatch units import`. Reloaded on SIGHUP and when\n# this file changes.\n",
    );
    let mut codes: HashMap<String, usize> = HashMap::new();
    let mut parents: Vec<(usize, String)> = Vec::new();
    for (line, cells) in &t.rows {
        let mut r = Row {
            table: &t,
            layout: &layout,
            line: *line,
            cells,
            errors: &mut errors,
        };
        let code = r.code("unit", &mut codes);
        let name = r.required("name");
        let level = match r.get("level") {
            None => None,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= 9 => Some(n),
                _ => {
                    r.fault("level", format!("`{l}` is not a level 0–9 (0 the province, 1 departments and districts, 2 communes)"));
                    None
                }
            },
        };
        let head_email = r.get("head_email");
        if let Some(e) = &head_email {
            if !is_email(e) {
                r.fault("head_email", format!("`{e}` is not an e-mail address"));
            }
        }
        let copies = r.list("copies");
        for c in &copies {
            if !is_email(c) {
                r.fault("copies", format!("`{c}` is not an e-mail address"));
            }
        }
        let mut tags = r.list("tags");
        for tag in tags.iter_mut() {
            *tag = tag.to_lowercase().replace([' ', '-'], "_");
            if !UNIT_TAGS.contains(&tag.as_str()) {
                let bad = tag.clone();
                r.fault(
                    "tags",
                    format!("`{bad}` is not a tag: one of {}", UNIT_TAGS.join(", ")),
                );
            }
        }
        let mut deputies = Vec::new();
        for d in r.list("deputies") {
            match parse_deputy(&d) {
                Some(x) => deputies.push(x),
                None => r.fault(
                    "deputies",
                    format!("`{d}` is not `FIELD: Name <email>` (e.g. `HT: Trần Thị B <pgd@stp.gov.vn>`)"),
                ),
            }
        }
        let parent = r.get("parent");
        if let Some(p) = &parent {
            parents.push((*line, p.clone()));
        }
        let (Some(code), Some(name)) = (code, name) else {
            continue;
        };
        let _ = writeln!(
            out,
            "\n[[unit]]\ncode = {}\nname = {}",
            quote(&code),
            quote(&name)
        );
        let aliases = r.list("aliases");
        if !aliases.is_empty() {
            let _ = writeln!(out, "aliases = {}", quote_list(&aliases));
        }
        if let Some(p) = &parent {
            let _ = writeln!(out, "parent = {}", quote(p));
        }
        if let Some(l) = level {
            let _ = writeln!(out, "level = {l}");
        }
        match (r.get("head_name"), &head_email) {
            (Some(n), Some(e)) => {
                let _ = writeln!(
                    out,
                    "head = {{ name = {}, email = {} }}",
                    quote(&n),
                    quote(e)
                );
            }
            (Some(n), None) => {
                let _ = writeln!(out, "head = {{ name = {} }}", quote(&n));
            }
            (None, Some(e)) => {
                let _ = writeln!(
                    out,
                    "head = {{ name = {}, email = {} }}",
                    quote(&name),
                    quote(e)
                );
            }
            (None, None) => {}
        }
        if !copies.is_empty() {
            let _ = writeln!(out, "copies = {}", quote_list(&copies));
        }
        if !deputies.is_empty() {
            let items: Vec<String> = deputies
                .iter()
                .map(|(f, n, e)| {
                    format!(
                        "{{ field = {}, name = {}, email = {} }}",
                        quote(f),
                        quote(n),
                        quote(e)
                    )
                })
                .collect();
            let _ = writeln!(out, "deputies = [{}]", items.join(", "));
        }
        if !tags.is_empty() {
            let _ = writeln!(out, "tags = {}", quote_list(&tags));
        }
    }
    let parent_col = layout.at.get("parent").copied().unwrap_or(0);
    for (line, p) in parents {
        if !codes.contains_key(&p) {
            let header = t.header.get(parent_col).cloned().unwrap_or_default();
            errors.push(ImportError(format!(
                "{}:{line}:{} ({header}): `{p}` is not the code of a unit in this file",
                t.file,
                t.col(parent_col)
            )));
        }
    }
    finish(&t, errors, "units", out, |text| {
        Directory::parse(text, "units.toml (imported)")
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
}

/// Ends an import: faults in line order, or the text once the loader accepts it.
fn finish(
    t: &Table,
    mut errors: Vec<ImportError>,
    what: &str,
    out: String,
    load: impl Fn(&str) -> Result<(), String>,
) -> Result<String, ImportErrors> {
    if t.rows.is_empty() {
        errors.push(ImportError(format!(
            "{}: no {what} below the header",
            t.file
        )));
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| line_of_message(&e.0));
        return Err(ImportErrors(errors));
    }
    load(&out).map_err(|e| ImportErrors(vec![ImportError(format!("{}: {e}", t.file))]))?;
    Ok(out)
}

/// `HT: Trần Thị B <pgd@stp.gov.vn>` → (field, name, email).
fn parse_deputy(s: &str) -> Option<(String, String, String)> {
    let (field, rest) = s.split_once(':')?;
    let (name, email) = rest.trim().rsplit_once('<')?;
    let email = email.strip_suffix('>')?.trim();
    let (field, name) = (field.trim(), name.trim());
    (!field.is_empty() && !name.is_empty() && is_email(email))
        .then(|| (field.to_string(), name.to_string(), email.to_string()))
}

fn line_of_message(m: &str) -> usize {
    m.split(':')
        .nth(1)
        .and_then(|l| l.parse().ok())
        .unwrap_or(0)
}

const PROCEDURE_COLUMNS: Columns = Columns {
    known: &[
        ("code", &["Mã thủ tục", "Mã TTHC", "Mã"], true),
        ("name", &["Tên thủ tục", "Tên TTHC", "Tên"], true),
        ("field", &["Lĩnh vực", "Mã lĩnh vực"], false),
        ("duration", &["Thời hạn giải quyết", "Thời hạn"], true),
        (
            "online_duration",
            &["Thời hạn trực tuyến", "Thời hạn giải quyết trực tuyến"],
            false,
        ),
        ("kind", &["Loại"], false),
    ],
};

/// Reads a procedure sheet and returns the text of `procedures.toml`.
pub fn procedures(path: &Path) -> Result<String, ImportErrors> {
    let t = read_table(path)?;
    let layout = PROCEDURE_COLUMNS.layout(&t)?;
    let mut errors = Vec::new();
    let mut out = String::from(
        "# Procedure catalogue, imported by `slawatch procedures import`: each procedure's\n# published time limit. Reloaded on SIGHUP and when this file changes.\n",
    );
    let mut codes: HashMap<String, usize> = HashMap::new();
    let mut fields = BTreeSet::new();
    for (line, cells) in &t.rows {
        let mut r = Row {
            table: &t,
            layout: &layout,
            line: *line,
            cells,
            errors: &mut errors,
        };
        let code = r.code("procedure", &mut codes);
        if r.cell("code").is_some_and(|c| c.numeric) {
            r.fault(
                "code",
                "is a number in the sheet, so a code like 1.004220 loses its last zero: format the column as text".into(),
            );
        }
        let name = r.required("name");
        let duration_of = |r: &mut Row<'_>, col: &str| -> Option<String> {
            let d = r.get(col)?;
            match d.parse::<Duration>() {
                Ok(_) => Some(d),
                Err(e) => {
                    r.fault(col, format!("{e} (write e.g. `15 ngày làm việc`, `0,5 ngày làm việc`, `4 giờ làm việc`, `30 ngày`, `3 tháng`, `không`)"));
                    None
                }
            }
        };
        let duration = if r.get("duration").is_none() {
            r.required("duration")
        } else {
            duration_of(&mut r, "duration")
        };
        let online = duration_of(&mut r, "online_duration");
        let kind = r.get("kind").map(|k| k.to_lowercase());
        if let Some(k) = &kind {
            if !matches!(k.as_str(), "dossier" | "task" | "feedback") {
                let bad = k.clone();
                r.fault("kind", format!("`{bad}` is not dossier, task or feedback"));
            }
        }
        let field = r.get("field");
        let (Some(code), Some(name), Some(duration)) = (code, name, duration) else {
            continue;
        };
        let _ = writeln!(
            out,
            "\n[[procedure]]\ncode = {}\nname = {}",
            quote(&code),
            quote(&name)
        );
        if let Some(f) = &field {
            fields.insert(f.clone());
            let _ = writeln!(out, "field = {}", quote(f));
        }
        let _ = writeln!(out, "duration = {}", quote(&duration));
        if let Some(o) = online {
            let _ = writeln!(out, "online_duration = {}", quote(&o));
        }
        if let Some(k) = kind {
            let _ = writeln!(out, "kind = {}", quote(&k));
        }
    }
    finish(&t, errors, "procedures", out, |text| {
        Catalogue::parse(text, "procedures.toml (imported)")
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_match_without_accents_case_or_spacing() {
        assert_eq!(header_key("Mã đơn vị"), "madonvi");
        assert_eq!(header_key("MA DON VI"), "madonvi");
        assert_eq!(header_key("ma_don_vi"), "madonvi");
        assert_eq!(header_key("Thời hạn giải quyết"), "thoihangiaiquyet");
        assert_eq!(header_key("Đơn vị cấp trên"), "donvicaptren");
    }

    #[test]
    fn spreadsheet_columns_are_letters() {
        assert_eq!(column_letter(0), "A");
        assert_eq!(column_letter(25), "Z");
        assert_eq!(column_letter(26), "AA");
        assert_eq!(column_letter(27), "AB");
    }

    #[test]
    fn deputies_are_field_name_and_address() {
        assert_eq!(
            parse_deputy("HT: Trần Thị B <pgd@stp.example.gov.vn>"),
            Some((
                "HT".into(),
                "Trần Thị B".into(),
                "pgd@stp.example.gov.vn".into()
            ))
        );
        assert_eq!(parse_deputy("HT Trần Thị B"), None);
        assert_eq!(parse_deputy("HT: Trần Thị B <not an address>"), None);
    }
}
