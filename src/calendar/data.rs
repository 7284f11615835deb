//! Dated calendar rows: official days off and make-up workdays, as the Government
//! announces them each year, and the operator's own additions and overrides.
//!
//! The format is the shipped `config/calendar/vn-official-days.csv`:
//! `date,kind,name,status` with `kind` `holiday` (a day off) or `workday` (a make-up
//! working day) and `status` `confirmed` or `unconfirmed` (optional, default
//! confirmed). Parsing is pure: the caller reads the file and passes its text and name,
//! so that an error can name the file and the line.

use chrono::NaiveDate;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RowKind {
    /// A day off.
    Holiday,
    /// A working day (a make-up Saturday, or a cancelled holiday).
    Workday,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayRow {
    pub date: NaiveDate,
    pub kind: RowKind,
    pub name: String,
    pub unconfirmed: bool,
    /// `file:line`, for messages.
    pub origin: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{file}:{line}: {message}")]
pub struct RowError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// Parses a calendar CSV. The header row is required and names the columns, so they
/// may come in any order; `status` may be left out.
pub fn parse_rows(text: &str, file: &str) -> Result<Vec<DayRow>, RowError> {
    let err = |line: usize, message: String| RowError {
        file: file.to_string(),
        line,
        message,
    };
    // Line by line, so that a message names the file's own line; a row never spans
    // lines. Blank lines and `#` comments are skipped.
    let split = |line: &str| -> Result<Vec<String>, String> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .trim(csv::Trim::All)
            .from_reader(line.as_bytes());
        match reader.records().next() {
            Some(Ok(r)) => Ok(r.iter().map(str::to_string).collect()),
            Some(Err(e)) => Err(format!("malformed row: {e}")),
            None => Ok(Vec::new()),
        }
    };
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_start_matches('\u{feff}')))
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let (header_line, header) = lines.next().ok_or_else(|| {
        err(
            1,
            "the file is empty: it needs a header `date,kind,name,status`".into(),
        )
    })?;
    let headers = split(header).map_err(|m| err(header_line, m))?;
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(date_col), Some(kind_col)) = (col("date"), col("kind")) else {
        return Err(err(
            header_line,
            "the header must name the columns `date` and `kind`".into(),
        ));
    };
    let name_col = col("name");
    let status_col = col("status");
    let mut rows = Vec::new();
    for (line, text) in lines {
        let record = split(text).map_err(|m| err(line, m))?;
        if record.len() != headers.len() {
            return Err(err(
                line,
                format!(
                    "{} fields where the header has {}",
                    record.len(),
                    headers.len()
                ),
            ));
        }
        let field = |i: usize| record.get(i).map(String::as_str).unwrap_or("");
        let date = NaiveDate::parse_from_str(field(date_col), "%Y-%m-%d").map_err(|_| {
            err(
                line,
                format!("`date`: `{}` is not a date (YYYY-MM-DD)", field(date_col)),
            )
        })?;
        let kind = match field(kind_col).to_ascii_lowercase().as_str() {
            "holiday" => RowKind::Holiday,
            "workday" => RowKind::Workday,
            other => {
                return Err(err(
                    line,
                    format!("`kind`: `{other}` is neither `holiday` nor `workday`"),
                ))
            }
        };
        let unconfirmed = match status_col.map(field).map(str::to_ascii_lowercase) {
            None => false,
            Some(s) if s.is_empty() || s == "confirmed" => false,
            Some(s) if s == "unconfirmed" => true,
            Some(s) => {
                return Err(err(
                    line,
                    format!("`status`: `{s}` is neither `confirmed` nor `unconfirmed`"),
                ))
            }
        };
        rows.push(DayRow {
            date,
            kind,
            name: name_col.map(field).unwrap_or("").to_string(),
            unconfirmed,
            origin: format!("{file}:{line}"),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_shipped_file() {
        let rows = parse_rows(
            include_str!("../../config/calendar/vn-official-days.csv"),
            "vn-official-days.csv",
        )
        .unwrap();
        // 2020–2027: every weekday off and make-up Saturday of the announcements.
        assert_eq!(rows.len(), 130);
        let makeup: Vec<_> = rows.iter().filter(|r| r.kind == RowKind::Workday).collect();
        // 2024-05-04, 2025-04-26, 2026-01-10, 2026-08-22.
        assert_eq!(makeup.len(), 4);
        let unconfirmed: Vec<String> = rows
            .iter()
            .filter(|r| r.unconfirmed)
            .map(|r| r.date.to_string())
            .collect();
        // Only the day taken for 1/5/2027 (a Saturday) awaits its notice.
        assert_eq!(unconfirmed, ["2027-05-03"]);
        assert_eq!(rows[0].origin, "vn-official-days.csv:2");
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let text = "date,kind,name\n2027-01-01,holiday,Tết Dương lịch\n2027-13-01,holiday,x\n";
        let e = parse_rows(text, "ops.csv").unwrap_err();
        assert_eq!(e.file, "ops.csv");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("`date`"), "{}", e.message);

        let e = parse_rows("date,kind\n2027-01-01,day off\n", "ops.csv").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("`kind`"));

        let e = parse_rows("day,kind\n", "ops.csv").unwrap_err();
        assert_eq!(e.line, 1);
    }

    #[test]
    fn status_is_optional_and_comments_are_skipped() {
        let text = "date,kind\n# a note\n2027-02-06,holiday\n";
        let rows = parse_rows(text, "ops.csv").unwrap();
        assert_eq!(rows.len(), 1);
        assert!(!rows[0].unconfirmed);
        assert_eq!(rows[0].origin, "ops.csv:3");
    }
}
