//! Message templates (minijinja): Vietnamese by default and English, a subject, a
//! plain-text and an HTML part each, built in and overridable from a directory
//! (`alerts.templates_dir`, files `NAME.LANG.subject`, `NAME.LANG.txt`,
//! `NAME.LANG.html`). Undefined variables are errors, and `check-config` renders every
//! template against a fixture, so a broken template is caught before 7:30 in the
//! morning. HTML is auto-escaped.

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{json, Value};
use std::path::Path;

/// The languages messages are written in.
pub const LANGS: [&str; 2] = ["vi", "en"];
/// The message kinds (one set of three parts per language each).
pub const NAMES: [&str; 4] = ["alert", "digest", "weekly", "monthly_report"];

const BUILTIN: &[(&str, &str)] = &[
    (
        "weekly.vi.subject",
        "[slawatch] Báo cáo tuần {{ date }}: đơn vị quá hạn và tỷ lệ đúng hạn",
    ),
    (
        "weekly.vi.txt",
        "Kính gửi {{ recipient.name or recipient.email }},\n\n\
Báo cáo ngày {{ date }}.\n\n\
Đơn vị có hồ sơ đang quá hạn:\n\
{% for u in by_overdue %}{{ u.rank }}. {{ u.unit_name }} ({{ u.head }}): {{ u.overdue }} hồ sơ\n\
{% else %}Không có đơn vị nào có hồ sơ quá hạn.\n{% endfor %}\n\
Tỷ lệ giải quyết đúng hạn quý này, thấp nhất trước:\n\
{% for u in by_ratio %}{{ u.rank }}. {{ u.unit_name }}: {{ u.ratio }} ({{ u.on_time }}/{{ u.population }})\n\
{% else %}Chưa có hồ sơ trong quý.\n{% endfor %}\n\
Đơn vị thường xuyên quá hạn (có hồ sơ quá hạn trong ít nhất 3 của 4 tuần, từ {{ weeks_from }} đến {{ weeks_to }}):\n\
{% for u in regularly_late %}- {{ u.unit_name }}, thủ trưởng: {{ u.head }} ({{ u.weeks }}/4 tuần)\n\
{% else %}Không có.\n{% endfor %}\n\
Thư này do hệ thống slawatch gửi tự động lúc {{ generated_at }}; xin không trả lời thư này.\n",
    ),
    (
        "weekly.vi.html",
        "<!doctype html>\n<html lang=\"vi\"><head><meta charset=\"utf-8\"><title>{{ subject }}</title></head>\n<body>\n\
<p>Kính gửi {{ recipient.name or recipient.email }},</p>\n<p>Báo cáo ngày {{ date }}.</p>\n\
<h3>Đơn vị có hồ sơ đang quá hạn</h3>\n<ol>{% for u in by_overdue %}<li>{{ u.unit_name }} ({{ u.head }}): {{ u.overdue }} hồ sơ</li>{% else %}<li>Không có.</li>{% endfor %}</ol>\n\
<h3>Tỷ lệ giải quyết đúng hạn quý này</h3>\n<ol>{% for u in by_ratio %}<li>{{ u.unit_name }}: {{ u.ratio }} ({{ u.on_time }}/{{ u.population }})</li>{% endfor %}</ol>\n\
<h3>Đơn vị thường xuyên quá hạn</h3>\n<p>Có hồ sơ quá hạn trong ít nhất 3 của 4 tuần, từ {{ weeks_from }} đến {{ weeks_to }}.</p>\n\
<ul>{% for u in regularly_late %}<li><strong>{{ u.unit_name }}</strong>, thủ trưởng: {{ u.head }} ({{ u.weeks }}/4 tuần)</li>{% else %}<li>Không có.</li>{% endfor %}</ul>\n\
<p><small>Thư này do hệ thống slawatch gửi tự động lúc {{ generated_at }}; xin không trả lời thư này.</small></p>\n</body></html>\n",
    ),
    (
        "weekly.en.subject",
        "[slawatch] Weekly report {{ date }}: overdue units and on-time ratios",
    ),
    (
        "weekly.en.txt",
        "Dear {{ recipient.name or recipient.email }},\n\n\
Report of {{ date }}.\n\n\
Units with overdue cases:\n\
{% for u in by_overdue %}{{ u.rank }}. {{ u.unit_name }} ({{ u.head }}): {{ u.overdue }} cases\n\
{% else %}No unit has an overdue case.\n{% endfor %}\n\
On-time ratio this quarter, lowest first:\n\
{% for u in by_ratio %}{{ u.rank }}. {{ u.unit_name }}: {{ u.ratio }} ({{ u.on_time }}/{{ u.population }})\n\
{% else %}No cases this quarter yet.\n{% endfor %}\n\
Regularly late units (an overdue case in at least 3 of the 4 weeks from {{ weeks_from }} to {{ weeks_to }}):\n\
{% for u in regularly_late %}- {{ u.unit_name }}, head: {{ u.head }} ({{ u.weeks }}/4 weeks)\n\
{% else %}None.\n{% endfor %}\n\
Sent automatically by slawatch at {{ generated_at }}; please do not reply.\n",
    ),
    (
        "weekly.en.html",
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{{ subject }}</title></head>\n<body>\n\
<p>Dear {{ recipient.name or recipient.email }},</p>\n<p>Report of {{ date }}.</p>\n\
<h3>Units with overdue cases</h3>\n<ol>{% for u in by_overdue %}<li>{{ u.unit_name }} ({{ u.head }}): {{ u.overdue }} cases</li>{% else %}<li>None.</li>{% endfor %}</ol>\n\
<h3>On-time ratio this quarter</h3>\n<ol>{% for u in by_ratio %}<li>{{ u.unit_name }}: {{ u.ratio }} ({{ u.on_time }}/{{ u.population }})</li>{% endfor %}</ol>\n\
<h3>Regularly late units</h3>\n<p>An overdue case in at least 3 of the 4 weeks from {{ weeks_from }} to {{ weeks_to }}.</p>\n\
<ul>{% for u in regularly_late %}<li><strong>{{ u.unit_name }}</strong>, head: {{ u.head }} ({{ u.weeks }}/4 weeks)</li>{% else %}<li>None.</li>{% endfor %}</ul>\n\
<p><small>Sent automatically by slawatch at {{ generated_at }}; please do not reply.</small></p>\n</body></html>\n",
    ),
    (
        "alert.vi.subject",
        include_str!("../../templates/mail/alert.vi.subject"),
    ),
    (
        "alert.vi.txt",
        include_str!("../../templates/mail/alert.vi.txt"),
    ),
    (
        "alert.vi.html",
        include_str!("../../templates/mail/alert.vi.html"),
    ),
    (
        "alert.en.subject",
        include_str!("../../templates/mail/alert.en.subject"),
    ),
    (
        "alert.en.txt",
        include_str!("../../templates/mail/alert.en.txt"),
    ),
    (
        "alert.en.html",
        include_str!("../../templates/mail/alert.en.html"),
    ),
    (
        "digest.vi.subject",
        include_str!("../../templates/mail/digest.vi.subject"),
    ),
    (
        "digest.vi.txt",
        include_str!("../../templates/mail/digest.vi.txt"),
    ),
    (
        "digest.vi.html",
        include_str!("../../templates/mail/digest.vi.html"),
    ),
    (
        "digest.en.subject",
        include_str!("../../templates/mail/digest.en.subject"),
    ),
    (
        "digest.en.txt",
        include_str!("../../templates/mail/digest.en.txt"),
    ),
    (
        "digest.en.html",
        include_str!("../../templates/mail/digest.en.html"),
    ),
    (
        "monthly_report.vi.subject",
        include_str!("../../templates/mail/monthly_report.vi.subject"),
    ),
    (
        "monthly_report.vi.txt",
        include_str!("../../templates/mail/monthly_report.vi.txt"),
    ),
    (
        "monthly_report.vi.html",
        include_str!("../../templates/mail/monthly_report.vi.html"),
    ),
    (
        "monthly_report.en.subject",
        include_str!("../../templates/mail/monthly_report.en.subject"),
    ),
    (
        "monthly_report.en.txt",
        include_str!("../../templates/mail/monthly_report.en.txt"),
    ),
    (
        "monthly_report.en.html",
        include_str!("../../templates/mail/monthly_report.en.html"),
    ),
];

