//! Normalisation: one raw JSON record → the canonical case model, or a reason to
//! quarantine it (SPEC §2, §5). Pure: the calendar is only used to read local times.
//!
//! A [`Mapping`] says where each canonical field sits in a record (JSON pointers).
//! The `dvcqg` preset maps the national portal's field names (DOMAIN.md §2.3, §2.5):
//! dossiers with nested `DanhSachHoSoBoSung` supplements and `QuaTrinhXuLy` steps,
//! and separate `CapNhatTienDoHoSoMC` step items keyed by `MaHoSo`. A custom mapping
//! names the same canonical fields with pointers of its own; the SQL source uses
//! columns named after them.

use crate::calendar::Calendar;
use crate::sla::model::{status, Case, Channel, Kind, Step, Supplement};
use crate::timefmt::parse_instant;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

/// Longest text accepted in one field; a longer one quarantines the record.
pub const MAX_TEXT: usize = 10_000;
/// Longest case id.
pub const MAX_ID: usize = 128;

/// Canonical case fields a mapping can point at.
pub const CASE_FIELDS: &[&str] = &[
    "case_id",
    "kind",
    "procedure_code",
    "procedure_name",
    "field_code",
    "unit",
    "channel",
    "status",
    "received_at",
    "due_at",
    "finished_at",
    "returned_at",
    "refused_at",
    "updated_at",
    "applicant_id",
];
/// Canonical supplement fields.
pub const SUPPLEMENT_FIELDS: &[&str] = &["requested_at", "resumed_at", "due_before", "due_after"];
/// Canonical step fields (`case_id` for separate step items).
pub const STEP_FIELDS: &[&str] = &[
    "case_id",
    "department",
    "officer",
    "title",
    "status",
    "started_at",
    "acted_at",
    "step_due_at",
];

