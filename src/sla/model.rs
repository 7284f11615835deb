//! The canonical case model (SPEC §2): what every source is normalised into, as plain
//! data. Storage, ingest and identity resolution live elsewhere; here a case is just
//! what the engine needs to judge it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

/// Text that repeats across cases (source, unit, procedure, department, officer
/// names): shared, so 200,000 open cases hold each name once.
pub type Text = Arc<str>;

/// Hands out one shared copy of each distinct text.
#[derive(Debug, Default)]
pub struct Interner(HashSet<Text>);

impl Interner {
    pub fn text(&mut self, s: &Text) -> Text {
        match self.0.get(s) {
            Some(t) => t.clone(),
            None => {
                self.0.insert(s.clone());
                s.clone()
            }
        }
    }

    fn opt(&mut self, s: &mut Option<Text>) {
        if let Some(t) = s {
            *t = self.text(t);
        }
    }

    /// Replaces a case's repeated texts by the shared copies.
    pub fn case(&mut self, c: &mut Case) {
        c.source = self.text(&c.source);
        self.opt(&mut c.procedure_code);
        self.opt(&mut c.procedure_name);
        self.opt(&mut c.field_code);
        self.opt(&mut c.unit_code);
        self.opt(&mut c.unit_name);
        for s in &mut c.steps {
            self.opt(&mut s.department);
            self.opt(&mut s.unit_code);
            self.opt(&mut s.officer);
            self.opt(&mut s.title);
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What kind of work a case is.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Hồ sơ thủ tục hành chính.
    #[default]
    Dossier,
    /// Nhiệm vụ được giao.
    Task,
    /// Phản ánh, kiến nghị.
    Feedback,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Dossier, Kind::Task, Kind::Feedback];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dossier => "dossier",
            Kind::Task => "task",
            Kind::Feedback => "feedback",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// KenhThucHien 1/2/3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    InPerson,
    Online,
    Postal,
}

impl Channel {
    pub fn from_code(code: &str) -> Option<Channel> {
        match code.trim() {
            "1" => Some(Channel::InPerson),
            "2" => Some(Channel::Online),
            "3" => Some(Channel::Postal),
            _ => None,
        }
    }
}

/// DVCQG status codes (TrangThaiHoSo), 1–10.
pub mod status {
    pub const SUBMITTED: u8 = 1;
    pub const ACCEPTED: u8 = 2;
    pub const REFUSED: u8 = 3;
    pub const PROCESSING: u8 = 4;
    pub const SUPPLEMENT: u8 = 5;
    pub const FINANCIAL: u8 = 6;
    pub const WITHDRAWN: u8 = 7;
    pub const STOPPED: u8 = 8;
    pub const FINISHED: u8 = 9;
    pub const RETURNED: u8 = 10;

    /// Maps a source status: a code `1`–`10`, or DVCQG's English state names.
    pub fn parse(raw: &str) -> Option<u8> {
        let s = raw.trim();
        if let Ok(n) = s.parse::<u8>() {
            return (1..=10).contains(&n).then_some(n);
        }
        Some(match s.to_ascii_lowercase().as_str() {
            "receiving" => SUBMITTED,
            "new" => ACCEPTED,
            "processing" | "interoperating" | "posting" => PROCESSING,
            "waiting" => SUPPLEMENT,
            "paying" => FINANCIAL,
            "cancelled" => WITHDRAWN,
            "unresolved" => STOPPED,
            "releasing" => FINISHED,
            "done" => RETURNED,
            "denied" => REFUSED,
            _ => return None,
        })
    }

    /// Vietnamese name, for traces.
    pub fn name_vi(code: u8) -> &'static str {
        match code {
            1 => "mới đăng ký",
            2 => "được tiếp nhận",
            3 => "không được tiếp nhận",
            4 => "đang xử lý",
            5 => "yêu cầu bổ sung",
            6 => "nghĩa vụ tài chính",
            7 => "rút hồ sơ",
            8 => "dừng xử lý",
            9 => "đã xử lý xong",
            10 => "đã trả kết quả",
            _ => "không rõ",
        }
    }

    /// English name, for traces.
    pub fn name_en(code: u8) -> &'static str {
        match code {
            1 => "submitted",
            2 => "accepted",
            3 => "refused",
            4 => "processing",
            5 => "supplement requested",
            6 => "financial obligation",
            7 => "withdrawn",
            8 => "stopped",
            9 => "finished",
            10 => "result returned",
            _ => "unknown",
        }
    }
}