/// `text` with `&`, `<`, `>`, `"` and `'` escaped for HTML text and attributes.
fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A rule's (or digest section's) name in a language.
pub fn rule_label(rule: &str, lang: &str) -> &'static str {
    match (rule, lang) {
        ("unknown_unit", "en") => "Unknown unit",
        ("source_stale", "en") => "Data source stale",
        ("source_stale", _) => "Nguồn dữ liệu không cập nhật",
        ("unknown_unit", _) => "Đơn vị chưa xác định",
        ("due_soon", "en") => "Due soon",
        ("apology_due", "en") => "Apology letter due",
        ("overdue", "en") => "Overdue",
        ("escalated", "en") => "Long overdue, escalated",
        ("stuck", "en") => "No progress recorded",
        ("step_overdue", "en") => "Step overdue",
        ("due_soon", _) => "Sắp đến hạn",
        ("apology_due", _) => "Cần văn bản xin lỗi",
        ("overdue", _) => "Quá hạn",
        ("escalated", _) => "Quá hạn kéo dài, báo cáo cấp trên",
        ("stuck", _) => "Chưa cập nhật tiến độ",
        ("step_overdue", _) => "Bước xử lý quá hạn",
        _ => "Cảnh báo",
    }
}

/// A rendered message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template {name}: {message}")]
    Render { name: String, message: String },
    #[error("templates folder {0}: {1}")]
    Folder(String, std::io::Error),
}

