//! One conformance story for both stores: SQLite always, PostgreSQL when
//! `SLAWATCH_TEST_DATABASE_URL` is set (`.ci/run` sets it). Each PostgreSQL run gets a
//! database of its own, dropped afterwards.

use crate::scratch;
use crate::support::PgDatabase;
use chrono::{DateTime, Duration, Utc};
use slawatch::sla::model::{Case, StatusChange, Step};
use slawatch::store::{
    self, AlertKey, Batch, CaseRow, EvalSummary, EvalUpdate, FinishedGroup, JobRun, NewAlert,
    NotificationRow, OutboxNew, PeriodStarts, QuarantineNew, Store, VersionRow,
};
use std::sync::Arc;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn case(id: &str, status: u8, updated: &str, unit: Option<&str>) -> Case {
    Case {
        source: "portal".into(),
        case_id: id.into(),
        status,
        unit_code: unit.map(Into::into),
        unit_name: Some(
            unit.map(|u| format!("Unit {u}"))
                .unwrap_or_else(|| "UBND xã Lạ".to_string())
                .into(),
        ),
        procedure_code: Some("1.004227".into()),
        received_at: Some(t("2024-03-01T01:00:00Z")),
        due_at: Some(t("2024-03-22T01:00:00Z")),
        updated_at: Some(t(updated)),
        status_history: vec![StatusChange {
            at: t("2024-03-01T01:00:00Z"),
            status,
            approximate: true,
        }],
        ..Case::default()
    }
}

fn eval(state: &'static str) -> EvalSummary {
    EvalSummary {
        state: slawatch::sla::State::parse(state),
        outcome: None,
        flags: slawatch::sla::Flags::parse("apology_due"),
        stuck: false,
        due: Some(t("2024-03-22T01:00:00Z")),
        overdue_workdays: 0,
        evaluated_at: t("2024-03-10T01:00:00Z"),
        calendar_version: "vn-official@abcdef".into(),
        calendar_estimated: true,
        ended_at: None,
        on_time: None,
    }
}

fn row(c: Case, open: bool) -> CaseRow {
    CaseRow {
        case: c,
        open,
        eval: Some(eval("on_track")),
    }
}