/// Where the canonical fields sit in a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// canonical case field → JSON pointer.
    pub fields: BTreeMap<String, String>,
    /// Pointer to the supplements array, and field → pointer inside one item.
    pub supplements: Option<(String, BTreeMap<String, String>)>,
    /// Pointer to the nested steps array, and field → pointer inside one item.
    pub steps: Option<(String, BTreeMap<String, String>)>,
    /// Field → pointer inside a separate step item (a record without a status).
    pub step_item: BTreeMap<String, String>,
    /// Extra raw status values → DVCQG codes (e.g. `done` → 9 for tasks).
    pub status_map: HashMap<String, u8>,
    /// Kind of the source's cases, unless the record says.
    pub kind: Kind,
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Mapping {
    /// The DVCQG field names.
    pub fn dvcqg() -> Mapping {
        let step = map(&[
            ("case_id", "/MaHoSo"),
            ("department", "/PhongBanXuLy"),
            ("officer", "/NguoiXuLy"),
            ("title", "/NoiDungXuLy"),
            ("status", "/TrangThai"),
            ("started_at", "/NgayBatDau"),
            ("acted_at", "/ThoiDiemXuLy"),
            ("step_due_at", "/NgayKetThucTheoQuyDinh"),
        ]);
        Mapping {
            fields: map(&[
                ("case_id", "/MaHoSo"),
                ("procedure_code", "/MaTTHC"),
                ("procedure_name", "/TenTTHC"),
                ("field_code", "/MaLinhVuc"),
                ("unit", "/DonViXuLy"),
                ("channel", "/KenhThucHien"),
                ("status", "/TrangThaiHoSo"),
                ("received_at", "/NgayTiepNhan"),
                ("due_at", "/NgayHenTra"),
                ("finished_at", "/NgayKetThucXuLy"),
                ("returned_at", "/NgayTra"),
                ("refused_at", "/NgayTuChoi"),
                // The one-stop system's change time (not in the portal's push format):
                // the cursor of an http source follows it.
                ("updated_at", "/NgayCapNhat"),
                ("applicant_id", "/SoGiayToChuHoSo"),
            ]),
            supplements: Some((
                "/DanhSachHoSoBoSung".into(),
                map(&[
                    ("requested_at", "/NgayBoSung"),
                    ("resumed_at", "/NgayTiepNhanBoSung"),
                    ("due_before", "/NgayHenTraTruoc"),
                    ("due_after", "/NgayHenTraMoi"),
                ]),
            )),
            steps: Some(("/QuaTrinhXuLy".into(), step.clone())),
            step_item: step,
            status_map: HashMap::new(),
            kind: Kind::Dossier,
        }
    }

    /// Columns (or keys) named after the canonical fields: `supplements` and `steps`
    /// hold arrays (or JSON text) of objects with canonical keys.
    pub fn canonical() -> Mapping {
        let own = |names: &[&str]| -> BTreeMap<String, String> {
            names
                .iter()
                .map(|n| (n.to_string(), format!("/{n}")))
                .collect()
        };
        Mapping {
            fields: own(CASE_FIELDS),
            supplements: Some(("/supplements".into(), own(SUPPLEMENT_FIELDS))),
            steps: Some(("/steps".into(), own(STEP_FIELDS))),
            step_item: own(STEP_FIELDS),
            status_map: HashMap::new(),
            kind: Kind::Dossier,
        }
    }

    /// A custom mapping from config: canonical name → pointer, with
    /// `supplements`/`steps` (array pointers) and `supplements.X`/`steps.X` inside items.
    /// Fields it does not name keep the canonical defaults.
    pub fn custom(entries: &BTreeMap<String, String>) -> Result<Mapping, String> {
        let mut m = Mapping::canonical();
        for (key, pointer) in entries {
            if !pointer.is_empty() && !pointer.starts_with('/') {
                return Err(format!(
                    "`{key}`: `{pointer}` is not a JSON pointer (it starts with `/`)"
                ));
            }
            match key.split_once('.') {
                None if key == "supplements" => {
                    m.supplements.as_mut().expect("set").0 = pointer.clone()
                }
                None if key == "steps" => m.steps.as_mut().expect("set").0 = pointer.clone(),
                None if CASE_FIELDS.contains(&key.as_str()) => {
                    m.fields.insert(key.clone(), pointer.clone());
                }
                Some(("supplements", f)) if SUPPLEMENT_FIELDS.contains(&f) => {
                    m.supplements
                        .as_mut()
                        .expect("set")
                        .1
                        .insert(f.into(), pointer.clone());
                }
                Some(("steps", f)) if STEP_FIELDS.contains(&f) => {
                    m.steps
                        .as_mut()
                        .expect("set")
                        .1
                        .insert(f.into(), pointer.clone());
                    m.step_item.insert(f.into(), pointer.clone());
                }
                _ => return Err(format!("`{key}` is not a canonical field")),
            }
        }
        Ok(m)
    }
}

/// A normalised record.
#[derive(Clone, Debug, PartialEq)]
pub enum Normalized {
    /// A dossier, task or petition as the source sees it now (no history yet).
    Case {
        case: Box<Case>,
        /// The source's own change time, when it gives one.
        source_time: Option<DateTime<Utc>>,
    },
    /// Processing steps sent apart from their case.
    Steps { case_id: String, steps: Vec<Step> },
}

/// Why a record was quarantined, and its id when it had one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub case_id: Option<String>,
    pub reason: String,
}

type Fields<'a> = &'a BTreeMap<String, String>;

struct Reader<'a> {
    cal: &'a Calendar,
}