/// Escapes what HTML needs escaped and leaves `/` alone, so dates and links read as
/// written in the page or message source too (the e-mails and the desk share it).
pub fn set_html_formatter(env: &mut Environment<'_>) {
    env.set_formatter(|out, state, value| match value.as_str() {
        Some(text) if state.auto_escape() == minijinja::AutoEscape::Html && !value.is_safe() => out
            .write_str(&html_escape(text))
            .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, e.to_string())),
        _ => minijinja::escape_formatter(out, state, value),
    });
}

/// The templates in use.
pub struct Templates {
    env: Environment<'static>,
    desk: Option<crate::desk::DeskLinks>,
}

impl Templates {
    /// The built-in templates, each replaced by a file of the same name in `dir`.
    pub fn load(dir: Option<&Path>) -> Result<Templates, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                minijinja::AutoEscape::Html
            } else {
                minijinja::AutoEscape::None
            }
        });
        set_html_formatter(&mut env);
        for (name, text) in BUILTIN {
            let source = match dir.map(|d| d.join(name)) {
                Some(p) if p.exists() => std::fs::read_to_string(&p)
                    .map_err(|e| TemplateError::Folder(p.display().to_string(), e))?,
                _ => text.to_string(),
            };
            env.add_template_owned(name.to_string(), source)
                .map_err(|e| TemplateError::Render {
                    name: name.to_string(),
                    message: e.to_string(),
                })?;
        }
        Ok(Templates { env, desk: None })
    }

    /// Messages link to the desk with these (`[http] public_url` and its secret).
    pub fn with_desk_links(mut self, links: Option<crate::desk::DeskLinks>) -> Templates {
        self.desk = links;
        self
    }

    /// How messages link to the desk, when they do.
    pub fn desk_links(&self) -> Option<&crate::desk::DeskLinks> {
        self.desk.as_ref()
    }

    /// Renders the three parts of `name` in `lang` (unknown languages fall back to vi).
    pub fn render(&self, name: &str, lang: &str, ctx: &Value) -> Result<Rendered, TemplateError> {
        let lang = if LANGS.contains(&lang) { lang } else { "vi" };
        let part = |p: &str, ctx: &Value| -> Result<String, TemplateError> {
            let full = format!("{name}.{lang}.{p}");
            self.env
                .get_template(&full)
                .and_then(|t| t.render(ctx))
                .map_err(|e| TemplateError::Render {
                    name: full.clone(),
                    message: format!("{e:#}"),
                })
        };
        let subject = part("subject", ctx)?.trim().replace(['\r', '\n'], " ");
        let mut with_subject = ctx.clone();
        if let Some(o) = with_subject.as_object_mut() {
            o.insert("subject".into(), Value::String(subject.clone()));
        }
        Ok(Rendered {
            text: part("txt", &with_subject)?,
            html: part("html", &with_subject)?,
            subject,
        })
    }

    /// Renders every template against the fixture; the errors, one per template.
    pub fn check(&self) -> Vec<String> {
        let mut errors = Vec::new();
        for name in NAMES {
            for lang in LANGS {
                if let Err(e) = self.render(name, lang, &fixture_for(name, lang)) {
                    errors.push(e.to_string());
                }
            }
        }
        errors
    }
}

