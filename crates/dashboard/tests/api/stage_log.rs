//! `GET /pipeline_runs/{id}/stages/{n}/log`: the file the orchestrator wrote, and nothing else.

use serde_json::Value;

use crate::helpers::*;
use crate::on_both_databases;

on_both_databases!(
    the_log_is_the_orchestrators_file_for_that_run_and_stage,
    a_long_log_answers_its_end_in_whole_lines,
    hostile_ids_and_stages_are_404_json_and_reach_no_file,
    a_stage_without_a_log_is_404_json,
);

fn write_log(app: &TestApp, run: i64, stage: usize, text: &str) {
    let path = doodle_runs::stage_log_path(app.log_dir.path(), run, stage);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

async fn the_log_is_the_orchestrators_file_for_that_run_and_stage(kind: Kind) {
    let app = spawn_app(kind).await;
    let run = failed_run(&app.store).await;
    // Where the orchestrator writes it: <log_dir>/runs/<run_id>/stage<N>.log.
    let dir = app.log_dir.path().join("runs").join(run.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("stage3.log"),
        format!("converting\nfailure: {FAILURE}\n"),
    )
    .unwrap();
    std::fs::write(dir.join("stage2.log"), "merged\n").unwrap();

    let response = app.get(&format!("/pipeline_runs/{run}/stages/3/log")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(response.headers()["x-log-truncated"], "false");
    assert_eq!(
        response.text().await.unwrap(),
        format!("converting\nfailure: {FAILURE}\n")
    );
    let response = app.get(&format!("/pipeline_runs/{run}/stages/2/log")).await;
    assert_eq!(response.text().await.unwrap(), "merged\n");
}

async fn a_long_log_answers_its_end_in_whole_lines(kind: Kind) {
    let app = spawn_app(kind).await;
    let run = running_run(&app.store).await;
    let text: String = (0..2000).map(|i| format!("epoch line {i:05}\n")).collect();
    write_log(&app, run, 5, &text);
    let response = app.get(&format!("/pipeline_runs/{run}/stages/5/log")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-log-truncated"], "true");
    assert_eq!(
        response.headers()["x-log-size"],
        text.len().to_string().as_str()
    );
    let tail = response.text().await.unwrap();
    assert!(
        tail.len() <= 4096,
        "dashboard.log_tail_bytes: {}",
        tail.len()
    );
    assert!(tail.ends_with("epoch line 01999\n"));
    assert!(
        tail.starts_with("epoch line "),
        "whole lines only: {:?}",
        &tail[..30]
    );
    assert!(text.ends_with(&tail));
}

async fn hostile_ids_and_stages_are_404_json_and_reach_no_file(kind: Kind) {
    let app = spawn_app(kind).await;
    let run = complete_run(&app.store).await;
    write_log(&app, run, 1, "the real log\n");
    // Files a path built from text could reach.
    std::fs::write(app.log_dir.path().join("secret.log"), "secret\n").unwrap();
    std::fs::write(
        app.log_dir.path().join("runs").join("stage1.log"),
        "secret\n",
    )
    .unwrap();

    let paths = [
        "/pipeline_runs/../stages/1/log".to_owned(),
        "/pipeline_runs/%2e%2e/stages/1/log".to_owned(),
        "/pipeline_runs/%2E%2E%2F%2E%2E/stages/1/log".to_owned(),
        format!("/pipeline_runs/{run}/stages/../log"),
        format!("/pipeline_runs/{run}/stages/%2e%2e/log"),
        format!("/pipeline_runs/{run}/stages/..%2Fsecret/log"),
        "/pipeline_runs/99999999999999999999999999/stages/1/log".to_owned(),
        format!("/pipeline_runs/{run}/stages/99999999999999999999/log"),
        "/pipeline_runs/-1/stages/1/log".to_owned(),
        format!("/pipeline_runs/{run}/stages/-1/log"),
        format!("/pipeline_runs/{run}/stages/0/log"),
        format!("/pipeline_runs/{run}/stages/8/log"),
        format!("/pipeline_runs/{run}/stages/01/log"),
        "/pipeline_runs/0/stages/1/log".to_owned(),
        format!("/pipeline_runs/{}/stages/1/log", run + 1),
        "/pipeline_runs/%00/stages/1/log".to_owned(),
        format!("/pipeline_runs/{run}%2Fstages%2F1/stages/1/log"),
    ];
    for path in &paths {
        let (status, body) = app.raw_get(path).await;
        assert_eq!(status, 404, "{path}: {body}");
        let json: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"));
        assert!(json["detail"].is_string(), "{path}: {json}");
        assert!(
            !body.contains("secret") && !body.contains("the real log"),
            "{path}: {body}"
        );
    }
    // The only way to the log is its run and stage number.
    let (status, body) = app
        .raw_get(&format!("/pipeline_runs/{run}/stages/1/log"))
        .await;
    assert_eq!((status, body.as_str()), (200, "the real log\n"));
}

async fn a_stage_without_a_log_is_404_json(kind: Kind) {
    let app = spawn_app(kind).await;
    let run = not_triggered_run(&app.store).await;
    let (status, body) = app
        .get_json(&format!("/pipeline_runs/{run}/stages/4/log"))
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error_type"], "no_log");
    assert_eq!(body["detail"], format!("run {run} has no log for stage 4"));
}