/// One supplement request (yêu cầu bổ sung).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supplement {
    pub requested_at: DateTime<Utc>,
    /// When the completed dossier was received back; `None` while waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_at: Option<DateTime<Utc>>,
    /// NgayHenTraTruoc: the due before this supplement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_before: Option<DateTime<Utc>>,
    /// NgayHenTraMoi: the due after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_after: Option<DateTime<Utc>>,
}

/// One processing step (quá trình xử lý).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// PhongBanXuLy as the source wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<Text>,
    /// The department's directory unit, when the directory knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_code: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub officer: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acted_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_due_at: Option<DateTime<Utc>>,
}

impl Step {
    /// The step's place in time: its start, else when it was acted on.
    pub fn order_key(&self) -> Option<DateTime<Utc>> {
        self.started_at.or(self.acted_at)
    }
}

/// A status change, from the source's own history or as slawatch observed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    pub at: DateTime<Utc>,
    pub status: u8,
    /// Observed by polling rather than reported by the source: the real change
    /// happened at or before `at`.
    pub approximate: bool,
}

/// Why a due moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DueChangeCause {
    /// Moved when a supplement ended (legal restart).
    Supplement,
    /// Moved for another reason: a re-appointment (văn bản xin lỗi và đề nghị gia hạn, Mẫu 04).
    Reappointment,
}

/// A move of the source's due.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueChange {
    pub at: DateTime<Utc>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub cause: DueChangeCause,
}

/// A case: a dossier, a task or a petition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    pub source: Text,
    pub case_id: String,
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub procedure_code: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub procedure_name: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_code: Option<Text>,
    /// Directory unit code; `None` when the unit is unknown to the directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_code: Option<Text>,
    /// The unit as the source named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_name: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// DVCQG status 1–10.
    pub status: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at_original: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returned_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supplements: Vec<Supplement>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    /// Status changes in time order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub status_history: Vec<StatusChange>,
    /// Moves of the source's due in time order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub due_history: Vec<DueChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    /// A salted hash of the applicant's id number: never the number itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applicant_hash: Option<String>,
}

impl Case {
    /// The instants its steps and supplements record: starts, actions, requests and
    /// resumptions.
    pub fn activity_instants(&self) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        self.steps
            .iter()
            .flat_map(|s| [s.started_at, s.acted_at])
            .chain(
                self.supplements
                    .iter()
                    .flat_map(|s| [Some(s.requested_at), s.resumed_at]),
            )
            .flatten()
    }

    /// When the case entered its current run of statuses in `set`, from its history:
    /// `None` when the history does not end in one of them.
    pub fn since(&self, set: &[u8]) -> Option<DateTime<Utc>> {
        let mut at = None;
        for c in &self.status_history {
            if set.contains(&c.status) {
                at = at.or(Some(c.at));
            } else {
                at = None;
            }
        }
        at
    }

    /// The due before any supplement or re-appointment: `due_at_original` when set,
    /// else the first supplement's "due before", else the first due the history saw,
    /// else the current due.
    pub fn original_due(&self) -> Option<DateTime<Utc>> {
        self.due_at_original
            .or_else(|| self.supplements.first().and_then(|s| s.due_before))
            .or_else(|| self.due_history.first().and_then(|c| c.from))
            .or(self.due_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_states_map_to_codes() {
        let pairs = [
            ("receiving", 1),
            ("new", 2),
            ("processing", 4),
            ("waiting", 5),
            ("paying", 6),
            ("cancelled", 7),
            ("unresolved", 8),
            ("releasing", 9),
            ("done", 10),
            ("denied", 3),
            ("interoperating", 4),
            ("posting", 4),
            ("4", 4),
            (" 10 ", 10),
        ];
        for (raw, code) in pairs {
            assert_eq!(status::parse(raw), Some(code), "{raw}");
        }
        assert_eq!(status::parse("0"), None);
        assert_eq!(status::parse("11"), None);
        assert_eq!(status::parse("archived"), None);
    }

    #[test]
    fn channel_codes() {
        assert_eq!(Channel::from_code("2"), Some(Channel::Online));
        assert_eq!(Channel::from_code("9"), None);
    }
}