impl Reader<'_> {
    fn get<'v>(&self, v: &'v Value, fields: Fields, name: &str) -> Option<&'v Value> {
        fields.get(name).and_then(|p| v.pointer(p))
    }

    /// A text field: strings, numbers; empty is none.
    fn text(&self, v: &Value, fields: Fields, name: &str) -> Result<Option<String>, String> {
        match self.get(v, fields, name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                if s.chars().count() > MAX_TEXT {
                    return Err(format!("`{name}` is longer than {MAX_TEXT} characters"));
                }
                let t = s.trim();
                Ok((!t.is_empty()).then(|| t.to_string()))
            }
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(format!("`{name}`: expected text, found {}", kind_of(other))),
        }
    }

    fn instant(
        &self,
        v: &Value,
        fields: Fields,
        name: &str,
    ) -> Result<Option<DateTime<Utc>>, String> {
        match self.text(v, fields, name)? {
            None => Ok(None),
            Some(s) => parse_instant(&s, self.cal).map_err(|e| format!("`{name}`: {e}")),
        }
    }

    fn status(&self, raw: &str, mapping: &Mapping) -> Result<u8, String> {
        mapping
            .status_map
            .get(raw)
            .copied()
            .or_else(|| status::parse(raw))
            .ok_or_else(|| format!("`status`: unknown status `{raw}`"))
    }

    fn step(&self, item: &Value, fields: Fields, mapping: &Mapping) -> Result<Step, String> {
        if !item.is_object() {
            return Err(format!("step: expected an object, found {}", kind_of(item)));
        }
        let status = match self.text(item, fields, "status")? {
            Some(raw) => Some(self.status(&raw, mapping)?),
            None => None,
        };
        Ok(Step {
            department: self.text(item, fields, "department")?.map(Into::into),
            unit_code: None,
            officer: self.text(item, fields, "officer")?.map(Into::into),
            title: self.text(item, fields, "title")?.map(Into::into),
            status,
            started_at: self.instant(item, fields, "started_at")?,
            acted_at: self.instant(item, fields, "acted_at")?,
            step_due_at: self.instant(item, fields, "step_due_at")?,
        })
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn items<'v>(v: &'v Value, pointer: &str, what: &str) -> Result<&'v [Value], String> {
    match v.pointer(pointer) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(format!(
            "`{what}`: expected an array, found {}",
            kind_of(other)
        )),
    }
}

