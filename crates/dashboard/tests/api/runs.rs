//! `GET /pipeline_runs` and `GET /pipeline_runs/{id}` on both databases.

use serde_json::Value;
use time::{Duration, OffsetDateTime};

use crate::helpers::*;
use crate::on_both_databases;

on_both_databases!(
    an_empty_table_is_an_empty_array,
    every_status_is_answered_with_the_design_fields,
    newest_first_by_start_time_then_run_id,
    the_bare_request_is_capped_and_links_to_the_next_page,
    pages_walk_every_run_once,
    bad_paging_parameters_are_400_json,
    one_run_has_its_gate_report_and_logs,
    unknown_and_hostile_run_ids_are_404_json,
);

async fn an_empty_table_is_an_empty_array(kind: Kind) {
    let app = spawn_app(kind).await;
    let response = app.get("/pipeline_runs").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let link = response.headers()["link"].to_str().unwrap().to_owned();
    assert!(!link.contains("next"), "no next page: {link}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!([]));
}

fn find(body: &Value, id: i64) -> &Value {
    body.as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == id)
        .unwrap_or_else(|| panic!("run {id} not in {body}"))
}

fn statuses(run: &Value) -> Vec<&str> {
    (1..=7)
        .map(|n| run[format!("stage_{n}_status")].as_str().unwrap())
        .collect()
}

async fn every_status_is_answered_with_the_design_fields(kind: Kind) {
    let app = spawn_app(kind).await;
    let complete = complete_run(&app.store).await;
    let failed = failed_run(&app.store).await;
    let running = running_run(&app.store).await;
    let skipped = not_triggered_run(&app.store).await;
    let waiting = waiting_run(&app.store).await;

    let (status, body) = app.get_json("/pipeline_runs").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.as_array().unwrap().len(), 5);

    let run = find(&body, complete);
    assert_eq!(statuses(run), ["complete"; 7]);
    assert_eq!(run["outcome"], "complete");
    assert_eq!(run["failed_stage"], Value::Null);
    assert_eq!(run["new_images"], 40);
    assert_eq!(run["model_version"], "4");
    assert_eq!(run["promoted"], true);
    assert_eq!(
        run["data_commit"],
        "0123456789abcdef0123456789abcdef01234567"
    );
    assert_eq!(run["data_hash"], "d41d8cd98f00b204e9800998ecf8427e.dir");
    assert!(
        run.get("gate_report").is_none(),
        "the list leaves the report out: {run}"
    );
    for n in 1..=7 {
        let start = run[format!("stage_{n}_start")].as_str().unwrap();
        let end = run[format!("stage_{n}_end")].as_str().unwrap();
        let start =
            OffsetDateTime::parse(start, &time::format_description::well_known::Rfc3339).unwrap();
        let end =
            OffsetDateTime::parse(end, &time::format_description::well_known::Rfc3339).unwrap();
        let took = run[format!("stage_{n}_duration_s")].as_f64().unwrap();
        assert!(
            (took - (end - start).as_seconds_f64()).abs() < 0.001,
            "stage {n}: {took} vs {start}..{end}"
        );
    }
    assert!(run["end_time"].is_string());
    assert!(run["start_time"].as_str().unwrap().ends_with('Z'));

    let run = find(&body, failed);
    assert_eq!(
        statuses(run),
        [
            "complete", "complete", "failed", "failed", "failed", "failed", "failed"
        ]
    );
    assert_eq!(run["outcome"], "failed");
    assert_eq!(run["failed_stage"], 3);
    assert_eq!(run["stage_3_message"], FAILURE);
    assert_eq!(run["stage_4_message"], "not run: stage 3 failed");
    assert!(run["stage_3_duration_s"].is_number());
    assert_eq!(
        run["stage_4_duration_s"],
        Value::Null,
        "stage 4 never started"
    );
    assert_eq!(run["model_version"], Value::Null);
    assert_eq!(run["promoted"], Value::Null);

    let run = find(&body, running);
    assert_eq!(
        statuses(run),
        [
            "complete", "complete", "complete", "complete", "running", "waiting", "waiting"
        ]
    );
    assert_eq!(run["outcome"], "running");
    assert!(run["stage_5_start"].is_string());
    assert_eq!(run["stage_5_end"], Value::Null);
    assert_eq!(run["stage_5_duration_s"], Value::Null);
    assert_eq!(run["end_time"], Value::Null);

    let run = find(&body, skipped);
    assert_eq!(run["outcome"], "not_triggered");
    assert_eq!(run["stage_1_status"], "complete");
    for n in 2..=7 {
        assert_eq!(run[format!("stage_{n}_status")], "not_triggered");
        assert_eq!(run[format!("stage_{n}_message")], NOT_ENOUGH);
    }

    let run = find(&body, waiting);
    assert_eq!(statuses(run), ["waiting"; 7]);
    assert_eq!(run["outcome"], "running");
    assert_eq!(run["trigger"], "schedule");
}