/// What every rendered message is given besides its own context: the time of sending.
fn sending(ctx: &mut Value, lang: &str) {
    ctx["recipient"] =
        json!({"name": "Giám đốc Sở Tư pháp", "email": "giamdoc@stp.example.gov.vn"});
    ctx["generated_at"] = json!("15/03/2024 15:43");
    ctx["sent_time"] = json!("15:43");
    ctx["sent_date"] = json!("15/03/2024");
    ctx["part_of_day"] = json!(if lang == "en" { "afternoon" } else { "chiều" });
    ctx["desk"] = json!({"url": "https://slawatch.tinh.example.gov.vn/desk/unit/STP?t=…"});
    let first = |v: &mut Value| {
        if let Some(c) = v.as_array_mut().and_then(|a| a.first_mut()) {
            let id = c["case_id"].as_str().unwrap_or("").to_string();
            c["desk_url"] = json!(format!(
                "https://slawatch.tinh.example.gov.vn/desk/case/portal/{id}?t=…"
            ));
        }
    };
    first(&mut ctx["cases"]);
    if let Some(s) = ctx["sections"].as_array_mut().and_then(|a| a.first_mut()) {
        first(&mut s["cases"]);
    }
}

/// The context of a message kind, filled with sample values.
pub fn fixture_for(name: &str, lang: &str) -> Value {
    if name == "weekly" {
        return json!({
            "recipient": {"name": "Chánh Văn phòng", "email": "chanhvanphong@ubnd.example.gov.vn"},
            "generated_at": "18/03/2024 08:00",
            "sent_time": "08:00",
            "sent_date": "18/03/2024",
            "part_of_day": if lang == "en" { "morning" } else { "sáng" },
            "date": "18/03/2024",
            "weeks_from": "19/02/2024",
            "weeks_to": "17/03/2024",
            "by_overdue": [{"rank": 1, "unit": "STP", "unit_name": "Sở Tư pháp", "head": "Giám đốc Sở Tư pháp", "overdue": 3}],
            "by_ratio": [{"rank": 1, "unit": "STP", "unit_name": "Sở Tư pháp", "head": "Giám đốc Sở Tư pháp", "ratio": if lang == "en" { "50.0%" } else { "50,0%" }, "on_time": 2, "population": 4}],
            "regularly_late": [{"unit": "STP", "unit_name": "Sở Tư pháp", "head": "Giám đốc Sở Tư pháp", "weeks": 3}],
        });
    }
    if name == "monthly_report" {
        let en = lang == "en";
        let n = |v: u64| crate::report::mail::count(v, lang);
        let dec = |vi: &str| {
            if en {
                vi.replace(',', ".")
            } else {
                vi.to_string()
            }
        };
        let mut ctx = json!({
            "period": "2024-02",
            "period_name": if en { "2024-02" } else { "tháng 02/2024" },
            "from": "01/02/2024", "to": "29/02/2024",
            "reporter": "UBND tỉnh Hà Tĩnh",
            "received": n(10504), "received_online": n(4496), "carried_over": n(2879),
            "finished": n(7384), "early": n(6035), "on_time": n(1099), "late": n(250),
            "in_progress": n(3120), "overdue": n(376),
            "ratio": dec("92,8%"), "points": dec("18,56"),
            "numerator": n(18032), "denominator": n(19435), "late_cases": n(626),
            "lowest": [{"name": "Sở Xây dựng", "ratio": dec("81,3%"), "on_time": n(406), "population": n(499)}],
            "most_overdue": [{"name": "Sở Xây dựng", "overdue": n(36)}],
            "regularly_late": [{"name": "Sở Xây dựng", "head": "Giám đốc Sở Xây dựng"}],
            "file_name": "bieu06-2024-02.xlsx",
            "calendar": "vn-official@364100",
            "until": "01/03/2024 00:00",
        });
        sending(&mut ctx, lang);
        ctx["recipient"] =
            json!({"name": "Chánh Văn phòng", "email": "chanhvanphong@ubnd.example.gov.vn"});
        return ctx;
    }
    if name != "digest" {
        return fixture(lang);
    }
    let vi = lang != "en";
    let item = |id: &str, procedure: &str, short: &str| {
        json!({
            "source": "portal", "case_id": id, "kind": "dossier", "procedure": procedure,
            "unit": "STP", "unit_name": "Sở Tư pháp", "due": "08/03/2024 17:00",
            "due_estimated": false, "state": "overdue", "overdue_workdays": 4,
            "short": short, "idle_since": null, "ack": null, "desk_url": null,
            "link": format!("https://motcua.example.gov.vn/hoso/{id}"),
        })
    };
    let late = item(
        "000.00.12.H22-240301-0001",
        "Cấp giấy phép xây dựng nhà ở riêng lẻ",
        if vi {
            "Hạn hết ngày 08/03/2024 · quá hạn 4 ngày làm việc · đang ở bước «Thẩm định» (Phòng Quản lý xây dựng)"
        } else {
            "Due end of 08/03/2024 · overdue by 4 workdays · at step «Thẩm định» (Phòng Quản lý xây dựng)"
        },
    );
    let mut acked = item(
        "000.00.12.H22-240305-0007",
        "Cấp phiếu lý lịch tư pháp",
        if vi {
            "Hạn 12/03/2024 10:30 · quá hạn 2 ngày làm việc"
        } else {
            "Due 12/03/2024 10:30 · overdue by 2 workdays"
        },
    );
    acked["link"] = Value::Null;
    acked["ack"] = json!({"by": "Phó Giám đốc Sở Tư pháp", "at": "14/03/2024 09:15", "note": "Đã gửi văn bản xin lỗi và đề nghị gia hạn"});
    let mut idle = item(
        "000.00.12.H22-240307-0003",
        "Chứng thực bản sao từ bản chính",
        if vi {
            "Hạn hết ngày 20/03/2024"
        } else {
            "Due end of 20/03/2024"
        },
    );
    idle["idle_since"] = json!("11/03/2024");
    let mut task = item(
        "NV-2024-031",
        "Báo cáo rà soát thủ tục hành chính quý I",
        if vi {
            "Hạn hết ngày 18/03/2024"
        } else {
            "Due end of 18/03/2024"
        },
    );
    task["kind"] = json!("task");
    task["link"] = Value::Null;
    let counts = [("overdue", 2), ("stuck", 1), ("due_soon", 1)]
        .iter()
        .map(|(s, n)| json!({"section": s, "title": rule_label(s, lang), "count": n, "action": crate::alert::mail::action(s, lang)}))
        .collect::<Vec<_>>();
    let mut ctx = json!({
        "unit": "STP",
        "unit_name": "Sở Tư pháp",
        "date": "15/03/2024",
        "total": 4,
        "counts": counts,
        "sections": [
            {"section": "overdue", "title": rule_label("overdue", lang), "count": 2, "acknowledged": 1, "more": 0, "cases": [late, acked]},
            {"section": "stuck", "title": rule_label("stuck", lang), "count": 1, "acknowledged": 0, "more": 0, "cases": [idle]},
        ],
        "tasks": [{"section": "due_soon", "title": rule_label("due_soon", lang), "count": 1, "acknowledged": 0, "more": 0, "cases": [task]}],
        "stale": [{"source": "portal", "since": "15/03/2024 06:10"}],
    });
    sending(&mut ctx, lang);
    ctx
}

