//! Writes a [`Report`]: CSV (UTF-8 with a BOM, so Excel reads Vietnamese), JSON, HTML
//! and XLSX (the official form's merged header, number formats, a frozen header, A4
//! landscape; indicator 2.1, the late cases and the ranking on sheets of their own).

use super::tthc::{By, Cells, LateCase, Reason, Report};
use crate::calendar::Calendar;
use crate::sla::ratio::Ratio;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

pub const TITLE: &str = "Biểu số 06/VPCP/KSTT";
pub const HEADING: &str =
    "TÌNH HÌNH, KẾT QUẢ GIẢI QUYẾT TTHC TẠI CƠ QUAN, ĐƠN VỊ TRỰC TIẾP GIẢI QUYẾT TTHC";
pub const BASIS: &str = "(Ban hành kèm theo Thông tư số 01/2020/TT-VPCP ngày 21/10/2020)";
pub const MEASURE: &str = "Đơn vị tính: Số hồ sơ TTHC";

/// The column groups over columns 3–13: (first, last, title).
pub const GROUPS: [(usize, usize, &str); 3] = [
    (3, 6, "Số hồ sơ nhận giải quyết"),
    (7, 10, "Số hồ sơ đã giải quyết"),
    (11, 13, "Số hồ sơ đang giải quyết"),
];

/// The names of columns 3–13.
pub const COLUMNS: [&str; 11] = [
    "Tổng số",
    "Trong kỳ: trực tuyến",
    "Trong kỳ: trực tiếp và dịch vụ bưu chính",
    "Từ kỳ trước",
    "Tổng số",
    "Trước hạn",
    "Đúng hạn",
    "Quá hạn",
    "Tổng số",
    "Trong hạn",
    "Quá hạn",
];

/// What a report line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineKind {
    Group,
    Row,
    Total,
}

/// One line of the table as printed.
#[derive(Clone, Debug)]
pub struct Line {
    pub stt: String,
    pub name: String,
    pub cells: Cells,
    pub on_time: Ratio,
    pub kind: LineKind,
}

const ROMAN: [&str; 10] = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X"];

/// The table's lines: groups (I, II, …) with their subtotal, rows numbered within
/// them, the total last.
pub fn lines(r: &Report) -> Vec<Line> {
    let mut out = Vec::new();
    let named = r.groups.iter().filter(|g| !g.name.is_empty()).count() > 0;
    let mut n = 0;
    for (gi, g) in r.groups.iter().enumerate() {
        if named {
            out.push(Line {
                stt: ROMAN
                    .get(gi)
                    .map_or_else(|| (gi + 1).to_string(), |s| s.to_string()),
                name: g.name.clone(),
                cells: g.subtotal,
                on_time: g.subtotal_on_time,
                kind: LineKind::Group,
            });
            n = 0;
        }
        for row in &g.rows {
            n += 1;
            out.push(Line {
                stt: n.to_string(),
                name: row.name.clone(),
                cells: row.cells,
                on_time: row.on_time,
                kind: LineKind::Row,
            });
        }
    }
    out.push(Line {
        stt: String::new(),
        name: "Tổng cộng".into(),
        cells: r.total,
        on_time: r.total_on_time,
        kind: LineKind::Total,
    });
    out
}

fn date(t: DateTime<Utc>, cal: &Calendar) -> String {
    cal.local(t).format("%d/%m/%Y").to_string()
}

fn date_time(t: DateTime<Utc>, cal: &Calendar) -> String {
    cal.local(t).format("%d/%m/%Y %H:%M").to_string()
}

/// "Kỳ báo cáo: … (Từ ngày … đến ngày …)".
pub fn period_line(r: &Report, cal: &Calendar) -> String {
    let name = period_name(&r.period.label);
    let from = r.period.first_day.format("%d/%m/%Y");
    if r.running {
        format!(
            "Kỳ báo cáo: {name} (Từ ngày {from} đến ngày {}, số liệu tính đến {})",
            date(r.until, cal),
            cal.local(r.until).format("%H:%M %d/%m/%Y")
        )
    } else {
        format!(
            "Kỳ báo cáo: {name} (Từ ngày {from} đến ngày {})",
            r.period.last_day.format("%d/%m/%Y")
        )
    }
}