async fn story(s: Arc<dyn Store>) {
    s.migrate().await.unwrap();
    s.migrate().await.unwrap();
    s.ready().await.unwrap();

    s.meta_put("applicant_salt", "abc").await.unwrap();
    s.meta_put("applicant_salt", "def").await.unwrap();
    assert_eq!(
        s.meta_get("applicant_salt").await.unwrap().as_deref(),
        Some("def")
    );
    assert_eq!(s.meta_get("nothing").await.unwrap(), None);

    let at = t("2024-03-10T02:00:00Z");
    let mut b = Batch::new("portal", at);
    let a = case("A", 4, "2024-03-05T01:00:00Z", Some("STP"));
    let bb = case("B", 5, "2024-03-06T01:00:00Z", None);
    let mut c = case("C", 10, "2024-03-07T01:00:00Z", Some("STP"));
    c.finished_at = Some(t("2024-03-07T01:00:00Z"));
    b.cases = vec![
        row(a.clone(), true),
        row(bb.clone(), true),
        row(c.clone(), false),
    ];
    b.versions = vec![VersionRow {
        case_id: "A".into(),
        hash: "h1".into(),
        body: r#"{"MaHoSo":"A"}"#.into(),
    }];
    let step = Step {
        title: Some("Thẩm định".into()),
        started_at: Some(t("2024-03-02T01:00:00Z")),
        ..Step::default()
    };
    b.pending_add = vec![("Z".into(), step.clone())];
    b.quarantine = vec![
        QuarantineNew {
            case_id: Some("Q1".into()),
            reason: "`status`: unknown status `42`".into(),
            body: r#"{"MaHoSo":"Q1","TrangThaiHoSo":"42"}"#.into(),
            changed_at: Some(t("2024-03-09T02:00:00Z")),
        },
        QuarantineNew {
            case_id: None,
            reason: "no case id".into(),
            body: "{}".into(),
            changed_at: None,
        },
    ];
    b.cursor = Some("2024-03-10T02:00:00Z".into());
    b.files = vec![("exports/a.json".into(), "sha-a".into())];
    s.commit(&b).await.unwrap();

    // Open cases come back whole; the finished one only on request.
    let mut open = Vec::new();
    s.load_open_each(&mut |c| open.push(c)).await.unwrap();
    open.sort_by(|x, y| x.case_id.cmp(&y.case_id));
    assert_eq!(open, vec![a.clone(), bb.clone()]);
    assert_eq!(
        s.get_cases("portal", &["C".into(), "nope".into()])
            .await
            .unwrap(),
        vec![c.clone()]
    );
    assert_eq!(
        s.cursor("portal").await.unwrap().as_deref(),
        Some("2024-03-10T02:00:00Z")
    );
    assert_eq!(s.cursor("other").await.unwrap(), None);
    assert!(s
        .file_seen("portal", "exports/a.json", "sha-a")
        .await
        .unwrap());
    assert!(!s
        .file_seen("portal", "exports/a.json", "sha-b")
        .await
        .unwrap());

    // The same batch again changes nothing.
    s.commit(&b).await.unwrap();
    let counts = s.counts().await.unwrap();
    assert_eq!((counts.cases, counts.open), (3, 2));
    assert_eq!(s.versions("portal", "A").await.unwrap().len(), 1);

    // An older version never overwrites a newer one; a newer one does.
    let mut older = a.clone();
    older.status = 2;
    older.updated_at = Some(t("2024-03-04T01:00:00Z"));
    let mut newer = a.clone();
    newer.status = 9;
    newer.updated_at = Some(t("2024-03-09T01:00:00Z"));
    let mut b2 = Batch::new("portal", at);
    b2.cases = vec![row(older, true)];
    s.commit(&b2).await.unwrap();
    assert_eq!(
        s.get_cases("portal", &["A".into()]).await.unwrap()[0].status,
        4
    );
    b2.cases = vec![row(newer.clone(), false)];
    s.commit(&b2).await.unwrap();
    assert_eq!(
        s.get_cases("portal", &["A".into()]).await.unwrap()[0],
        newer
    );
    assert_eq!(s.counts().await.unwrap().open, 1);

    // Pending steps wait for their case, then are cleared.
    let pending = s
        .pending_steps("portal", &["Z".into(), "A".into()])
        .await
        .unwrap();
    assert_eq!(pending.get("Z"), Some(&vec![step]));
    assert!(!pending.contains_key("A"));
    let mut b3 = Batch::new("portal", at);
    b3.pending_clear = vec!["Z".into()];
    s.commit(&b3).await.unwrap();
    assert!(s
        .pending_steps("portal", &["Z".into()])
        .await
        .unwrap()
        .is_empty());

    // Evaluations.
    s.save_evaluations(&[EvalUpdate {
        source: "portal".into(),
        case_id: "B".into(),
        open: true,
        eval: eval("paused"),
    }])
    .await
    .unwrap();
    let found = s.find_case("B").await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, bb);
    let e = found[0].1.clone().unwrap();
    assert_eq!(
        (e.state.map(|s| s.as_str()), e.flags.joined().as_str()),
        (Some("paused"), "apology_due")
    );
    assert_eq!(e.calendar_version, "vn-official@abcdef");
    assert!(e.calendar_estimated, "the estimated mark is stored");

    // Quarantine.
    let q = s.quarantine_list(None, false, 100).await.unwrap();
    assert_eq!(q.len(), 2);
    assert_eq!(q[0].case_id.as_deref(), Some("Q1"));
    assert_eq!(q[0].received_at, at);
    assert_eq!(
        s.quarantine_get(q[1].id).await.unwrap().unwrap().reason,
        "no case id"
    );
    assert_eq!(
        s.quarantine_counts().await.unwrap(),
        vec![("portal".to_string(), 2)]
    );
    let mut b4 = Batch::new("portal", at + Duration::hours(1));
    b4.resolved = vec![q[0].id];
    s.commit(&b4).await.unwrap();
    assert_eq!(
        s.quarantine_list(Some("portal"), false, 100)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.quarantine_list(Some("portal"), true, 100)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(s
        .quarantine_list(Some("other"), true, 100)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.quarantine_get(q[0].id)
            .await
            .unwrap()
            .unwrap()
            .resolution
            .as_deref(),
        Some("normalised on retry")
    );
    s.quarantine_mark_retried(&[q[1].id], at).await.unwrap();
    assert_eq!(
        s.quarantine_get(q[1].id).await.unwrap().unwrap().retried_at,
        Some(at)
    );
    // A valid version supersedes quarantined copies changed at or before it, and
    // those whose change time is unknown; not a copy changed after it.
    let mut b5 = Batch::new("portal", at + Duration::hours(2));
    b5.quarantine = vec![
        QuarantineNew {
            case_id: Some("S1".into()),
            reason: "bad date".into(),
            body: r#"{"MaHoSo":"S1","x":1}"#.into(),
            changed_at: Some(t("2024-03-09T02:00:00Z")),
        },
        QuarantineNew {
            case_id: Some("S2".into()),
            reason: "bad date".into(),
            body: r#"{"MaHoSo":"S2","x":1}"#.into(),
            changed_at: Some(t("2024-03-09T05:00:00Z")),
        },
        QuarantineNew {
            case_id: Some("S3".into()),
            reason: "bad date".into(),
            body: r#"{"MaHoSo":"S3","x":1}"#.into(),
            changed_at: None,
        },
    ];
    s.commit(&b5).await.unwrap();
    let mut b6 = Batch::new("portal", at + Duration::hours(3));
    b6.valid = vec![
        ("S1".into(), Some(t("2024-03-09T02:00:00Z"))),
        ("S2".into(), Some(t("2024-03-09T04:00:00Z"))),
        ("S3".into(), Some(t("2024-03-01T00:00:00Z"))),
    ];
    s.commit(&b6).await.unwrap();
    let open: Vec<Option<String>> = s
        .quarantine_list(Some("portal"), false, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.case_id)
        .collect();
    assert_eq!(open, vec![None, Some("S2".to_string())]);
    let all = s.quarantine_list(Some("portal"), true, 100).await.unwrap();
    let s1 = all
        .iter()
        .find(|r| r.case_id.as_deref() == Some("S1"))
        .unwrap();
    assert!(s1.resolved);
    assert_eq!(
        s1.resolution.as_deref(),
        Some("superseded by a valid version changed 2024-03-09T02:00:00+00:00")
    );
    assert_eq!(s.quarantine_purge(at - Duration::days(1)).await.unwrap(), 0);
    assert_eq!(
        s.quarantine_purge(at + Duration::seconds(1)).await.unwrap(),
        2
    );
    assert_eq!(
        s.quarantine_purge(at + Duration::hours(3)).await.unwrap(),
        3
    );

    // Units no directory entry matched.
    assert_eq!(
        s.unmatched_units().await.unwrap(),
        vec![("UBND xã Lạ".to_string(), 1)]
    );

    // Period counts of ended cases: ended in January (year only), February (quarter)
    // and March (month), on time or not, one returned late, one outside 766.
    let mut b = Batch::new("portal", at);
    for (id, ended, on_time, outcome, flags) in [
        ("E-JAN", "2024-01-15T03:00:00Z", Some(true), "early", ""),
        ("E-FEB", "2024-02-15T03:00:00Z", Some(false), "late", ""),
        (
            "E-MAR1",
            "2024-03-05T03:00:00Z",
            Some(true),
            "on_time",
            "returned_late",
        ),
        ("E-MAR2", "2024-03-06T03:00:00Z", Some(true), "on_time", ""),
        ("E-MAR3", "2024-03-07T03:00:00Z", None, "early", ""),
        ("E-2023", "2023-12-29T03:00:00Z", Some(true), "early", ""),
    ] {
        let mut e = eval("on_track");
        e.state = None;
        e.outcome = slawatch::sla::Outcome::parse(outcome);
        e.flags = slawatch::sla::Flags::parse(flags);
        e.ended_at = Some(t(ended));
        e.on_time = on_time;
        b.cases.push(CaseRow {
            case: case(id, 10, "2024-03-10T01:00:00Z", Some("SXD")),
            open: false,
            eval: Some(e),
        });
    }
    s.commit(&b).await.unwrap();
    let mut groups = s
        .finished_groups(&PeriodStarts {
            year: t("2023-12-31T17:00:00Z"),
            quarter: t("2024-01-31T17:00:00Z"),
            month: t("2024-02-29T17:00:00Z"),
        })
        .await
        .unwrap();
    groups.sort_by_key(|g| (g.outcome.clone(), g.on_time, g.returned_late));
    let g = |outcome: &str, on_time: Option<bool>, rl: bool, y, q, m, a| FinishedGroup {
        kind: "dossier".into(),
        unit: Some("SXD".into()),
        outcome: Some(outcome.into()),
        on_time,
        returned_late: rl,
        in_year: y,
        in_quarter: q,
        in_month: m,
        all_time: a,
    };
    // E-2023 ended the year before: in no running period, but ever (the counter).
    assert_eq!(
        groups,
        vec![
            g("early", None, false, 1, 1, 1, 1),
            g("early", Some(true), false, 1, 0, 0, 2),
            g("late", Some(false), false, 1, 1, 0, 1),
            g("on_time", Some(true), false, 1, 1, 1, 1),
            g("on_time", Some(true), true, 1, 1, 1, 1),
        ]
    );
    let found = s.find_case("E-FEB").await.unwrap();
    let e = found[0].1.clone().unwrap();
    assert_eq!(
        (e.ended_at, e.on_time),
        (Some(t("2024-02-15T03:00:00Z")), Some(false))
    );

    // Alerts and the outbox: an alert and its message are recorded once however often
    // they are applied; claims lease messages; failures back off, then dead-letter.
    let key = |rule: &str| AlertKey {
        source: "portal".into(),
        case_id: "A".into(),
        rule: rule.into(),
        level: 0,
        due_key: "2024-03-22T01:00:00Z".into(),
    };
    let msg = |id: &str, rule: &str| OutboxNew {
        message_id: id.into(),
        channel: "email".into(),
        rule: rule.into(),
        source: "portal".into(),
        case_id: "A".into(),
        to_addr: "giamdoc@stp.example.gov.vn".into(),
        to_name: "Giám đốc".into(),
        cc: "[]".into(),
        lang: "vi".into(),
        item: "{}".into(),
        not_before: at,
        level: 0,
        due_key: "2024-03-22T01:00:00Z".into(),
    };
    let fire = vec![
        NewAlert {
            key: key("overdue"),
            unit: Some("STP".into()),
        },
        NewAlert {
            key: key("stuck"),
            unit: Some("STP".into()),
        },
        NewAlert {
            key: key("apology_due"),
            unit: Some("STP".into()),
        },
    ];
    let queue = vec![
        msg("<m1@x>", "overdue"),
        msg("<m2@x>", "stuck"),
        msg("<m3@x>", "apology_due"),
    ];
    s.alerts_apply(&fire, &[], &queue, at).await.unwrap();
    s.alerts_apply(&fire, &[], &queue, at).await.unwrap();
    let mut open = s.alerts_open().await.unwrap();
    open.sort();
    assert_eq!(open, vec![key("apology_due"), key("overdue"), key("stuck")]);
    assert_eq!(s.outbox_pending().await.unwrap(), 3);
    // Resolved before it went out: its waiting message is cancelled.
    s.alerts_apply(&[], &[key("stuck")], &[], at).await.unwrap();
    let mut open = s.alerts_open().await.unwrap();
    open.sort();
    assert_eq!(open, vec![key("apology_due"), key("overdue")]);
    assert_eq!(s.outbox_pending().await.unwrap(), 2);
    // Not due before `not_before`.
    assert!(s
        .outbox_claim(at - Duration::seconds(1), Duration::minutes(5), 10)
        .await
        .unwrap()
        .is_empty());
    let claimed = s.outbox_claim(at, Duration::minutes(5), 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert_eq!(claimed[0].attempts, 1);
    // Leased: a second claimer gets nothing until the lease ends.
    assert!(s
        .outbox_claim(at, Duration::minutes(5), 10)
        .await
        .unwrap()
        .is_empty());
    let log = NotificationRow {
        at,
        rule: "overdue".into(),
        level: 0,
        recipient: "giamdoc@stp.example.gov.vn".into(),
        channel: "smtp".into(),
        status: "sent".into(),
        message_id: Some("<m1@x>".into()),
    };
    s.outbox_sent(
        &[claimed[0].id],
        at,
        &[("portal".into(), "A".into(), log.clone())],
    )
    .await
    .unwrap();
    assert_eq!(s.notifications("portal", "A").await.unwrap(), vec![log]);
    s.outbox_failed(
        &[claimed[1].id],
        "refused",
        at + Duration::minutes(1),
        false,
    )
    .await
    .unwrap();
    assert_eq!(s.outbox_pending().await.unwrap(), 1);
    let again = s
        .outbox_claim(at + Duration::minutes(1), Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!((again.len(), again[0].attempts), (1, 2));
    s.outbox_failed(&[again[0].id], "refused", at, true)
        .await
        .unwrap();
    assert_eq!(s.outbox_pending().await.unwrap(), 0);
    assert_eq!(s.outbox_dead().await.unwrap(), 1);
    // Requeued once the cause is fixed: pending again with fresh attempts.
    assert_eq!(s.outbox_requeue_dead(at).await.unwrap(), 1);
    assert_eq!(
        (
            s.outbox_dead().await.unwrap(),
            s.outbox_pending().await.unwrap()
        ),
        (0, 1)
    );
    let back = s.outbox_claim(at, Duration::minutes(5), 10).await.unwrap();
    assert_eq!((back.len(), back[0].attempts), (1, 1));
    s.outbox_sent(&[back[0].id], at, &[]).await.unwrap();
    assert_eq!(s.outbox_pending().await.unwrap(), 0);

    // An acknowledgement cancels the waiting messages of its case, rule and due (any
    // level), not those of another due.
    let mut other_due = msg("<m5@x>", "escalated");
    other_due.due_key = "2024-03-29T01:00:00Z".into();
    let mut level2 = msg("<m4@x>", "escalated");
    level2.level = 2;
    s.alerts_apply(&[], &[], &[level2, other_due], at)
        .await
        .unwrap();
    assert_eq!(s.outbox_pending().await.unwrap(), 2);
    s.ack_add(&slawatch::store::Ack {
        source: "portal".into(),
        case_id: "A".into(),
        rule: "escalated".into(),
        due_at: Some(t("2024-03-22T01:00:00Z")),
        note: "Đã báo cáo".into(),
        by: "Trần Thị B".into(),
        at,
    })
    .await
    .unwrap();
    assert_eq!(s.outbox_pending().await.unwrap(), 1);
    let left = s.outbox_claim(at, Duration::minutes(5), 10).await.unwrap();
    assert_eq!(left[0].message_id, "<m5@x>");
    s.outbox_sent(&[left[0].id], at, &[]).await.unwrap();

    // Acknowledgements: read on from the last id seen.
    let ack = |case_id: &str, rule: &str| slawatch::store::Ack {
        source: "portal".into(),
        case_id: case_id.into(),
        rule: rule.into(),
        due_at: Some(at),
        note: "Đã gửi phiếu xin lỗi".into(),
        by: "Trần Thị B".into(),
        at,
    };
    let first = s.ack_add(&ack("A-1", "overdue")).await.unwrap();
    assert!(first > 1, "after the one above");
    s.ack_add(&ack("A-2", "apology_due")).await.unwrap();
    let all = s.acks_after(first - 1).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0], (first, ack("A-1", "overdue")));
    assert_eq!(s.acks_after(0).await.unwrap().len(), 3);
    let newer = s.acks_after(first).await.unwrap();
    assert_eq!(newer.len(), 1);
    assert_eq!(newer[0].1, ack("A-2", "apology_due"));
    assert!(s.acks_after(newer[0].0).await.unwrap().is_empty());
    assert_eq!(
        s.acks("portal", "A-1").await.unwrap(),
        [ack("A-1", "overdue")]
    );

    // Leases: one holder at a time, renewable, taken over once run out.
    assert!(s
        .lease("alerts", "a", at + Duration::minutes(2), at)
        .await
        .unwrap());
    assert!(!s
        .lease("alerts", "b", at + Duration::minutes(2), at)
        .await
        .unwrap());
    assert!(s
        .lease(
            "alerts",
            "a",
            at + Duration::minutes(3),
            at + Duration::minutes(1)
        )
        .await
        .unwrap());
    assert!(!s
        .lease(
            "alerts",
            "b",
            at + Duration::minutes(5),
            at + Duration::minutes(2)
        )
        .await
        .unwrap());
    assert!(s
        .lease(
            "alerts",
            "b",
            at + Duration::minutes(6),
            at + Duration::minutes(4)
        )
        .await
        .unwrap());

    s.record_job(&JobRun {
        job: "poll:portal".into(),
        started_at: at,
        finished_at: at + Duration::seconds(2),
        ok: true,
        message: "3 records".into(),
    })
    .await
    .unwrap();
    s.close().await;
}

#[tokio::test]
async fn sqlite_store_conformance() {
    let dir = scratch("sqlite-store");
    let s = store::open(&format!("sqlite://{}/nested/slawatch.db", dir.display()))
        .await
        .unwrap();
    assert_eq!(s.backend(), "sqlite");
    story(s).await;
}

#[tokio::test]
async fn postgres_store_conformance() {
    let Some(db) = PgDatabase::create("store").await else {
        eprintln!("SLAWATCH_TEST_DATABASE_URL is not set: PostgreSQL conformance not run");
        return;
    };
    let s = store::open(&db.url).await.unwrap();
    assert_eq!(s.backend(), "postgres");
    story(s).await;
    db.drop_it().await;
}
