//! Hand-checked ladder cases on the shipped directory (config/units.toml) and the
//! Hà Tĩnh calendar.

use super::*;
use crate::sla::model::Step;

fn directory() -> Directory {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/units.toml")).unwrap();
    Directory::parse(&text, "units.toml").unwrap()
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn case(unit: Option<&str>, field: Option<&str>) -> Case {
    Case {
        source: "portal".into(),
        case_id: "H-1".into(),
        unit_code: unit.map(Into::into),
        field_code: field.map(Into::into),
        status: 4,
        ..Case::default()
    }
}

fn eval(state: &'static str, flags: &str, stuck: bool, age: i32) -> EvalSummary {
    EvalSummary {
        state: crate::sla::State::parse(state),
        outcome: None,
        flags: crate::sla::Flags::parse(flags),
        stuck,
        due: Some(t("2024-03-08T10:00:00Z")),
        overdue_workdays: age,
        evaluated_at: t("2024-03-15T03:00:00Z"),
        calendar_version: "x".into(),
        calendar_estimated: false,
        ended_at: None,
        on_time: None,
    }
}

fn emails(r: &[Recipient]) -> Vec<&str> {
    r.iter().map(|r| r.email.as_str()).collect()
}

fn ladder<'a>(dir: &'a Directory, modes: &'a RuleModes) -> Ladder<'a> {
    static NO_COPIES: std::sync::OnceLock<RuleCopies> = std::sync::OnceLock::new();
    Ladder {
        directory: dir,
        modes,
        copies: NO_COPIES.get_or_init(RuleCopies::default),
        escalate_every: 3,
    }
}

const NOW: &str = "2024-03-15T03:00:00Z";

#[test]
fn overdue_goes_to_the_head_and_a_summary_to_the_service_centre() {
    let dir = directory();
    let modes = RuleModes::default();
    let w = wanted(
        &case(Some("SXD"), None),
        &eval("overdue", "", false, 1),
        &ladder(&dir, &modes),
        t(NOW),
    );
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].rule, "overdue");
    assert_eq!(w[0].due_key, "2024-03-08T10:00:00Z");
    assert_eq!(emails(&w[0].to), ["giamdoc@sxd.example.gov.vn"]);
    assert!(w[0].cc.is_empty());
    assert_eq!(emails(&w[0].summary), ["giamdoc@pvhcc.example.gov.vn"]);
    assert_eq!(w[0].mode, Mode::Immediate);
    let roles: Vec<(&str, crate::alert::mail::Role)> = w[0]
        .recipients()
        .map(|(r, role)| (r.email.as_str(), role))
        .collect();
    assert_eq!(
        roles,
        [
            ("giamdoc@sxd.example.gov.vn", crate::alert::mail::Role::Case),
            (
                "giamdoc@pvhcc.example.gov.vn",
                crate::alert::mail::Role::Summary
            ),
        ]
    );
}

#[test]
fn escalation_climbs_one_level_per_three_workdays() {
    let dir = directory();
    let modes = RuleModes::default();
    let l = ladder(&dir, &modes);
    let esc = |age| {
        wanted(
            &case(Some("SXD"), None),
            &eval("overdue", "", false, age),
            &l,
            t(NOW),
        )
        .into_iter()
        .find(|w| w.rule == "escalated")
    };
    // 2 workdays: not yet.
    assert!(esc(2).is_none());
    // 3: level 1, SXD's parent UBND-TINH (the chairman) as a summary; the department
    // head, who handles the case, is told it was reported.
    let w = esc(3).unwrap();
    assert_eq!(w.level, 1);
    assert!(w.to.is_empty());
    assert_eq!(emails(&w.summary), ["chutich@ubnd.example.gov.vn"]);
    assert_eq!(emails(&w.cc), ["giamdoc@sxd.example.gov.vn"]);
    // Past the top: it stays at the province (level counts on, the recipient is the top).
    let w = esc(9).unwrap();
    assert_eq!(
        (w.level, emails(&w.summary)),
        (3, vec!["chutich@ubnd.example.gov.vn"])
    );
}