/// A period label in words: "tháng 11/2026", "quý IV/2026", "6 tháng cuối năm 2026",
/// "9 tháng năm 2026", "năm 2026".
pub fn period_name(label: &str) -> String {
    let (year, rest) = match label.split_once('-') {
        Some((y, r)) if !label.contains("..") => (y, Some(r.to_ascii_uppercase())),
        _ if label.contains("..") => return "tùy chọn".into(),
        _ => (label, None),
    };
    match rest.as_deref() {
        None => format!("năm {year}"),
        Some("Q1") => format!("quý I/{year}"),
        Some("Q2") => format!("quý II/{year}"),
        Some("Q3") => format!("quý III/{year}"),
        Some("Q4") => format!("quý IV/{year}"),
        Some("H1") => format!("6 tháng đầu năm {year}"),
        Some("H2") => format!("6 tháng cuối năm {year}"),
        Some(m) if m.ends_with('M') => format!("{} tháng năm {year}", m.trim_end_matches('M')),
        Some(m) => format!("tháng {m}/{year}"),
    }
}

fn subject_column(by: By) -> &'static str {
    match by {
        By::Unit => "Đơn vị",
        By::Field => "Lĩnh vực",
        By::Procedure => "Thủ tục hành chính",
    }
}

/// 58,3% (decimal comma).
pub fn percent(r: Ratio) -> String {
    match r.value() {
        Some(v) => format!("{:.1}%", v * 100.0).replace('.', ","),
        None => "—".into(),
    }
}

/// Indicator 2.1 points, 20 × ratio: "11,67".
pub fn points(r: Ratio) -> String {
    match r.value() {
        Some(v) => format!("{:.2}", 20.0 * v).replace('.', ","),
        None => "—".into(),
    }
}

/// The note lines under the table.
pub fn note_lines(r: &Report) -> Vec<String> {
    let n = &r.notes;
    let mut out = Vec::new();
    if n.withdrawn > 0 {
        out.push(format!(
            "Không tính vào các cột: {} hồ sơ công dân rút trong kỳ.",
            n.withdrawn
        ));
    }
    if n.refused_at_intake > 0 {
        out.push(format!(
            "Không tính vào các cột: {} hồ sơ không được tiếp nhận.",
            n.refused_at_intake
        ));
    }
    if n.no_receipt > 0 {
        out.push(format!(
            "Không tính vào các cột: {} hồ sơ không có ngày tiếp nhận (xem slawatch quarantine và nguồn dữ liệu).",
            n.no_receipt
        ));
    }
    if n.finished_without_due > 0 {
        out.push(format!(
            "Cột 9 gồm {} hồ sơ không có thời hạn giải quyết.",
            n.finished_without_due
        ));
    }
    if n.unknown_channel > 0 {
        out.push(format!(
            "Cột 5 gồm {} hồ sơ không ghi hình thức nộp.",
            n.unknown_channel
        ));
    }
    let o = r.options;
    if o.dates_only {
        out.push("Tùy chọn dates-only: so sánh theo ngày, không tính giờ.".into());
    }
    if o.withdrawn_on_time {
        out.push(
            "Tùy chọn withdrawn-on-time: hồ sơ rút và hồ sơ trả lại sau thẩm định tính là đúng hạn."
                .into(),
        );
    }
    if o.paused_in_time {
        out.push(
            "Tùy chọn paused-in-time: hồ sơ chờ bổ sung, dừng xử lý tính là đang giải quyết trong hạn."
                .into(),
        );
    }
    out
}

/// A reason of a late case in words.
pub fn reason_text(r: &Reason) -> String {
    match r {
        Reason::MultipleSupplements { requests } => format!("yêu cầu bổ sung {requests} lần"),
        Reason::SupplementAfterDue => "yêu cầu bổ sung khi đã quá hạn".into(),
        Reason::LateSupplementRequest => "yêu cầu bổ sung muộn (quá 3 ngày làm việc)".into(),
        Reason::LateStep {
            step,
            unit,
            unit_name,
        } => {
            let step = step.as_deref().unwrap_or("xử lý");
            match unit_name.as_deref().or(unit.as_deref()) {
                Some(u) => format!("bước «{step}» quá hạn ({u})"),
                None => format!("bước «{step}» quá hạn"),
            }
        }
        Reason::Reappointed { times } => format!("hẹn lại {times} lần"),
    }
}