/// Sample alert items for one head: an overdue case that also wants its apology letter
/// (one entry), a case due soon, and a case whose step is late.
pub fn sample_items(lang: &str) -> Vec<crate::alert::mail::Item> {
    use crate::alert::mail::Item;
    let vi = lang != "en";
    let base = Item {
        source: "portal".into(),
        kind: "dossier".into(),
        unit: Some("STP".into()),
        unit_name: "Sở Tư pháp".into(),
        ..Item::default()
    };
    let late = Item {
        rule: "overdue".into(),
        case_id: "000.00.12.H22-240301-0001".into(),
        procedure: Some("Cấp giấy phép xây dựng nhà ở riêng lẻ".into()),
        due: if vi {
            "hết ngày 08/03/2024"
        } else {
            "end of 08/03/2024"
        }
        .into(),
        due_at: Some("2024-03-08T10:00:00Z".into()),
        overdue_workdays: 4,
        step: Some("«Thẩm định» (Phòng Quản lý xây dựng)".into()),
        step_title: Some("Thẩm định".into()),
        short: if vi {
            "Hạn hết ngày 08/03/2024 · đang ở bước «Thẩm định» (Phòng Quản lý xây dựng)"
        } else {
            "Due end of 08/03/2024 · at step «Thẩm định» (Phòng Quản lý xây dựng)"
        }
        .into(),
        link: Some("https://motcua.example.gov.vn/hoso/000.00.12.H22-240301-0001".into()),
        ..base.clone()
    };
    let sorry = Item {
        rule: "apology_due".into(),
        ..late.clone()
    };
    let soon = Item {
        rule: "due_soon".into(),
        case_id: "000.00.12.H22-240311-0002".into(),
        procedure: Some("Cấp phiếu lý lịch tư pháp".into()),
        due: "18/03/2024 10:30".into(),
        due_at: Some("2024-03-18T03:30:00Z".into()),
        short: if vi {
            "Hạn 18/03/2024 10:30"
        } else {
            "Due 18/03/2024 10:30"
        }
        .into(),
        ..base.clone()
    };
    let step = Item {
        rule: "step_overdue".into(),
        case_id: "000.00.12.H22-240304-0005".into(),
        procedure: Some("Đăng ký khai sinh".into()),
        due: if vi {
            "hết ngày 22/03/2024"
        } else {
            "end of 22/03/2024"
        }
        .into(),
        due_at: Some("2024-03-22T10:00:00Z".into()),
        step: Some("«Ký duyệt» (Lãnh đạo Sở)".into()),
        step_title: Some("Ký duyệt".into()),
        short: if vi {
            "Hạn hết ngày 22/03/2024 · đang ở bước «Ký duyệt» (Lãnh đạo Sở)"
        } else {
            "Due end of 22/03/2024 · at step «Ký duyệt» (Lãnh đạo Sở)"
        }
        .into(),
        ..base
    };
    vec![step, soon, sorry, late]
}

/// The context an alert message is rendered with, filled with sample values.
pub fn fixture(lang: &str) -> Value {
    let mut ctx = crate::alert::mail::compose(&sample_items(lang), lang, 30);
    sending(&mut ctx, lang);
    ctx
}

#[cfg(test)]
mod tests;
