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
pub const NAMES: [&str; 3] = ["alert", "digest", "weekly"];

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
        "digest.vi.subject",
        "[slawatch] {{ unit_name }}: {{ total }} hồ sơ cần chú ý ngày {{ date }}",
    ),
    (
        "digest.vi.txt",
        "Kính gửi {{ recipient.name or recipient.email }},\n\n\
Tình hình hồ sơ của {{ unit_name }} sáng {{ date }}:\n\
{% for s in stale %}(Lưu ý: dữ liệu từ nguồn {{ s.source }} chỉ cập nhật đến {{ s.since }}.)\n{% endfor %}\
{% for sec in sections %}\n{{ sec.title }} ({{ sec.count }}{% if sec.acknowledged %}, {{ sec.acknowledged }} đã xác nhận{% endif %}):\n{% for it in sec.cases %}\
- Hồ sơ {{ it.case_id }}{% if it.procedure %} — {{ it.procedure }}{% endif %}. Hạn: {{ it.due }}{% if it.due_estimated %} (lịch ước tính){% endif %}.{% if it.overdue_workdays > 0 %} Quá hạn {{ it.overdue_workdays }} ngày làm việc.{% endif %}\n\
{% if it.ack %}  Đã xác nhận: {{ it.ack.by }}, {{ it.ack.at }}: {{ it.ack.note }}\n{% else %}{% for line in it.trace %}    · {{ line }}\n{% endfor %}{% endif %}\
{% if it.link %}  Xem hồ sơ: {{ it.link }}\n{% endif %}{% endfor %}{% endfor %}\
{% if tasks %}\nNhiệm vụ được giao:\n{% for sec in tasks %}{{ sec.title }} ({{ sec.count }}{% if sec.acknowledged %}, {{ sec.acknowledged }} đã xác nhận{% endif %}):\n{% for it in sec.cases %}\
- {{ it.case_id }}{% if it.procedure %} — {{ it.procedure }}{% endif %}. Hạn: {{ it.due }}{% if it.due_estimated %} (lịch ước tính){% endif %}.{% if it.ack %} Đã xác nhận: {{ it.ack.by }}, {{ it.ack.at }}: {{ it.ack.note }}{% endif %}\n{% endfor %}{% endfor %}{% endif %}\n\
Thư này do hệ thống slawatch gửi tự động lúc {{ generated_at }}; xin không trả lời thư này.\n",
    ),
    (
        "digest.vi.html",
        "<!doctype html>\n<html lang=\"vi\"><head><meta charset=\"utf-8\"><title>{{ subject }}</title></head>\n<body>\n\
<p>Kính gửi {{ recipient.name or recipient.email }},</p>\n<p>Tình hình hồ sơ của <strong>{{ unit_name }}</strong> sáng {{ date }}:</p>\n\
{% for s in stale %}<p><em>Lưu ý: dữ liệu từ nguồn {{ s.source }} chỉ cập nhật đến {{ s.since }}.</em></p>\n{% endfor %}\
{% for sec in sections %}<h3>{{ sec.title }} ({{ sec.count }}{% if sec.acknowledged %}, {{ sec.acknowledged }} đã xác nhận{% endif %})</h3>\n<ul>{% for it in sec.cases %}<li>Hồ sơ {% if it.link %}<a href=\"{{ it.link }}\">{{ it.case_id }}</a>{% else %}{{ it.case_id }}{% endif %}{% if it.procedure %} — {{ it.procedure }}{% endif %}. Hạn: {{ it.due }}{% if it.due_estimated %} (lịch ước tính){% endif %}.{% if it.overdue_workdays > 0 %} Quá hạn {{ it.overdue_workdays }} ngày làm việc.{% endif %}\
{% if it.ack %}<br><em>Đã xác nhận: {{ it.ack.by }}, {{ it.ack.at }}: {{ it.ack.note }}</em>{% elif it.trace %}<ul>{% for line in it.trace %}<li>{{ line }}</li>{% endfor %}</ul>{% endif %}</li>{% endfor %}</ul>\n{% endfor %}\
{% if tasks %}<h3>Nhiệm vụ được giao</h3>\n{% for sec in tasks %}<h4>{{ sec.title }} ({{ sec.count }}{% if sec.acknowledged %}, {{ sec.acknowledged }} đã xác nhận{% endif %})</h4><ul>{% for it in sec.cases %}<li>{{ it.case_id }}{% if it.procedure %} — {{ it.procedure }}{% endif %}. Hạn: {{ it.due }}{% if it.due_estimated %} (lịch ước tính){% endif %}.{% if it.ack %} <em>Đã xác nhận: {{ it.ack.by }}, {{ it.ack.at }}: {{ it.ack.note }}</em>{% endif %}</li>{% endfor %}</ul>\n{% endfor %}{% endif %}\
<p><small>Thư này do hệ thống slawatch gửi tự động lúc {{ generated_at }}; xin không trả lời thư này.</small></p>\n</body></html>\n",
    ),
    (
        "digest.en.subject",
        "[slawatch] {{ unit_name }}: {{ total }} cases need attention on {{ date }}",
    ),
    (
        "digest.en.txt",
        "Dear {{ recipient.name or recipient.email }},\n\n\
Cases of {{ unit_name }} on the morning of {{ date }}:\n\
{% for s in stale %}(Note: data from {{ s.source }} is only current to {{ s.since }}.)\n{% endfor %}\
{% for sec in sections %}\n{{ sec.title }} ({{ sec.count }}{% if sec.acknowledged %}, {{ sec.acknowledged }} acknowledged{% endif %}):\n{% for it in sec.cases %}\
- Case {{ it.case_id }}{% if it.procedure %} — {{ it.procedure }}{% endif %}. Due: {{ it.due }}{% if it.due_estimated %} (estimated calendar){% endif %}.{% if it.overdue_workdays > 0 %} Overdue by {{ it.overdue_workdays }} workdays.{% endif %}\n\
{% if it.ack %}  Acknowledged by {{ it.ack.by }}, {{ it.ack.at }}: {{ it.ack.note }}\n{% else %}{% for line in it.trace %}    · {{ line }}\n{% endfor %}{% endif %}\
{% if it.link %}  Open: {{ it.link }}\n{% endif %}{% endfor %}{% endfor %}\
{% if tasks %}\nAssigned tasks:\n{% for sec in tasks %}{{ sec.title }} ({{ sec.count }}{% if sec.acknowledged %}, {{ sec.acknowledged }} acknowledged{% endif %}):\n{% for it in sec.cases %}\
- {{ it.case_id }}{% if it.procedure %} — {{ it.procedure }}{% endif %}. Due: {{ it.due }}{% if it.due_estimated %} (estimated calendar){% endif %}.{% if it.ack %} Acknowledged by {{ it.ack.by }}, {{ it.ack.at }}: {{ it.ack.note }}{% endif %}\n{% endfor %}{% endfor %}{% endif %}\n\
Sent automatically by slawatch at {{ generated_at }}; please do not reply.\n",
    ),
    (
        "digest.en.html",
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{{ subject }}</title></head>\n<body>\n\
<p>Dear {{ recipient.name or recipient.email }},</p>\n<p>Cases of <strong>{{ unit_name }}</strong> on the morning of {{ date }}:</p>\n\
{% for s in stale %}<p><em>Note: data from {{ s.source }} is only current to {{ s.since }}.</em></p>\n{% endfor %}\
{% for sec in sections %}<h3>{{ sec.title }} ({{ sec.count }}{% if sec.acknowledged %}, {{ sec.acknowledged }} acknowledged{% endif %})</h3>\n<ul>{% for it in sec.cases %}<li>Case {% if it.link %}<a href=\"{{ it.link }}\">{{ it.case_id }}</a>{% else %}{{ it.case_id }}{% endif %}{% if it.procedure %} — {{ it.procedure }}{% endif %}. Due: {{ it.due }}{% if it.due_estimated %} (estimated calendar){% endif %}.{% if it.overdue_workdays > 0 %} Overdue by {{ it.overdue_workdays }} workdays.{% endif %}\
{% if it.ack %}<br><em>Acknowledged by {{ it.ack.by }}, {{ it.ack.at }}: {{ it.ack.note }}</em>{% elif it.trace %}<ul>{% for line in it.trace %}<li>{{ line }}</li>{% endfor %}</ul>{% endif %}</li>{% endfor %}</ul>\n{% endfor %}\
{% if tasks %}<h3>Assigned tasks</h3>\n{% for sec in tasks %}<h4>{{ sec.title }} ({{ sec.count }}{% if sec.acknowledged %}, {{ sec.acknowledged }} acknowledged{% endif %})</h4><ul>{% for it in sec.cases %}<li>{{ it.case_id }}{% if it.procedure %} — {{ it.procedure }}{% endif %}. Due: {{ it.due }}{% if it.due_estimated %} (estimated calendar){% endif %}.{% if it.ack %} <em>Acknowledged by {{ it.ack.by }}, {{ it.ack.at }}: {{ it.ack.note }}</em>{% endif %}</li>{% endfor %}</ul>\n{% endfor %}{% endif %}\
<p><small>Sent automatically by slawatch at {{ generated_at }}; please do not reply.</small></p>\n</body></html>\n",
    ),
    (
        "alert.vi.subject",
        "{% if items|length == 1 %}[{{ items[0].rule_label }}] {% if items[0].source == 'ops' %}Nguồn dữ liệu{% else %}Hồ sơ{% endif %} {{ items[0].case_id }}{% if items[0].procedure %} — {{ items[0].procedure }}{% endif %}{% else %}[slawatch] {{ items|length }} cảnh báo cần xử lý{% endif %}",
    ),
    (
        "alert.vi.txt",
        "Kính gửi {{ recipient.name or recipient.email }},\n\n\
{% if items|length == 1 %}{% if items[0].source == 'ops' %}Nguồn dữ liệu sau cần được kiểm tra:{% else %}Hồ sơ sau cần được xử lý:{% endif %}{% else %}{{ items|length }} cảnh báo sau cần được xử lý:{% endif %}\n\
{% for it in items %}\n\
- [{{ it.rule_label }}] {% if it.source == 'ops' %}Nguồn dữ liệu{% else %}Hồ sơ{% endif %} {{ it.case_id }}{% if it.procedure %} — {{ it.procedure }}{% endif %}\n\
\x20 {% if it.source == 'ops' %}Lần lấy dữ liệu thành công gần nhất: {{ it.due }}.{% else %}Đơn vị: {{ it.unit_name }}. Hạn xử lý: {{ it.due }}{% if it.due_estimated %} (lịch ước tính){% endif %}.{% if it.overdue_workdays > 0 %} Đã quá hạn {{ it.overdue_workdays }} ngày làm việc.{% endif %}{% endif %}\n\
{% for line in it.trace %}    · {{ line }}\n{% endfor %}\
{% if it.link %}  Xem hồ sơ: {{ it.link }}\n{% endif %}\
{% endfor %}\n\
Thư này do hệ thống slawatch gửi tự động lúc {{ generated_at }}; xin không trả lời thư này.\n",
    ),
    (
        "alert.vi.html",
        "<!doctype html>\n<html lang=\"vi\"><head><meta charset=\"utf-8\"><title>{{ subject }}</title></head>\n<body>\n\
<p>Kính gửi {{ recipient.name or recipient.email }},</p>\n\
<p>{% if items|length == 1 %}{% if items[0].source == 'ops' %}Nguồn dữ liệu sau cần được kiểm tra:{% else %}Hồ sơ sau cần được xử lý:{% endif %}{% else %}{{ items|length }} cảnh báo sau cần được xử lý:{% endif %}</p>\n<ul>\n\
{% for it in items %}<li><strong>[{{ it.rule_label }}]</strong> {% if it.source == 'ops' %}Nguồn dữ liệu{% else %}Hồ sơ{% endif %} {% if it.link %}<a href=\"{{ it.link }}\">{{ it.case_id }}</a>{% else %}{{ it.case_id }}{% endif %}{% if it.procedure %} — {{ it.procedure }}{% endif %}<br>\n\
{% if it.source == 'ops' %}Lần lấy dữ liệu thành công gần nhất: {{ it.due }}.{% else %}Đơn vị: {{ it.unit_name }}. Hạn xử lý: {{ it.due }}{% if it.due_estimated %} (lịch ước tính){% endif %}.{% if it.overdue_workdays > 0 %} Đã quá hạn {{ it.overdue_workdays }} ngày làm việc.{% endif %}{% endif %}\n\
{% if it.trace %}<ul>{% for line in it.trace %}<li>{{ line }}</li>{% endfor %}</ul>{% endif %}</li>\n{% endfor %}</ul>\n\
<p><small>Thư này do hệ thống slawatch gửi tự động lúc {{ generated_at }}; xin không trả lời thư này.</small></p>\n</body></html>\n",
    ),
    (
        "alert.en.subject",
        "{% if items|length == 1 %}[{{ items[0].rule_label }}] {% if items[0].source == 'ops' %}Data source{% else %}Case{% endif %} {{ items[0].case_id }}{% if items[0].procedure %} — {{ items[0].procedure }}{% endif %}{% else %}[slawatch] {{ items|length }} alerts need action{% endif %}",
    ),
    (
        "alert.en.txt",
        "Dear {{ recipient.name or recipient.email }},\n\n\
{% if items|length == 1 %}{% if items[0].source == 'ops' %}This data source needs checking:{% else %}This case needs action:{% endif %}{% else %}These {{ items|length }} alerts need action:{% endif %}\n\
{% for it in items %}\n\
- [{{ it.rule_label }}] {% if it.source == 'ops' %}Data source{% else %}Case{% endif %} {{ it.case_id }}{% if it.procedure %} — {{ it.procedure }}{% endif %}\n\
\x20 {% if it.source == 'ops' %}Last successful poll: {{ it.due }}.{% else %}Unit: {{ it.unit_name }}. Due: {{ it.due }}{% if it.due_estimated %} (estimated calendar){% endif %}.{% if it.overdue_workdays > 0 %} Overdue by {{ it.overdue_workdays }} workdays.{% endif %}{% endif %}\n\
{% for line in it.trace %}    · {{ line }}\n{% endfor %}\
{% if it.link %}  Open: {{ it.link }}\n{% endif %}\
{% endfor %}\n\
Sent automatically by slawatch at {{ generated_at }}; please do not reply.\n",
    ),
    (
        "alert.en.html",
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{{ subject }}</title></head>\n<body>\n\
<p>Dear {{ recipient.name or recipient.email }},</p>\n\
<p>{% if items|length == 1 %}{% if items[0].source == 'ops' %}This data source needs checking:{% else %}This case needs action:{% endif %}{% else %}These {{ items|length }} alerts need action:{% endif %}</p>\n<ul>\n\
{% for it in items %}<li><strong>[{{ it.rule_label }}]</strong> {% if it.source == 'ops' %}Data source{% else %}Case{% endif %} {% if it.link %}<a href=\"{{ it.link }}\">{{ it.case_id }}</a>{% else %}{{ it.case_id }}{% endif %}{% if it.procedure %} — {{ it.procedure }}{% endif %}<br>\n\
{% if it.source == 'ops' %}Last successful poll: {{ it.due }}.{% else %}Unit: {{ it.unit_name }}. Due: {{ it.due }}{% if it.due_estimated %} (estimated calendar){% endif %}.{% if it.overdue_workdays > 0 %} Overdue by {{ it.overdue_workdays }} workdays.{% endif %}{% endif %}\n\
{% if it.trace %}<ul>{% for line in it.trace %}<li>{{ line }}</li>{% endfor %}</ul>{% endif %}</li>\n{% endfor %}</ul>\n\
<p><small>Sent automatically by slawatch at {{ generated_at }}; please do not reply.</small></p>\n</body></html>\n",
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
        ("stuck", "en") => "Stuck",
        ("step_overdue", "en") => "Step overdue",
        ("due_soon", _) => "Sắp đến hạn",
        ("apology_due", _) => "Cần gửi văn bản xin lỗi",
        ("overdue", _) => "Quá hạn",
        ("escalated", _) => "Quá hạn kéo dài, báo cáo cấp trên",
        ("stuck", _) => "Tồn đọng, không xử lý",
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

/// The templates in use.
pub struct Templates {
    env: Environment<'static>,
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
        // Escapes what HTML needs escaped and leaves `/` alone, so dates and links
        // read as written in the message source too.
        env.set_formatter(|out, state, value| match value.as_str() {
            Some(text)
                if state.auto_escape() == minijinja::AutoEscape::Html && !value.is_safe() =>
            {
                out.write_str(&html_escape(text)).map_err(|e| {
                    minijinja::Error::new(minijinja::ErrorKind::WriteFailure, e.to_string())
                })
            }
            _ => minijinja::escape_formatter(out, state, value),
        });
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
        Ok(Templates { env })
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

/// The context of a message kind, filled with sample values.
pub fn fixture_for(name: &str, lang: &str) -> Value {
    if name == "weekly" {
        return json!({
            "recipient": {"name": "Chánh Văn phòng", "email": "chanhvanphong@ubnd.example.gov.vn"},
            "generated_at": "18/03/2024 08:00",
            "date": "18/03/2024",
            "weeks_from": "19/02/2024",
            "weeks_to": "17/03/2024",
            "by_overdue": [{"rank": 1, "unit": "STP", "unit_name": "Sở Tư pháp", "head": "Giám đốc Sở Tư pháp", "overdue": 3}],
            "by_ratio": [{"rank": 1, "unit": "STP", "unit_name": "Sở Tư pháp", "head": "Giám đốc Sở Tư pháp", "ratio": if lang == "en" { "50.0%" } else { "50,0%" }, "on_time": 2, "population": 4}],
            "regularly_late": [{"unit": "STP", "unit_name": "Sở Tư pháp", "head": "Giám đốc Sở Tư pháp", "weeks": 3}],
        });
    }
    if name != "digest" {
        return fixture(lang);
    }
    let mut item = fixture(lang)["items"][0].clone();
    item["ack"] = Value::Null;
    let mut acked = item.clone();
    acked["case_id"] = json!("000.00.12.H22-240305-0007");
    acked["procedure"] = json!("Cấp phiếu lý lịch tư pháp");
    acked["due"] = json!("12/03/2024 17:00");
    acked["overdue_workdays"] = json!(2);
    acked["link"] = Value::Null;
    acked["ack"] = json!({"by": "Phó Giám đốc Sở Tư pháp", "at": "14/03/2024 09:15", "note": "Đã gửi phiếu xin lỗi và hẹn lại ngày trả"});
    let mut task = item.clone();
    task["case_id"] = json!("NV-2024-031");
    task["procedure"] = json!("Báo cáo rà soát thủ tục hành chính quý I");
    task["due"] = json!("18/03/2024 17:00");
    task["state"] = json!("due_soon");
    task["overdue_workdays"] = json!(0);
    json!({
        "recipient": {"name": "Giám đốc Sở Tư pháp", "email": "giamdoc@stp.example.gov.vn"},
        "generated_at": "15/03/2024 07:30",
        "unit": "STP",
        "unit_name": "Sở Tư pháp",
        "date": "15/03/2024",
        "total": 3,
        "sections": [{"section": "overdue", "title": rule_label("overdue", lang), "count": 2, "acknowledged": 1, "cases": [item, acked]}],
        "tasks": [{"section": "due_soon", "title": rule_label("due_soon", lang), "count": 1, "acknowledged": 0, "cases": [task]}],
        "stale": [{"source": "portal", "since": "15/03/2024 06:10"}],
    })
}

/// The context an alert message is rendered with, filled with sample values.
pub fn fixture(lang: &str) -> Value {
    json!({
        "recipient": {"name": "Giám đốc Sở Tư pháp", "email": "giamdoc@stp.example.gov.vn"},
        "generated_at": "15/03/2024 08:00",
        "items": [{
            "rule": "overdue",
            "rule_label": rule_label("overdue", lang),
            "level": 0,
            "source": "portal",
            "case_id": "000.00.12.H22-240301-0001",
            "procedure": "Cấp giấy phép xây dựng nhà ở riêng lẻ",
            "unit": "STP",
            "unit_name": "Sở Tư pháp",
            "due": "08/03/2024 17:00",
            "due_estimated": false,
            "state": "overdue",
            "overdue_workdays": 4,
            "trace": ["Tiếp nhận 01/03/2024 08:00", "Hạn 08/03/2024 17:00"],
            "link": "https://motcua.example.gov.vn/hoso/000.00.12.H22-240301-0001",
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_templates_render_in_both_languages() {
        let t = Templates::load(None).unwrap();
        assert!(t.check().is_empty(), "{:?}", t.check());
        let d = t
            .render("digest", "vi", &fixture_for("digest", "vi"))
            .unwrap();
        assert_eq!(
            d.subject,
            "[slawatch] Sở Tư pháp: 3 hồ sơ cần chú ý ngày 15/03/2024"
        );
        assert!(d
            .text
            .contains("(Lưu ý: dữ liệu từ nguồn portal chỉ cập nhật đến 15/03/2024 06:10.)\n"));
        assert!(d.text.contains("\nQuá hạn (2, 1 đã xác nhận):\n- Hồ sơ 000.00.12.H22-240301-0001 — Cấp giấy phép xây dựng nhà ở riêng lẻ. Hạn: 08/03/2024 17:00. Quá hạn 4 ngày làm việc.\n"), "{}", d.text);
        assert!(
            d.text.contains("\nNhiệm vụ được giao:\nSắp đến hạn (1):\n"),
            "{}",
            d.text
        );
        let d = t
            .render("digest", "en", &fixture_for("digest", "en"))
            .unwrap();
        assert_eq!(
            d.subject,
            "[slawatch] Sở Tư pháp: 3 cases need attention on 15/03/2024"
        );
        let vi = t.render("alert", "vi", &fixture("vi")).unwrap();
        assert_eq!(
            vi.subject,
            "[Quá hạn] Hồ sơ 000.00.12.H22-240301-0001 — Cấp giấy phép xây dựng nhà ở riêng lẻ"
        );
        assert!(vi
            .text
            .starts_with("Kính gửi Giám đốc Sở Tư pháp,\n\nHồ sơ sau cần được xử lý:\n"));
        assert!(vi.text.contains(
            "  Đơn vị: Sở Tư pháp. Hạn xử lý: 08/03/2024 17:00. Đã quá hạn 4 ngày làm việc.\n"
        ));
        assert!(vi.text.contains("    · Tiếp nhận 01/03/2024 08:00\n"));
        assert!(vi
            .html
            .contains("<a href=\"https://motcua.example.gov.vn/hoso/000.00.12.H22-240301-0001\">"));
        let en = t.render("alert", "en", &fixture("en")).unwrap();
        assert_eq!(
            en.subject,
            "[Overdue] Case 000.00.12.H22-240301-0001 — Cấp giấy phép xây dựng nhà ở riêng lẻ"
        );
        assert!(en.text.contains("Overdue by 4 workdays."));
    }

    #[test]
    fn a_due_on_estimated_days_is_marked_beside_the_due() {
        let t = Templates::load(None).unwrap();
        for (lang, text, mark) in [
            (
                "vi",
                "Hạn xử lý: 08/03/2024 17:00 (lịch ước tính).",
                "(lịch ước tính)",
            ),
            (
                "en",
                "Due: 08/03/2024 17:00 (estimated calendar).",
                "(estimated calendar)",
            ),
        ] {
            let mut ctx = fixture(lang);
            ctx["items"][0]["due_estimated"] = json!(true);
            let m = t.render("alert", lang, &ctx).unwrap();
            assert!(m.text.contains(text), "{}", m.text);
            assert!(m.html.contains(mark), "{}", m.html);
            let mut ctx = fixture_for("digest", lang);
            ctx["sections"][0]["cases"][0]["due_estimated"] = json!(true);
            let d = t.render("digest", lang, &ctx).unwrap();
            assert_eq!(d.text.matches(mark).count(), 1, "{}", d.text);
            // Not marked when the due rests on official days.
            let plain = t.render("alert", lang, &fixture(lang)).unwrap();
            assert!(!plain.text.contains(mark));
        }
    }

    /// The contexts snapshotted: each message kind in each language, plus a bundle of
    /// two alerts (a case and a stale data source) in one e-mail.
    fn snapshot_cases() -> Vec<(String, &'static str, &'static str, Value)> {
        let mut out = Vec::new();
        for lang in LANGS {
            for name in NAMES {
                out.push((
                    format!("{name}.{lang}"),
                    name,
                    lang,
                    fixture_for(name, lang),
                ));
            }
            let mut ctx = fixture(lang);
            let case = ctx["items"][0].clone();
            let ops = json!({
                "rule": "source_stale",
                "rule_label": rule_label("source_stale", lang),
                "level": 0,
                "source": "ops",
                "case_id": "motcua-tinh",
                "procedure": null,
                "unit": null,
                "unit_name": "—",
                "due": "15/03/2024 06:10",
                "state": null,
                "overdue_workdays": 0,
                "trace": ["HTTP 503 Service Unavailable"],
                "link": null,
            });
            ctx["items"] = json!([case, ops]);
            out.push((format!("alert-bundle.{lang}"), "alert", lang, ctx));
        }
        out
    }

    /// Each built-in template rendered against its fixture, compared with the reviewed
    /// file under `tests/snapshots/templates/` (`SLAWATCH_UPDATE_SNAPSHOTS=1` rewrites
    /// them; review the diff before committing).
    #[test]
    fn templates_match_their_reviewed_snapshots() {
        let t = Templates::load(None).unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/templates");
        let update = std::env::var_os("SLAWATCH_UPDATE_SNAPSHOTS").is_some();
        let mut wrong = Vec::new();
        for (file, name, lang, ctx) in snapshot_cases() {
            let r = t.render(name, lang, &ctx).unwrap();
            let got = format!(
                "Subject: {}\n\n----- text/plain -----\n{}\n----- text/html -----\n{}",
                r.subject, r.text, r.html
            );
            let path = dir.join(format!("{file}.snap"));
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &got).unwrap();
                continue;
            }
            let want = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if want != got {
                let line = want
                    .lines()
                    .zip(got.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or_else(|| want.lines().count().min(got.lines().count()));
                wrong.push(format!(
                    "{file}: first difference at line {}:\n  want: {:?}\n  got:  {:?}",
                    line + 1,
                    want.lines().nth(line),
                    got.lines().nth(line)
                ));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn html_is_escaped_and_several_items_make_one_message() {
        let t = Templates::load(None).unwrap();
        let mut ctx = fixture("vi");
        let one = ctx["items"][0].clone();
        let mut two = one.clone();
        two["procedure"] = json!("<script>x</script> & co");
        ctx["items"] = json!([one.clone(), two.clone()]);
        let r = t.render("alert", "vi", &ctx).unwrap();
        assert_eq!(r.subject, "[slawatch] 2 cảnh báo cần xử lý");
        two["link"] = json!("https://x.example/?a=1&b=\"2\"");
        ctx["items"] = json!([one, two]);
        let r = t.render("alert", "vi", &ctx).unwrap();
        assert!(r.html.contains("&lt;script&gt;x&lt;/script&gt; &amp; co"));
        assert!(r
            .html
            .contains("<a href=\"https://x.example/?a=1&amp;b=&quot;2&quot;\">"));
        assert!(r.text.contains("<script>x</script> & co"));
    }

    #[test]
    fn a_bad_override_is_caught_by_check() {
        let dir = std::env::temp_dir().join(format!("slawatch-tpl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("alert.vi.txt"), "Kính gửi {{ recipient.ten }}").unwrap();
        let t = Templates::load(Some(&dir)).unwrap();
        let errors = t.check();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("template alert.vi.txt:"),
            "{errors:?}"
        );
        // A syntax error is refused when loading.
        std::fs::write(dir.join("alert.en.html"), "{% for %}").unwrap();
        assert!(Templates::load(Some(&dir)).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