fn reasons(l: &LateCase) -> String {
    l.reasons
        .iter()
        .map(reason_text)
        .collect::<Vec<_>>()
        .join("; ")
}

fn indicator(r: Ratio) -> Value {
    json!({
        "numerator": r.on_time,
        "denominator": r.population,
        "ratio": r.value(),
        "points": r.value().map(|v| (20.0 * v * 100.0).round() / 100.0),
    })
}

fn cells_json(c: &Cells) -> Value {
    let cols = c.columns();
    let mut m = serde_json::Map::new();
    for (i, v) in cols.iter().enumerate() {
        m.insert(format!("{}", i + 3), json!(v));
    }
    Value::Object(m)
}

/// The report as JSON: the table (cells by column number 3–13 and by name), the
/// indicator per row, the late cases, the ranking and the notes.
pub fn json(r: &Report, cal: &Calendar) -> Value {
    let rows: Vec<Value> = r
        .groups
        .iter()
        .map(|g| {
            json!({
                "name": g.name,
                "subtotal": {"columns": cells_json(&g.subtotal), "cells": g.subtotal,
                             "indicator_2_1": indicator(g.subtotal_on_time)},
                "rows": g.rows.iter().map(|row| json!({
                    "key": row.key,
                    "name": row.name,
                    "columns": cells_json(&row.cells),
                    "cells": row.cells,
                    "indicator_2_1": indicator(row.on_time),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "form": TITLE,
        "title": HEADING,
        "period": {
            "label": r.period.label,
            "from": r.period.first_day,
            "to": r.period.last_day,
            "until": r.until,
            "running": r.running,
            "text": period_line(r, cal),
        },
        "reporter": r.reporter,
        "kind": r.kind,
        "by": r.by,
        "options": r.options,
        "calendar": r.calendar,
        "groups": rows,
        "total": {"columns": cells_json(&r.total), "cells": r.total,
                  "indicator_2_1": indicator(r.total_on_time)},
        "notes": r.notes,
        "note_lines": note_lines(r),
        "late_cases": r.late_cases.iter().map(|l| json!({
            "source": l.source,
            "case_id": l.case_id,
            "kind": l.kind,
            "row": l.unit,
            "unit_name": l.unit_name,
            "procedure_code": l.procedure_code,
            "procedure_name": l.procedure_name,
            "received_at": l.received,
            "due_at": l.due,
            "ended_at": l.ended,
            "open": l.ended.is_none(),
            "workdays_late": l.workdays_late,
            "reasons": l.reasons,
            "reasons_text": reasons(l),
        })).collect::<Vec<_>>(),
        "ranking_on_time": r.ranking_on_time.iter().map(|x| json!({
            "rank": x.rank, "unit": x.unit, "name": x.name,
            "indicator_2_1": indicator(x.on_time), "overdue_open": x.overdue_open,
        })).collect::<Vec<_>>(),
        "ranking_overdue": r.ranking_overdue.iter().map(|x| json!({
            "rank": x.rank, "unit": x.unit, "name": x.name,
            "overdue_open": x.overdue_open, "indicator_2_1": indicator(x.on_time),
        })).collect::<Vec<_>>(),
        "regularly_late": r.regularly_late,
    })
}

/// The table as CSV, UTF-8 with a BOM: the form's header lines, two header rows and
/// the column numbers, the lines, then the notes.
pub fn csv(r: &Report, cal: &Calendar) -> Result<Vec<u8>, String> {
    let mut w = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::from(&b"\xEF\xBB\xBF"[..]));
    let e = |e: csv::Error| e.to_string();
    w.write_record([TITLE]).map_err(e)?;
    w.write_record([HEADING]).map_err(e)?;
    w.write_record([period_line(r, cal)]).map_err(e)?;
    w.write_record([format!("Đơn vị báo cáo: {}", r.reporter)])
        .map_err(e)?;
    w.write_record([MEASURE]).map_err(e)?;
    let mut groups = vec![String::new(), String::new()];
    for (first, last, title) in GROUPS {
        for c in first..=last {
            groups.push(if c == first {
                title.to_string()
            } else {
                String::new()
            });
        }
    }
    w.write_record(&groups).map_err(e)?;
    let mut names = vec!["STT".to_string(), subject_column(r.by).to_string()];
    names.extend(COLUMNS.iter().map(|s| s.to_string()));
    w.write_record(&names).map_err(e)?;
    w.write_record((1..=13).map(|i| format!("({i})")))
        .map_err(e)?;
    for l in lines(r) {
        let mut rec = vec![l.stt, l.name];
        rec.extend(l.cells.columns().iter().map(|v| v.to_string()));
        w.write_record(&rec).map_err(e)?;
    }
    for n in note_lines(r) {
        w.write_record([n]).map_err(e)?;
    }
    w.into_inner().map_err(|e| e.to_string())
}

/// The formats a report is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    Csv,
    Xlsx,
    Json,
    Html,
}

impl ReportFormat {
    pub fn parse(s: &str) -> Option<ReportFormat> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Some(ReportFormat::Csv),
            "xlsx" => Some(ReportFormat::Xlsx),
            "json" => Some(ReportFormat::Json),
            "html" | "htm" => Some(ReportFormat::Html),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ReportFormat::Csv => "csv",
            ReportFormat::Xlsx => "xlsx",
            ReportFormat::Json => "json",
            ReportFormat::Html => "html",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ReportFormat::Csv => "text/csv; charset=utf-8",
            ReportFormat::Xlsx => {
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            }
            ReportFormat::Json => "application/json",
            ReportFormat::Html => "text/html; charset=utf-8",
        }
    }
}

/// Renders a report in a format.
pub fn render_as(r: &Report, cal: &Calendar, format: ReportFormat) -> Result<Vec<u8>, String> {
    Ok(match format {
        ReportFormat::Csv => csv(r, cal)?,
        ReportFormat::Xlsx => xlsx(r, cal)?,
        ReportFormat::Json => {
            let mut v = serde_json::to_vec_pretty(&json(r, cal)).map_err(|e| e.to_string())?;
            v.push(b'\n');
            v
        }
        ReportFormat::Html => html(r, cal)?.into_bytes(),
    })
}

/// A file name for the report: `bieu06-2026-11.xlsx`.
pub fn file_name(r: &Report, format: ReportFormat) -> String {
    let label: String = r
        .period
        .label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("bieu06-{label}.{}", format.extension())
}

/// The report as one HTML page: the table, indicator 2.1, the late cases, the ranking.
pub fn html(r: &Report, cal: &Calendar) -> Result<String, String> {
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.add_template(
        "tthc.html",
        include_str!("../../templates/report/tthc.html"),
    )
    .map_err(|e| e.to_string())?;
    let ls: Vec<Value> = lines(r)
        .into_iter()
        .map(|l| {
            json!({
                "stt": l.stt,
                "name": l.name,
                "cols": l.cells.columns().iter().map(|v| super::mail::count(*v, "vi")).collect::<Vec<_>>(),
                "kind": match l.kind { LineKind::Group => "group", LineKind::Row => "row", LineKind::Total => "total" },
                "numerator": super::mail::count(l.on_time.on_time, "vi"),
                "denominator": super::mail::count(l.on_time.population, "vi"),
                "percent": percent(l.on_time),
                "points": points(l.on_time),
            })
        })
        .collect();
    let late: Vec<Value> = r
        .late_cases
        .iter()
        .map(|l| {
            json!({
                "unit": l.unit_name,
                "case_id": l.case_id,
                "procedure": l.procedure_name.clone().or(l.procedure_code.clone()).unwrap_or_default(),
                "received": date_time(l.received, cal),
                "due": l.due.map(|d| date_time(d, cal)).unwrap_or_else(|| "—".into()),
                "ended": l.ended.map(|d| date_time(d, cal)),
                "workdays": l.workdays_late,
                "why": reasons(l),
            })
        })
        .collect();
    let ranked = |v: &[super::tthc::Ranked]| -> Vec<Value> {
        v.iter()
            .map(|x| {
                json!({
                    "rank": x.rank, "name": x.name, "percent": percent(x.on_time),
                    "numerator": x.on_time.on_time, "denominator": x.on_time.population,
                    "points": points(x.on_time), "overdue": x.overdue_open,
                })
            })
            .collect()
    };
    let ctx = json!({
        "title": TITLE,
        "heading": HEADING,
        "basis": BASIS,
        "measure": MEASURE,
        "period": period_line(r, cal),
        "reporter": r.reporter,
        "subject": subject_column(r.by),
        "groups": GROUPS.iter().map(|(a, b, t)| json!({"span": b - a + 1, "title": t})).collect::<Vec<_>>(),
        "lines": ls,
        "notes": note_lines(r),
        "late": late,
        "by_unit": r.by == By::Unit,
        "ranking_on_time": ranked(&r.ranking_on_time),
        "ranking_overdue": ranked(&r.ranking_overdue),
        "regularly_late": r.regularly_late,
        "calendar": r.calendar,
    });
    env.get_template("tthc.html")
        .and_then(|t| t.render(ctx))
        .map_err(|e| e.to_string())
}

/// The report as an XLSX workbook: "Biểu 06", "Chỉ số 2.1", "Hồ sơ trễ hạn",
/// "Xếp hạng".
pub fn xlsx(r: &Report, cal: &Calendar) -> Result<Vec<u8>, String> {
    xlsx_inner(r, cal).map_err(|e| format!("XLSX: {e}"))
}

fn xlsx_inner(r: &Report, cal: &Calendar) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{Format, FormatAlign, FormatBorder, Workbook};
    let mut wb = Workbook::new();
    let title = Format::new().set_bold().set_font_size(13);
    let center = Format::new().set_align(FormatAlign::Center);
    let head = Format::new()
        .set_bold()
        .set_text_wrap()
        .set_align(FormatAlign::Center)
        .set_align(FormatAlign::VerticalCenter)
        .set_border(FormatBorder::Thin)
        .set_background_color(0xE8EEF4);
    let text = Format::new().set_border(FormatBorder::Thin).set_text_wrap();
    let bold_text = text.clone().set_bold();
    let num = Format::new()
        .set_border(FormatBorder::Thin)
        .set_num_format("#,##0");
    let bold_num = num.clone().set_bold();
    let pct = Format::new()
        .set_border(FormatBorder::Thin)
        .set_num_format("0.0%");
    let pts = Format::new()
        .set_border(FormatBorder::Thin)
        .set_num_format("0.00");
    let when = Format::new()
        .set_border(FormatBorder::Thin)
        .set_num_format("dd/mm/yyyy hh:mm");

    // Sheet 1: the form.
    let ws = wb.add_worksheet();
    ws.set_name("Biểu 06")?;
    ws.set_landscape()
        .set_paper_size(9)
        .set_print_fit_to_pages(1, 0);
    ws.merge_range(0, 0, 0, 12, TITLE, &title)?;
    ws.merge_range(
        1,
        0,
        1,
        12,
        HEADING,
        &title.clone().set_align(FormatAlign::Center),
    )?;
    ws.merge_range(2, 0, 2, 12, &period_line(r, cal), &center)?;
    ws.merge_range(
        3,
        0,
        3,
        12,
        &format!("Đơn vị báo cáo: {}", r.reporter),
        &center,
    )?;
    ws.merge_range(
        4,
        0,
        4,
        12,
        MEASURE,
        &Format::new().set_align(FormatAlign::Right),
    )?;
    let h = 5u32;
    ws.merge_range(h, 0, h + 2, 0, "STT", &head)?;
    ws.merge_range(h, 1, h + 2, 1, subject_column(r.by), &head)?;
    for (first, last, t) in GROUPS {
        ws.merge_range(h, first as u16 - 1, h, last as u16 - 1, t, &head)?;
    }
    // Row 2 of the header: "Tổng số" etc. over two rows, "Trong kỳ" over cols 4–5.
    for (col, label) in [
        (3u16, "Tổng số"),
        (6, "Từ kỳ trước"),
        (7, "Tổng số"),
        (8, "Trước hạn"),
        (9, "Đúng hạn"),
        (10, "Quá hạn"),
        (11, "Tổng số"),
        (12, "Trong hạn"),
        (13, "Quá hạn"),
    ] {
        ws.merge_range(h + 1, col - 1, h + 2, col - 1, label, &head)?;
    }
    ws.merge_range(h + 1, 3, h + 1, 4, "Trong kỳ", &head)?;
    ws.write_string_with_format(h + 2, 3, "Trực tuyến", &head)?;
    ws.write_string_with_format(h + 2, 4, "Trực tiếp và dịch vụ bưu chính", &head)?;
    for c in 0..13u16 {
        ws.write_string_with_format(h + 3, c, format!("({})", c + 1), &head)?;
    }
    ws.set_freeze_panes(h + 4, 2)?;
    ws.set_repeat_rows(h, h + 3)?;
    ws.set_column_width(0, 6)?;
    ws.set_column_width(1, 42)?;
    for c in 2..13u16 {
        ws.set_column_width(c, 11)?;
    }
    let mut row = h + 4;
    for l in lines(r) {
        let strong = l.kind != LineKind::Row;
        let (tf, nf) = if strong {
            (&bold_text, &bold_num)
        } else {
            (&text, &num)
        };
        ws.write_string_with_format(row, 0, &l.stt, tf)?;
        ws.write_string_with_format(row, 1, &l.name, tf)?;
        for (i, v) in l.cells.columns().iter().enumerate() {
            ws.write_number_with_format(row, i as u16 + 2, *v as f64, nf)?;
        }
        row += 1;
    }
    row += 1;
    for n in note_lines(r) {
        ws.write_string(row, 1, n)?;
        row += 1;
    }

    // Sheet 2: indicator 2.1.
    let ws = wb.add_worksheet();
    ws.set_name("Chỉ số 2.1")?;
    ws.set_landscape()
        .set_paper_size(9)
        .set_print_fit_to_pages(1, 0);
    ws.merge_range(
        0,
        0,
        0,
        5,
        "Chỉ số 2.1 (Quyết định 766/QĐ-TTg): tỷ lệ hồ sơ giải quyết trước hạn, đúng hạn",
        &title,
    )?;
    ws.merge_range(1, 0, 1, 5, &period_line(r, cal), &Format::new())?;
    for (c, t) in [
        "STT",
        subject_column(r.by),
        "Đúng hạn (tử số)",
        "Tổng số (mẫu số)",
        "Tỷ lệ",
        "Điểm (20 × tỷ lệ)",
    ]
    .iter()
    .enumerate()
    {
        ws.write_string_with_format(3, c as u16, *t, &head)?;
    }
    ws.set_freeze_panes(4, 2)?;
    ws.set_column_width(0, 6)?;
    ws.set_column_width(1, 42)?;
    for c in 2..6u16 {
        ws.set_column_width(c, 14)?;
    }
    for (row, l) in (4u32..).zip(lines(r)) {
        let strong = l.kind != LineKind::Row;
        let (tf, nf) = if strong {
            (&bold_text, &bold_num)
        } else {
            (&text, &num)
        };
        ws.write_string_with_format(row, 0, &l.stt, tf)?;
        ws.write_string_with_format(row, 1, &l.name, tf)?;
        ws.write_number_with_format(row, 2, l.on_time.on_time as f64, nf)?;
        ws.write_number_with_format(row, 3, l.on_time.population as f64, nf)?;
        match l.on_time.value() {
            Some(v) => {
                ws.write_number_with_format(row, 4, v, &pct)?;
                ws.write_number_with_format(row, 5, 20.0 * v, &pts)?;
            }
            None => {
                ws.write_string_with_format(row, 4, "—", tf)?;
                ws.write_string_with_format(row, 5, "—", tf)?;
            }
        }
    }

    // Sheet 3: the late cases.
    let ws = wb.add_worksheet();
    ws.set_name("Hồ sơ trễ hạn")?;
    ws.set_landscape()
        .set_paper_size(9)
        .set_print_fit_to_pages(1, 0);
    ws.merge_range(
        0,
        0,
        0,
        8,
        "Hồ sơ giải quyết quá hạn và hồ sơ đang quá hạn cuối kỳ",
        &title,
    )?;
    ws.merge_range(1, 0, 1, 8, &period_line(r, cal), &Format::new())?;
    for (c, t) in [
        "STT",
        "Đơn vị",
        "Mã hồ sơ",
        "Thủ tục",
        "Ngày tiếp nhận",
        "Hạn giải quyết",
        "Ngày kết thúc",
        "Số ngày làm việc quá hạn",
        "Lý do",
    ]
    .iter()
    .enumerate()
    {
        ws.write_string_with_format(3, c as u16, *t, &head)?;
    }
    ws.set_freeze_panes(4, 0)?;
    for (c, wdt) in [6, 28, 26, 40, 17, 17, 17, 12, 50].iter().enumerate() {
        ws.set_column_width(c as u16, *wdt)?;
    }
    let stamp = |t: DateTime<Utc>| {
        rust_xlsxwriter::ExcelDateTime::parse_from_str(
            &cal.local(t).format("%Y-%m-%d %H:%M:%S").to_string(),
        )
    };
    for (i, l) in r.late_cases.iter().enumerate() {
        let row = 4 + i as u32;
        ws.write_number_with_format(row, 0, (i + 1) as f64, &num)?;
        ws.write_string_with_format(row, 1, &l.unit_name, &text)?;
        ws.write_string_with_format(row, 2, &l.case_id, &text)?;
        ws.write_string_with_format(
            row,
            3,
            l.procedure_name
                .as_deref()
                .or(l.procedure_code.as_deref())
                .unwrap_or(""),
            &text,
        )?;
        ws.write_datetime_with_format(row, 4, &stamp(l.received)?, &when)?;
        match l.due {
            Some(d) => ws.write_datetime_with_format(row, 5, &stamp(d)?, &when)?,
            None => ws.write_string_with_format(row, 5, "—", &text)?,
        };
        match l.ended {
            Some(d) => ws.write_datetime_with_format(row, 6, &stamp(d)?, &when)?,
            None => ws.write_string_with_format(row, 6, "đang giải quyết", &text)?,
        };
        ws.write_number_with_format(row, 7, l.workdays_late as f64, &num)?;
        ws.write_string_with_format(row, 8, reasons(l), &text)?;
    }

    // Sheet 4: the ranking.
    let ws = wb.add_worksheet();
    ws.set_name("Xếp hạng")?;
    ws.set_landscape()
        .set_paper_size(9)
        .set_print_fit_to_pages(1, 0);
    ws.merge_range(0, 0, 0, 5, "Xếp hạng đơn vị theo tỷ lệ đúng hạn", &title)?;
    for (c, t) in [
        "Hạng",
        "Đơn vị",
        "Đúng hạn",
        "Tổng số",
        "Tỷ lệ",
        "Đang quá hạn",
    ]
    .iter()
    .enumerate()
    {
        ws.write_string_with_format(1, c as u16, *t, &head)?;
    }
    ws.set_column_width(1, 42)?;
    for c in [0u16, 2, 3, 4, 5] {
        ws.set_column_width(c, 12)?;
    }
    let mut row = 2;
    for x in &r.ranking_on_time {
        ws.write_number_with_format(row, 0, x.rank as f64, &num)?;
        ws.write_string_with_format(row, 1, &x.name, &text)?;
        ws.write_number_with_format(row, 2, x.on_time.on_time as f64, &num)?;
        ws.write_number_with_format(row, 3, x.on_time.population as f64, &num)?;
        ws.write_number_with_format(row, 4, x.on_time.value().unwrap_or(0.0), &pct)?;
        ws.write_number_with_format(row, 5, x.overdue_open as f64, &num)?;
        row += 1;
    }
    row += 1;
    ws.merge_range(
        row,
        0,
        row,
        5,
        "Xếp hạng theo số hồ sơ đang quá hạn",
        &title,
    )?;
    row += 1;
    for x in &r.ranking_overdue {
        ws.write_number_with_format(row, 0, x.rank as f64, &num)?;
        ws.write_string_with_format(row, 1, &x.name, &text)?;
        ws.write_number_with_format(row, 5, x.overdue_open as f64, &num)?;
        row += 1;
    }
    row += 1;
    ws.merge_range(
        row,
        0,
        row,
        5,
        "Đơn vị có hồ sơ quá hạn trong ít nhất 3 của 4 tuần gần nhất",
        &title,
    )?;
    row += 1;
    if r.regularly_late.is_empty() {
        ws.write_string(row, 1, "Không có")?;
    }
    for x in &r.regularly_late {
        ws.write_string_with_format(row, 1, &x.name, &text)?;
        ws.write_string_with_format(row, 2, x.head.as_deref().unwrap_or("(chưa có tên)"), &text)?;
        row += 1;
    }
    wb.save_to_buffer()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tthc::tests::{context, november, spec};
    use crate::report::tthc::{Builder, Options};

    fn report() -> (Report, crate::state::Context) {
        let ctx = context();
        let mut b = Builder::new(&ctx, spec(Options::default())).unwrap();
        for c in november() {
            b.add(&c);
        }
        (b.finish(&[]).unwrap(), ctx)
    }

    #[test]
    fn period_names_in_words() {
        assert_eq!(period_name("2026-11"), "tháng 11/2026");
        assert_eq!(period_name("2026-Q4"), "quý IV/2026");
        assert_eq!(period_name("2026-H2"), "6 tháng cuối năm 2026");
        assert_eq!(period_name("2026-9M"), "9 tháng năm 2026");
        assert_eq!(period_name("2026"), "năm 2026");
        assert_eq!(
            percent(Ratio {
                on_time: 7,
                population: 12
            }),
            "58,3%"
        );
        assert_eq!(
            points(Ratio {
                on_time: 7,
                population: 12
            }),
            "11,67"
        );
    }

    #[test]
    fn csv_has_a_bom_the_header_and_the_hand_worked_total() {
        let (r, ctx) = report();
        let bytes = csv(&r, &ctx.calendar).unwrap();
        assert!(bytes.starts_with(b"\xEF\xBB\xBF"));
        let text = String::from_utf8(bytes[3..].to_vec()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], TITLE);
        assert_eq!(
            lines[2],
            "Kỳ báo cáo: tháng 11/2026 (Từ ngày 01/11/2026 đến ngày 30/11/2026)"
        );
        assert!(lines.contains(&"I,\"Sở, ban, ngành\",19,5,10,4,10,5,2,3,9,5,4"));
        assert!(lines.contains(&"1,Sở Tư pháp,11,3,4,4,6,2,2,2,5,2,3"));
        assert!(lines.contains(&",Tổng cộng,26,7,13,6,15,7,4,4,11,6,5"));
        assert!(lines.contains(&"Không tính vào các cột: 2 hồ sơ công dân rút trong kỳ."));
    }

    #[test]
    fn json_gives_numerator_denominator_and_points() {
        let (r, ctx) = report();
        let j = json(&r, &ctx.calendar);
        assert_eq!(j["total"]["columns"]["3"], 26);
        assert_eq!(j["total"]["indicator_2_1"]["numerator"], 15);
        assert_eq!(j["total"]["indicator_2_1"]["denominator"], 26);
        // 20 × 15/26 = 11.538… → 11.54.
        assert_eq!(j["total"]["indicator_2_1"]["points"], 11.54);
        assert_eq!(j["late_cases"].as_array().unwrap().len(), 9);
        assert_eq!(
            j["late_cases"][0]["reasons_text"], "",
            "A32 has no recorded reason"
        );
        // No applicant identity anywhere: the fixtures carry none, and the fields are
        // an allow-list.
        assert!(!j.to_string().contains("applicant"));
    }

    #[test]
    fn html_renders_the_form() {
        let (r, ctx) = report();
        let h = html(&r, &ctx.calendar).unwrap();
        assert!(h.contains("Biểu số 06"));
        assert!(h.contains("58,3%"));
        assert!(h.contains("yêu cầu bổ sung khi đã quá hạn"));
    }

    #[test]
    fn xlsx_reads_back_with_another_reader() {
        use calamine::{Data, Reader, Xlsx};
        let (r, ctx) = report();
        let bytes = xlsx(&r, &ctx.calendar).unwrap();
        let mut book = Xlsx::new(std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(
            book.sheet_names(),
            ["Biểu 06", "Chỉ số 2.1", "Hồ sơ trễ hạn", "Xếp hạng"]
        );
        let sheet = book.worksheet_range("Biểu 06").unwrap();
        let total = sheet
            .rows()
            .find(|row| row.get(1) == Some(&Data::String("Tổng cộng".into())))
            .unwrap();
        let got: Vec<f64> = total[2..13]
            .iter()
            .map(|c| match c {
                Data::Float(f) => *f,
                Data::Int(i) => *i as f64,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            [26.0, 7.0, 13.0, 6.0, 15.0, 7.0, 4.0, 4.0, 11.0, 6.0, 5.0]
        );
        let merged = book.worksheet_merge_cells("Biểu 06").unwrap().unwrap();
        assert!(merged.len() >= 15, "{}", merged.len());
        let ind = book.worksheet_range("Chỉ số 2.1").unwrap();
        let stp = ind
            .rows()
            .find(|row| row.get(1) == Some(&Data::String("Sở Tư pháp".into())))
            .unwrap();
        assert_eq!(stp[2], Data::Float(7.0));
        assert_eq!(stp[3], Data::Float(12.0));
        let late = book.worksheet_range("Hồ sơ trễ hạn").unwrap();
        assert_eq!(late.rows().count(), 4 + 9);
    }
}