/// A salted hash of an applicant id: never the id itself.
pub fn applicant_hash(id: &str, salt: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update([0]);
    h.update(id.trim().as_bytes());
    h.finalize()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Normalises one record of `source`.
pub fn normalize(
    record: &Value,
    mapping: &Mapping,
    source: &str,
    cal: &Calendar,
    salt: &str,
) -> Result<Normalized, Rejection> {
    let r = Reader { cal };
    let f = &mapping.fields;
    let id = r.text(record, f, "case_id").ok().flatten();
    let reject = |reason: String| Rejection {
        case_id: id.clone().map(|i| i.chars().take(MAX_ID).collect()),
        reason,
    };
    if !record.is_object() {
        return Err(reject(format!(
            "expected a JSON object, found {}",
            kind_of(record)
        )));
    }
    let case_id = r.text(record, f, "case_id").map_err(&reject)?;
    let Some(case_id) = case_id else {
        return Err(reject("no case id (`case_id`)".into()));
    };
    if case_id.chars().count() > MAX_ID {
        return Err(reject(format!(
            "the case id is longer than {MAX_ID} characters"
        )));
    }
    let raw_status = r.text(record, f, "status").map_err(&reject)?;
    let Some(raw_status) = raw_status else {
        // No status: a separate step item, if it looks like one.
        let step = r
            .step(record, &mapping.step_item, mapping)
            .map_err(&reject)?;
        if step.acted_at.is_none()
            && step.started_at.is_none()
            && step.title.is_none()
            && step.officer.is_none()
        {
            return Err(reject("no status (`status`) and no step fields".into()));
        }
        return Ok(Normalized::Steps {
            case_id,
            steps: vec![step],
        });
    };
    let run = || -> Result<Normalized, String> {
        let status = r.status(&raw_status, mapping)?;
        let kind = match r.text(record, f, "kind")? {
            None => mapping.kind,
            Some(k) => match k.to_ascii_lowercase().as_str() {
                "dossier" => Kind::Dossier,
                "task" => Kind::Task,
                "feedback" => Kind::Feedback,
                other => return Err(format!("`kind`: unknown kind `{other}`")),
            },
        };
        let channel = match r.text(record, f, "channel")? {
            None => None,
            Some(c) => Some(
                Channel::from_code(&c)
                    .ok_or_else(|| format!("`channel`: unknown channel `{c}` (1, 2 or 3)"))?,
            ),
        };
        let received_at = r.instant(record, f, "received_at")?;
        let finished_at = r.instant(record, f, "finished_at")?;
        let returned_at = r.instant(record, f, "returned_at")?;
        for (name, t) in [("finished_at", finished_at), ("returned_at", returned_at)] {
            if let (Some(rec), Some(t)) = (received_at, t) {
                if t < rec {
                    return Err(format!("`{name}` ({t}) is before `received_at` ({rec})"));
                }
            }
        }
        let mut supplements = Vec::new();
        if let Some((pointer, sf)) = &mapping.supplements {
            for item in items(record, pointer, "supplements")? {
                if !item.is_object() {
                    return Err(format!(
                        "supplement: expected an object, found {}",
                        kind_of(item)
                    ));
                }
                let Some(requested_at) = r.instant(item, sf, "requested_at")? else {
                    return Err("supplement without `requested_at`".into());
                };
                supplements.push(Supplement {
                    requested_at,
                    resumed_at: r.instant(item, sf, "resumed_at")?,
                    due_before: r.instant(item, sf, "due_before")?,
                    due_after: r.instant(item, sf, "due_after")?,
                });
            }
            supplements.sort_by_key(|s| s.requested_at);
        }
        let mut steps = Vec::new();
        if let Some((pointer, sf)) = &mapping.steps {
            for item in items(record, pointer, "steps")? {
                steps.push(r.step(item, sf, mapping)?);
            }
        }
        let mut applicant = r.text(record, f, "applicant_id")?;
        if applicant.is_none() {
            if let Some(Value::Array(ids)) = record.pointer("/DinhDanhCHS") {
                applicant = ids
                    .iter()
                    .find_map(|i| i.get("SoDinhDanh").and_then(Value::as_str))
                    .map(str::to_string);
            }
        }
        let source_time = r.instant(record, f, "updated_at")?;
        let case = Case {
            source: source.into(),
            case_id: case_id.clone(),
            kind,
            procedure_code: r.text(record, f, "procedure_code")?.map(Into::into),
            procedure_name: r.text(record, f, "procedure_name")?.map(Into::into),
            field_code: r.text(record, f, "field_code")?.map(Into::into),
            unit_code: None,
            unit_name: r.text(record, f, "unit")?.map(Into::into),
            channel,
            status,
            received_at,
            due_at: r.instant(record, f, "due_at")?,
            due_at_original: None,
            finished_at,
            returned_at,
            refused_at: r.instant(record, f, "refused_at")?,
            supplements,
            steps,
            status_history: Vec::new(),
            due_history: Vec::new(),
            updated_at: source_time,
            applicant_hash: applicant
                .filter(|a| !a.is_empty())
                .map(|a| applicant_hash(&a, salt)),
        };
        Ok(Normalized::Case {
            case: Box::new(case),
            source_time,
        })
    };
    run().map_err(reject)
}

/// The DVCQG fields of a raw record known to carry no identity: ids, codes, dates,
/// statuses, unit and procedure names, compared without case; with them, the canonical
/// fields ([`CASE_FIELDS`], [`SUPPLEMENT_FIELDS`], [`STEP_FIELDS`]) but those in
/// [`IDENTITY_FIELDS`]. Everything else — the applicant's name, id number, address, contacts, and
/// free text such as `TrichYeuHoSo`, which often names the applicant — is replaced by
/// `***` before a raw record is stored as a version or shown (quarantine). An
/// allow-list, so a field nobody thought of stays hidden.
pub const SAFE_FIELDS: &[&str] = &[
    // DVCQG dossier
    "MaHoSo",
    "MaTTHC",
    "TenTTHC",
    "MaLinhVuc",
    "TenLinhVuc",
    "KenhThucHien",
    "LoaiDoiTuong",
    "TrangThaiHoSo",
    "HinhThuc",
    "DonViXuLy",
    "MaDonVi",
    "NoiNopHoSo",
    "HoSoCoThanhPhanSoHoa",
    "TaiKhoanDuocXacThucVoiVNeID",
    "DuocThanhToanTrucTuyen",
    "NgayNopHoSo",
    "NgayTiepNhan",
    "NgayHenTra",
    "NgayKetThucXuLy",
    "NgayTra",
    "NgayTuChoi",
    "NgayCapNhat",
    // supplements
    "HoSoBoSungId",
    "NgayBoSung",
    "NgayTiepNhanBoSung",
    "TrangThaiBoSung",
    "NgayHenTraTruoc",
    "NgayHenTraMoi",
    // steps
    "PhongBanXuLy",
    "MaPhongBan",
    "TenBuocXuLy",
    "TrangThai",
    "NgayBatDau",
    "NgayKetThuc",
    "NgayKetThucTheoQuyDinh",
    "NgayXuLy",
    // attachments and fees: codes and flags
    "TepDinhKemId",
    "MaThanhPhanHoSo",
    "IsDeleted",
    "DuocSoHoa",
    "DuocTaiSuDung",
    "DuocLayTuKhoDMQG",
    "MaKetQuaThayThe",
    "MaPhiLePhi",
    "TenPhiLePhi",
    "HinhThucThu",
    "Gia",
    "LoaiPhiLePhi",
    "MaCSDL",
    // the push envelope
    "madonvi",
    "service",
    "isUpdating",
    // the canonical unit code (the other canonical names: `safe_key`)
    "unit_code",
];

/// Canonical fields that name a person.
pub const IDENTITY_FIELDS: &[&str] = &["applicant_id", "officer"];

const MASK: &str = "***";

fn safe_key(k: &str) -> bool {
    let canonical = CASE_FIELDS
        .iter()
        .chain(SUPPLEMENT_FIELDS)
        .chain(STEP_FIELDS)
        .filter(|f| !IDENTITY_FIELDS.contains(f));
    SAFE_FIELDS
        .iter()
        .chain(canonical)
        .any(|f| f.eq_ignore_ascii_case(k))
}

/// Replaces, in place and at any depth, every value not under a [`SAFE_FIELDS`] key
/// by `***` (objects and arrays are kept and looked into; nulls and empty strings stay
/// as they are). Done before a raw version is stored.
pub fn redact_in_place(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match x {
                    Value::Object(_) | Value::Array(_) => redact_in_place(x),
                    _ if safe_key(k) => {}
                    Value::Null => {}
                    Value::String(s) if s.is_empty() => {}
                    _ => *x = Value::String(MASK.into()),
                }
            }
        }
        Value::Array(a) => {
            for x in a.iter_mut() {
                match x {
                    Value::Object(_) | Value::Array(_) => redact_in_place(x),
                    Value::Null => {}
                    _ => *x = Value::String(MASK.into()),
                }
            }
        }
        Value::Null => {}
        _ => *v = Value::String(MASK.into()),
    }
}

/// A copy of a raw record redacted as [`redact_in_place`] does (quarantine answers).
pub fn redact(v: &Value) -> Value {
    let mut c = v.clone();
    redact_in_place(&mut c);
    c
}

/// What may be shown of a body that is not JSON: letters and long digit runs (names,
/// id numbers) masked, the punctuation that shows where it broke kept.
pub fn redact_text(body: &str) -> String {
    let mut out = String::with_capacity(body.len().min(4096));
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if digits.len() >= 9 {
            out.push_str(MASK);
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    let mut masked_word = false;
    for ch in body.chars().take(4096) {
        if ch.is_ascii_digit() {
            masked_word = false;
            digits.push(ch);
            continue;
        }
        flush(&mut digits, &mut out);
        if ch.is_alphabetic() {
            if !masked_word {
                out.push_str(MASK);
                masked_word = true;
            }
        } else {
            masked_word = false;
            out.push(ch);
        }
    }
    flush(&mut digits, &mut out);
    out
}

#[cfg(test)]
mod tests;