async fn newest_first_by_start_time_then_run_id(kind: Kind) {
    let app = spawn_app(kind).await;
    let ids = many_runs(&app.store, 5).await;
    let base = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    // Start times out of id order, with a tie between the 2nd and the 4th.
    let offsets = [-30, 10, -10, 10, 0];
    for (id, secs) in ids.iter().zip(offsets) {
        app.set_time(*id, "start_time", base + Duration::seconds(secs))
            .await;
    }
    let answered = app.ids("/pipeline_runs").await;
    assert_eq!(answered, [ids[3], ids[1], ids[4], ids[2], ids[0]]);
}

async fn the_bare_request_is_capped_and_links_to_the_next_page(kind: Kind) {
    let app = spawn_app(kind).await;
    let ids = many_runs(&app.store, 130).await;
    let response = app.get("/pipeline_runs").await;
    assert_eq!(response.status(), 200);
    let link = response.headers()["link"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let answered: Vec<i64> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_i64().unwrap())
        .collect();
    assert_eq!(answered.len(), 100, "dashboard.default_limit");
    assert_eq!(answered[0], *ids.last().unwrap(), "newest first");
    assert!(
        link.contains(r#"</pipeline_runs?limit=100&offset=100>; rel="next""#),
        "{link}"
    );
    assert!(
        link.contains(r#"</pipeline_runs?limit=100&offset=0>; rel="first""#),
        "{link}"
    );
    assert!(!link.contains("prev"), "{link}");

    // A limit above dashboard.max_limit (500 here) is cut to it.
    let response = app.get("/pipeline_runs?limit=100000").await;
    let link = response.headers()["link"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body.as_array().unwrap().len(), 130);
    assert!(!link.contains("next"), "{link}");
    assert!(link.contains("limit=500"), "{link}");
}

async fn pages_walk_every_run_once(kind: Kind) {
    let app = spawn_app(kind).await;
    let mut ids = many_runs(&app.store, 23).await;
    ids.reverse();
    let mut seen = Vec::new();
    let mut next = Some("/pipeline_runs?limit=10".to_owned());
    let mut pages = 0;
    while let Some(path) = next.take() {
        let response = app.get(&path).await;
        assert_eq!(response.status(), 200);
        let link = response.headers()["link"].to_str().unwrap().to_owned();
        if pages > 0 {
            assert!(link.contains(r#"rel="prev""#), "{link}");
        }
        let body: Value = response.json().await.unwrap();
        seen.extend(
            body.as_array()
                .unwrap()
                .iter()
                .map(|r| r["run_id"].as_i64().unwrap()),
        );
        next = link
            .split(", ")
            .find(|l| l.ends_with(r#"rel="next""#))
            .map(|l| l[1..l.find('>').unwrap()].to_owned());
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids);
    assert_eq!(
        app.ids("/pipeline_runs?limit=10&offset=20").await,
        ids[20..]
    );
    assert!(app.ids("/pipeline_runs?offset=1000").await.is_empty());
    assert!(app.ids("/pipeline_runs?limit=0").await.is_empty());
}

async fn bad_paging_parameters_are_400_json(kind: Kind) {
    let app = spawn_app(kind).await;
    for query in [
        "limit=abc",
        "limit=-1",
        "limit=1.5",
        "offset=-3",
        "offset=99999999999999999999",
        "limit=",
    ] {
        let (status, body) = app.get_json(&format!("/pipeline_runs?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error_type"], "invalid_query", "{query}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains("must be"),
            "{body}"
        );
    }
}

async fn one_run_has_its_gate_report_and_logs(kind: Kind) {
    let app = spawn_app(kind).await;
    let run = complete_run(&app.store).await;
    for n in [1, 5] {
        let path = doodle_runs::stage_log_path(app.log_dir.path(), run, n);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("stage {n} output\n")).unwrap();
    }
    let (status, body) = app.get_json(&format!("/pipeline_runs/{run}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["run_id"], run);
    assert_eq!(body["outcome"], "complete");
    assert_eq!(body["host"], "test-host");
    assert_eq!(body["pid"], 4242);
    assert_eq!(
        body["gate_report"],
        serde_json::from_str::<Value>(GATE_REPORT).unwrap(),
        "the report as JSON"
    );
    assert_eq!(
        body["stage_logs"],
        serde_json::json!({
            "1": format!("/pipeline_runs/{run}/stages/1/log"),
            "5": format!("/pipeline_runs/{run}/stages/5/log"),
        })
    );
}

async fn unknown_and_hostile_run_ids_are_404_json(kind: Kind) {
    let app = spawn_app(kind).await;
    complete_run(&app.store).await;
    for id in [
        "2",
        "0",
        "-1",
        "..",
        "%2e%2e",
        "%2E%2E%2Fetc",
        "99999999999999999999999",
        "9223372036854775807",
        "1%00",
        "1.0",
        "+1",
        "%20%31",
    ] {
        let (status, body) = app.raw_get(&format!("/pipeline_runs/{id}")).await;
        assert_eq!(status, 404, "{id}: {body}");
        let body: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{id}: {e}: {body}"));
        assert_eq!(body["error_type"], "unknown_run", "{id}: {body}");
    }
}
