//! `/metrics`: HTTP metrics and the pipeline's own, read from `pipeline_runs`.

use time::{Duration, OffsetDateTime};

use crate::helpers::*;
use crate::on_both_databases;

on_both_databases!(
    pipeline_metrics_follow_the_table,
    http_metrics_use_route_templates
);

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no `{series}` in\n{text}"))
}

async fn pipeline_metrics_follow_the_table(kind: Kind) {
    let app = spawn_app(kind).await;
    let text = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(
        value(&text, r#"doodle_pipeline_runs_total{outcome="failed"}"#),
        0.0
    );
    assert_eq!(value(&text, "doodle_pipeline_last_run_id"), 0.0);

    complete_run(&app.store).await;
    not_triggered_run(&app.store).await;
    let running = running_run(&app.store).await;
    waiting_run(&app.store).await;
    let failed = failed_run(&app.store).await;
    // The newest run's stage 1 took 2.5 s, and it started at a known time (the newest).
    let start = (OffsetDateTime::now_utc() + Duration::minutes(1))
        .replace_nanosecond(0)
        .unwrap();
    app.set_time(failed, "start_time", start).await;
    app.set_time(failed, "stage_1_start", start).await;
    app.set_time(failed, "stage_1_end", start + Duration::milliseconds(2500))
        .await;

    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    assert_eq!(
        value(&text, r#"doodle_pipeline_runs_total{outcome="complete"}"#),
        1.0
    );
    assert_eq!(
        value(&text, r#"doodle_pipeline_runs_total{outcome="failed"}"#),
        1.0
    );
    assert_eq!(
        value(
            &text,
            r#"doodle_pipeline_runs_total{outcome="not_triggered"}"#
        ),
        1.0
    );
    assert_eq!(value(&text, "doodle_pipeline_runs_in_progress"), 2.0);
    assert_eq!(value(&text, "doodle_pipeline_last_run_id"), failed as f64);
    assert_eq!(
        value(&text, "doodle_pipeline_last_run_start_time_seconds"),
        start.unix_timestamp() as f64
    );
    assert_eq!(
        value(
            &text,
            r#"doodle_pipeline_last_run_outcome{outcome="failed"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            r#"doodle_pipeline_last_run_outcome{outcome="running"}"#
        ),
        0.0
    );
    assert_eq!(
        value(
            &text,
            r#"doodle_pipeline_last_run_outcome{outcome="complete"}"#
        ),
        0.0
    );
    let took = value(
        &text,
        r#"doodle_pipeline_last_run_stage_duration_seconds{name="scan",stage="1"}"#,
    );
    assert!((took - 2.5).abs() < 0.002, "{took}");
    // Stage 1 finished in the complete, not-triggered, running and failed runs.
    assert_eq!(
        value(
            &text,
            r#"doodle_pipeline_stages_finished_total{name="scan",stage="1"}"#
        ),
        4.0
    );
    // Stage 3 in the complete, the running and the failed run; stage 4 of the failed one never
    // started, stage 5 of the running one has not ended.
    assert_eq!(
        value(
            &text,
            r#"doodle_pipeline_stages_finished_total{name="convert",stage="3"}"#
        ),
        3.0
    );
    assert_eq!(
        value(
            &text,
            r#"doodle_pipeline_stages_finished_total{name="version",stage="4"}"#
        ),
        2.0
    );
    assert_eq!(
        value(
            &text,
            r#"doodle_pipeline_stages_finished_total{name="retrain",stage="5"}"#
        ),
        1.0
    );
    let scan_seconds = value(
        &text,
        r#"doodle_pipeline_stage_duration_seconds_total{name="scan",stage="1"}"#,
    );
    assert!((2.5..3.0).contains(&scan_seconds), "{scan_seconds}");
    assert_eq!(value(&text, "doodle_pipeline_database_up"), 1.0);

    // The running run completes: the next scrape says so.
    for n in 5..=7 {
        let status = doodle_runs::StageStatus::Complete;
        app.store.set_stage(running, n, status, None).await.unwrap();
    }
    let text = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(value(&text, "doodle_pipeline_runs_in_progress"), 1.0);
    assert_eq!(
        value(&text, r#"doodle_pipeline_runs_total{outcome="complete"}"#),
        2.0
    );
}

async fn http_metrics_use_route_templates(kind: Kind) {
    let app = spawn_app(kind).await;
    let run = complete_run(&app.store).await;
    app.get(&format!("/pipeline_runs/{run}")).await;
    app.get("/pipeline_runs/12345").await;
    app.get("/nope/../../etc/passwd").await;
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains(
            r#"doodle_http_requests_total{method="GET",route="/pipeline_runs/{id}",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"doodle_http_requests_total{method="GET",route="/pipeline_runs/{id}",status="404"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"api_errors_total{endpoint="/pipeline_runs/{id}",error_type="unknown_run"} 1"#
        ),
        "{text}"
    );
    assert!(
        !text.contains("12345") && !text.contains("passwd"),
        "raw paths are no labels"
    );
}