#[test]
fn a_deputy_receives_the_field_and_unknown_units_fall_back() {
    let dir = directory();
    let modes = RuleModes::default();
    let l = ladder(&dir, &modes);
    let w = wanted(
        &case(Some("STP"), Some("HT")),
        &eval("due_soon", "", false, 0),
        &l,
        t(NOW),
    );
    assert_eq!(w[0].rule, "due_soon");
    assert_eq!(w[0].mode, Mode::Digest);
    assert_eq!(emails(&w[0].to), ["pgd.hotich@stp.example.gov.vn"]);
    // The head and the unit's copy address (config/units.toml) in copy.
    assert_eq!(
        emails(&w[0].cc),
        ["vanphong@stp.example.gov.vn", "giamdoc@stp.example.gov.vn"]
    );
    let w = wanted(
        &case(None, None),
        &eval("overdue", "", false, 0),
        &l,
        t(NOW),
    );
    assert_eq!(emails(&w[0].to), ["giamdoc@pvhcc.example.gov.vn"]);
    // The centre is not also its own copy.
    assert!(w[0].cc.is_empty());
}

#[test]
fn flags_stuck_and_step_alerts_and_rules_turned_off() {
    let dir = directory();
    let mut modes = RuleModes::default();
    let mut c = case(Some("STP"), None);
    c.steps = vec![
        Step {
            unit_code: Some("STP".into()),
            acted_at: Some(t("2024-03-01T02:00:00Z")),
            ..Step::default()
        },
        Step {
            unit_code: Some("SXD".into()),
            step_due_at: Some(t("2024-03-12T10:00:00Z")),
            ..Step::default()
        },
    ];
    let e = eval("on_track", "apology_due,step_overdue", true, 0);
    let w = wanted(&c, &e, &ladder(&dir, &modes), t(NOW));
    let rules: Vec<&str> = w.iter().map(|w| w.rule).collect();
    assert_eq!(rules, ["apology_due", "stuck", "step_overdue"]);
    // The late step belongs to SXD: its head is told.
    assert_eq!(emails(&w[2].to), ["giamdoc@sxd.example.gov.vn"]);
    modes.stuck = Mode::Off;
    let w = wanted(&c, &e, &ladder(&dir, &modes), t(NOW));
    assert!(w.iter().all(|w| w.rule != "stuck"));
}

#[test]
fn the_window_is_office_hours_on_workdays() {
    let cal = crate::config::Loaded::load(Some(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/slawatch.toml"
    ))))
    .unwrap()
    .calendar();
    // Hà Tĩnh winter: 07:30–17:30. Tue 05/03/2024 06:00 +07 → 07:30 the same day.
    assert_eq!(
        next_window(&cal, t("2024-03-04T23:00:00Z")),
        t("2024-03-05T00:30:00Z")
    );
    // Inside the window (lunch included): now.
    assert_eq!(
        next_window(&cal, t("2024-03-05T05:00:00Z")),
        t("2024-03-05T05:00:00Z")
    );
    // Fri 09/02/2024 18:00, inside the Tết break (08–14/02): Thu 15/02 07:30.
    assert_eq!(
        next_window(&cal, t("2024-02-09T11:00:00Z")),
        t("2024-02-15T00:30:00Z")
    );
    // Sat 04/05/2024 is a make-up workday in summer hours (07:00): it sends.
    assert_eq!(
        next_window(&cal, t("2024-05-03T12:00:00Z")),
        t("2024-05-04T00:00:00Z")
    );
}

#[test]
fn extra_copies_per_rule_join_the_directory_recipients() {
    let dir = directory();
    let modes = RuleModes::default();
    let copies = RuleCopies {
        // The inspectorate wants every escalation; the chairman's address is already
        // the recipient and is not copied twice.
        escalated: vec![
            "thanhtra@ubnd.example.gov.vn".into(),
            "chutich@ubnd.example.gov.vn".into(),
        ],
        ..RuleCopies::default()
    };
    let l = Ladder {
        directory: &dir,
        modes: &modes,
        copies: &copies,
        escalate_every: 3,
    };
    let w = wanted(
        &case(Some("SXD"), None),
        &eval("overdue", "", false, 3),
        &l,
        t(NOW),
    );
    let esc = w.iter().find(|w| w.rule == "escalated").unwrap();
    // The rule's copies oversee: a summary, beside the chairman, who is listed once
    // (recipients sort by name; a configured copy has none).
    assert_eq!(
        emails(&esc.summary),
        [
            "thanhtra@ubnd.example.gov.vn",
            "chutich@ubnd.example.gov.vn"
        ]
    );
    assert_eq!(emails(&esc.cc), ["giamdoc@sxd.example.gov.vn"]);
    // Other rules are untouched.
    let overdue = w.iter().find(|w| w.rule == "overdue").unwrap();
    assert_eq!(emails(&overdue.summary), ["giamdoc@pvhcc.example.gov.vn"]);
    assert_eq!(
        RuleCopies {
            stuck: vec!["not an address".into()],
            ..RuleCopies::default()
        }
        .invalid(),
        Some(("stuck", "not an address"))
    );
}
