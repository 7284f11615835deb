//! The SLA policy: which due to believe, which statuses pause the clock, the
//! thresholds (SPEC §4), and their versions by receipt date (SPEC §4.9).

use super::duration::Duration;
use chrono::NaiveDate;
use serde::Deserialize;

/// Which due date is the effective one (SPEC §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DuePolicy {
    /// The source's due when present, else the computed one.
    #[default]
    SourceElseComputed,
    /// Only the source's due.
    Source,
    /// The computed due when the catalogue knows the procedure, else the source's.
    Computed,
}

/// How a completed supplement moves a computed due for the live state (SPEC §4.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SupplementView {
    /// Decree 61 Art. 19.4: the full duration starts again from the resumption.
    #[default]
    Restart,
    /// The due moves later by the paused working time.
    Pause,
}

/// One version of the rules.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    /// Which due to believe.
    pub due_policy: DuePolicy,
    /// Status 6 (financial obligation) pauses the clock.
    pub pause_financial: bool,
    /// Status 8 (stopped) is terminal (ends the case like a finish) instead of a pause.
    pub stop_is_terminal: bool,
    /// The supplement view for the live state of a computed due.
    pub supplement_view: SupplementView,
    /// A receipt at or after this local time counts from the next workday
    /// (`"15:00"`, Decree 61 Art. 18). Off by default.
    #[serde(deserialize_with = "de_cutoff")]
    pub receipt_cutoff: Option<u32>,
    /// `due_soon` when the due is within this of now.
    pub due_soon_within: Duration,
    /// `apology_due` when the due is within this of now.
    pub apology_within: Duration,
    /// `stuck` after this much working time without a change.
    pub stuck_after: Duration,
    /// `late_supplement_request` when the first request comes later than this after
    /// the start (Decree 61 Art. 19.4: 3 working days).
    pub supplement_request_within: Duration,
    /// Seconds a receipt's due may exceed the legal due before `due_beyond_legal`.
    pub due_beyond_legal_tolerance_seconds: i64,
}

fn de_cutoff<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    match s.as_deref().map(str::trim) {
        None | Some("") | Some("none") => Ok(None),
        Some(t) => crate::calendar::hours::parse_time_of_day(t)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            due_policy: DuePolicy::SourceElseComputed,
            pause_financial: true,
            stop_is_terminal: false,
            supplement_view: SupplementView::Restart,
            receipt_cutoff: None,
            due_soon_within: Duration::workdays(2),
            apology_within: Duration::workdays(1),
            stuck_after: Duration::workdays(3),
            supplement_request_within: Duration::workdays(3),
            due_beyond_legal_tolerance_seconds: 0,
        }
    }
}

impl Rules {
    /// Whether a status pauses the clock under these rules.
    pub fn pauses(&self, status: u8) -> bool {
        match status {
            5 => true,
            6 => self.pause_financial,
            8 => !self.stop_is_terminal,
            _ => false,
        }
    }
}

/// The rules by effective date: a case is judged by the rules in force on its
/// receipt date.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// The rules for receipts before every dated version (or all, when none is dated).
    pub base: Rules,
    /// `(effective from, rules)`, sorted by date.
    pub versions: Vec<(NaiveDate, Rules)>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::single(Rules::default())
    }
}

impl Policy {
    pub fn single(rules: Rules) -> Self {
        Policy {
            base: rules,
            versions: Vec::new(),
        }
    }

    /// The rules a case received at `received` is judged by (the latest without a
    /// receipt); the local date is read only when the rules are dated.
    pub fn rules_for_receipt(
        &self,
        received: Option<chrono::DateTime<chrono::Utc>>,
        cal: &crate::calendar::Calendar,
    ) -> &Rules {
        if self.versions.is_empty() {
            return &self.base;
        }
        self.rules_for(received.map(|r| cal.local(r).date()))
    }

    /// The rules in force on a date.
    pub fn rules_for(&self, date: Option<NaiveDate>) -> &Rules {
        let Some(date) = date else {
            return self.versions.last().map(|v| &v.1).unwrap_or(&self.base);
        };
        let i = self.versions.partition_point(|(from, _)| *from <= date);
        if i == 0 {
            &self.base
        } else {
            &self.versions[i - 1].1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn rules_follow_the_receipt_date() {
        let decree61 = Rules::default();
        let decree118 = Rules {
            receipt_cutoff: Some(15 * 3600),
            ..Rules::default()
        };
        let policy = Policy {
            base: decree61.clone(),
            versions: vec![(d("2025-07-01"), decree118.clone())],
        };
        assert_eq!(policy.rules_for(Some(d("2025-06-30"))), &decree61);
        assert_eq!(policy.rules_for(Some(d("2025-07-01"))), &decree118);
        assert_eq!(policy.rules_for(None), &decree118);
        // By the receipt's local date: 30/06/2025 23:30 in Hà Nội is 16:30 UTC, and
        // 01/07/2025 00:30 local still 30/06 17:30 UTC.
        let cal = crate::testkit::builtin();
        let at = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .with_timezone(&chrono::Utc)
        };
        let by = |s: &str| policy.rules_for_receipt(Some(at(s)), cal);
        assert_eq!(by("2025-06-30T23:30:00+07:00"), &decree61);
        assert_eq!(by("2025-07-01T00:30:00+07:00"), &decree118);
        assert_eq!(policy.rules_for_receipt(None, cal), &decree118);
        // Undated rules hold for every receipt.
        let single = Policy::single(decree118.clone());
        assert_eq!(
            single.rules_for_receipt(Some(at("2020-01-01T08:00:00+07:00")), cal),
            &decree118
        );
    }

    #[test]
    fn paused_statuses_follow_the_rules() {
        let r = Rules::default();
        assert!(r.pauses(5) && r.pauses(6) && r.pauses(8) && !r.pauses(4));
        let r = Rules {
            pause_financial: false,
            stop_is_terminal: true,
            ..Rules::default()
        };
        assert!(r.pauses(5) && !r.pauses(6) && !r.pauses(8));
    }

    #[test]
    fn rules_read_from_toml() {
        let r: Rules = toml::from_str(
            "receipt_cutoff = \"15:00\"\ndue_soon_within = \"3 workdays\"\nsupplement_view = \"pause\"",
        )
        .unwrap();
        assert_eq!(r.receipt_cutoff, Some(15 * 3600));
        assert_eq!(r.due_soon_within, Duration::workdays(3));
        assert_eq!(r.supplement_view, SupplementView::Pause);
        assert!(toml::from_str::<Rules>("due_soon = 1").is_err());
    }
}
