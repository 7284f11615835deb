//! The JSON API on a real listener over hand-made cases: the token, filters and
//! urgency order, one case with its trace, acknowledgement and the notification log,
//! unit summaries, and errors as JSON.

use crate::metrics::{now, shared_with_cases};
use crate::scratch;
use serde_json::{json, Value};

async fn serve(token: Option<&str>) -> String {
    let dir = scratch("api");
    let sh = shared_with_cases(&dir, now()).await;
    // Alerts fire (overdue and escalated for M-OVERDUE, queued for the window).
    sh.touch_source("portal", now(), 6);
    let fired =
        slawatch::daemon::alert_pass(&sh, &slawatch::config::AlertsConfig::default(), now())
            .await
            .unwrap();
    // One message per person: overdue to the head, its copy, the service centre;
    // escalated to the chairman and the head.
    assert_eq!(fired.queued, 5);
    let app = slawatch::http::router(sh, vec![], 1 << 20, token.map(str::to_string));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn the_api_answers_with_the_token_only() {
    let base = serve(Some("tok")).await;
    let c = reqwest::Client::new();
    let r = c.get(format!("{base}/api/v1/cases")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.json::<Value>().await.unwrap()["error"].is_string());
    let r = c
        .get(format!("{base}/api/v1/cases"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Metrics and health stay open.
    for path in ["/metrics", "/healthz", "/readyz"] {
        let r = c.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }

    let get = |path: String| {
        let c = c.clone();
        async move {
            let r = c.get(path).bearer_auth("tok").send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    // Open cases: M-OVERDUE, M-ONTRACK, M-UNKNOWN; overdue first.
    let (s, v) = get(format!("{base}/api/v1/cases")).await;
    assert_eq!(s, 200);
    assert_eq!(v["total"], 3);
    assert_eq!(v["items"][0]["case_id"], "M-OVERDUE");
    assert_eq!(v["items"][0]["due_at"], "2024-03-08T17:00:00+07:00");
    assert_eq!(v["items"][0]["state"], "overdue");
    // 2024 is an announced year: the due rests on no estimate.
    assert_eq!(v["items"][0]["calendar_estimated"], false);
    assert!(v["items"][0].get("applicant_hash").is_none());
    let (_, v) = get(format!("{base}/api/v1/cases?unit=unknown")).await;
    assert_eq!(v["items"][0]["case_id"], "M-UNKNOWN");
    let (_, v) = get(format!("{base}/api/v1/cases?state=on_track&unit=STP")).await;
    assert_eq!(v["total"], 1);
    assert_eq!(v["items"][0]["case_id"], "M-ONTRACK");
    let (_, v) = get(format!("{base}/api/v1/cases?limit=1&offset=1&sort=id")).await;
    assert_eq!(
        (v["total"].as_u64(), v["items"].as_array().unwrap().len()),
        (Some(3), 1)
    );
    // By id: M-ONTRACK, M-OVERDUE, M-UNKNOWN.
    assert_eq!(v["items"][0]["case_id"], "M-OVERDUE");

    // Bad parameters: 400 with what was wrong.
    let (s, v) = get(format!("{base}/api/v1/cases?state=late")).await;
    assert_eq!(s, 400);
    assert!(v["error"].as_str().unwrap().contains("`state`"));
    let (s, _) = get(format!("{base}/api/v1/cases?limit=0")).await;
    assert_eq!(s, 400);
    let (s, v) = get(format!("{base}/api/v1/nowhere")).await;
    assert_eq!((s, v["error"].as_str()), (404, Some("not found")));

    // One case, open (memory) and finished (store), in both languages.
    let (s, v) = get(format!("{base}/api/v1/cases/M-OVERDUE?lang=en")).await;
    assert_eq!(s, 200);
    assert_eq!(v["lang"], "en");
    assert!(!v["trace"].as_array().unwrap().is_empty());
    assert_eq!(v["evaluation"]["calendar_estimated"], false);
    assert_eq!(v["case"]["calendar_estimated"], false);
    let (s, v) = get(format!("{base}/api/v1/cases/M-LATE")).await;
    assert_eq!(s, 200);
    assert_eq!(v["case"]["outcome"], "late");
    assert_eq!(v["case"]["open"], false);
    let (s, _) = get(format!("{base}/api/v1/cases/NO-SUCH")).await;
    assert_eq!(s, 404);

    // Acknowledge, then see it in the log.
    let r = c
        .post(format!("{base}/api/v1/cases/M-OVERDUE/ack"))
        .bearer_auth("tok")
        .json(&json!({"rule": "overdue", "note": "Đã gửi phiếu xin lỗi", "by": "Trần Thị B"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let ack: Value = r.json().await.unwrap();
    assert_eq!(ack["due_at"], "2024-03-08T17:00:00+07:00");
    let r = c
        .post(format!("{base}/api/v1/cases/M-OVERDUE/ack"))
        .bearer_auth("tok")
        .json(&json!({"rule": "late", "note": "x", "by": "y"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (_, v) = get(format!("{base}/api/v1/cases/M-OVERDUE/notifications")).await;
    assert_eq!(v["acknowledgements"][0]["note"], "Đã gửi phiếu xin lỗi");
    assert_eq!(v["notifications"], json!([]));
    // Nothing was sent yet: the acknowledged `overdue` messages are cancelled, the
    // escalation's still wait.
    let unsent: Vec<(String, String)> = v["unsent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["rule"].as_str().unwrap().to_string(),
                u["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        unsent,
        [
            ("overdue", "cancelled"),
            ("overdue", "cancelled"),
            ("overdue", "cancelled"),
            ("escalated", "pending"),
            ("escalated", "pending"),
        ]
        .map(|(r, s)| (r.to_string(), s.to_string()))
    );

    // Unit summaries agree with the metrics: month 2/3, quarter 2/4.
    let (s, v) = get(format!("{base}/api/v1/units/STP")).await;
    assert_eq!(s, 200);
    let d = &v["kinds"]["dossier"];
    assert_eq!(d["open"]["overdue"], 1);
    assert_eq!(d["on_time"]["month"]["population"], 3);
    assert_eq!(d["on_time"]["quarter"]["ratio"], 0.5);
    let (_, v) = get(format!("{base}/api/v1/units")).await;
    assert!(v["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["unit"] == "unknown"));
    let (s, v) = get(format!("{base}/api/v1/sources")).await;
    assert_eq!((s, v["items"][0]["name"].as_str()), (200, Some("portal")));
    let (s, _) = get(format!("{base}/api/v1/quarantine?resolved=maybe")).await;
    assert_eq!(s, 400);
}

/// Errors the framework answers by itself (405, 413, 414) have the documented shape:
/// `{"error": …}` on the API, the portal's `{"error_code", "message"}` on the push
/// endpoints.
#[tokio::test]
async fn every_error_has_the_documented_shape() {
    let dir = scratch("api-errors");
    let sh = shared_with_cases(&dir, now()).await;
    let push: slawatch::source::SourceConfig = toml::from_str(
        "name = \"vendor\"\ntype = \"push\"\ntoken_env = \"SW_TEST_PUSH_TOKEN_ERR\"\n",
    )
    .unwrap();
    let mapping = push.mapping().unwrap();
    let app = slawatch::http::router(sh, vec![(push, mapping)], 1024, None);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let base = format!("http://{addr}");
    let c = reqwest::Client::new();
    let check = |r: reqwest::Response, status: u16, portal: bool| async move {
        assert_eq!(r.status().as_u16(), status);
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("application/json"), "{ct}");
        let v: Value = r.json().await.unwrap();
        if portal {
            assert_eq!(v["error_code"], "-1", "{v}");
            assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        } else {
            assert!(v["error"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        }
        v
    };
    // 405 on the API, with Allow kept.
    let r = c
        .delete(format!("{base}/api/v1/cases"))
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("allow"));
    check(r, 405, false).await;
    // 405 and 413 on the push endpoint, in the portal's form.
    let r = c
        .get(format!("{base}/api/v1/ingest/dvcqg"))
        .send()
        .await
        .unwrap();
    check(r, 405, true).await;
    let big = format!("[{}]", vec!["{}"; 600].join(","));
    let r = c
        .post(format!("{base}/api/v1/ingest/dvcqg"))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    check(r, 413, true).await;
    // 414 for an oversized request target.
    let long = "x".repeat(10_000);
    let r = c
        .get(format!("{base}/api/v1/cases?unit={long}"))
        .send()
        .await
        .unwrap();
    check(r, 414, false).await;
    let r = c
        .post(format!("{base}/api/v1/ingest/dvcqg?{long}"))
        .body("[]")
        .send()
        .await
        .unwrap();
    check(r, 414, true).await;
    // A bad query string on the API.
    let r = c
        .get(format!("{base}/api/v1/cases?limit=abc"))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    check(r, status, false).await;
    assert_eq!(status, 400);
}
