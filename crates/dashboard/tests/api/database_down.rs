//! PostgreSQL going away and coming back, through a proxy in front of the shared test server:
//! 503 with a JSON body while it is gone, and the same app serving again once it is back.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

async fn app_behind_proxy() -> (TestApp, TcpProxy) {
    let db = TestDb::new(Kind::Postgres).await;
    let proxy = TcpProxy::start(server_addr(&db.url())).await;
    let url = proxy.url_for(&db.url());
    (spawn_app_on(db, &url, test_settings()).await, proxy)
}

async fn list_status(app: &TestApp) -> u16 {
    app.get("/pipeline_runs").await.status().as_u16()
}

#[tokio::test]
async fn a_stopped_database_is_503_json_and_the_app_recovers_by_itself() {
    let (app, proxy) = app_behind_proxy().await;
    let run = complete_run(&app.store).await;
    assert_eq!(app.ids("/pipeline_runs").await, [run]);

    proxy.cut();
    let started = std::time::Instant::now();
    let response = app.get("/pipeline_runs").await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error_type"], "database_unavailable", "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("unreachable"),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "503 within dashboard.db_timeout_ms, not a hang: {:?}",
        started.elapsed()
    );
    for path in [
        format!("/pipeline_runs/{run}"),
        format!("/pipeline_runs/{run}/stages/1/log"),
    ] {
        let (status, body) = app.get_json(&path).await;
        assert_eq!(status, 503, "{path}: {body}");
    }
    let (status, body) = app.get_json("/ready").await;
    assert_eq!(status, 503, "{body}");
    let (status, body) = app.get_json("/health").await;
    assert_eq!(
        (status, body["database"].as_str()),
        (200, Some("down")),
        "{body}"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("doodle_pipeline_database_up 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"api_errors_total{endpoint="/pipeline_runs",error_type="database_unavailable"} 1"#
        ),
        "{metrics}"
    );

    // A run finished while the dashboard could not see the database.
    let later = failed_run(&app.store).await;
    proxy.restore();
    eventually(
        Duration::from_secs(10),
        "the list answers again",
        || async { list_status(&app).await == 200 },
    )
    .await;
    assert_eq!(app.ids("/pipeline_runs").await, [later, run]);
    let (status, _) = app.get_json("/ready").await;
    assert_eq!(status, 200);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("doodle_pipeline_database_up 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_app_starts_without_its_database_and_serves_once_it_comes() {
    let db = TestDb::new(Kind::Postgres).await;
    let proxy = TcpProxy::start(server_addr(&db.url())).await;
    proxy.cut();
    let url = proxy.url_for(&db.url());
    let log_dir = tempfile::tempdir().unwrap();
    let base = start(&url, log_dir.path(), test_settings()).await;
    let client = reqwest::Client::new();

    let page = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(
        page.status(),
        200,
        "the page is served without the database"
    );
    let response = client
        .get(format!("{base}/pipeline_runs"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);

    proxy.restore();
    eventually(Duration::from_secs(10), "the list answers", || async {
        client
            .get(format!("{base}/pipeline_runs"))
            .send()
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;
    // The dashboard migrated the database on its first query that reached it.
    let body: Value = client
        .get(format!("{base}/pipeline_runs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body, serde_json::json!([]));
}

#[tokio::test]
async fn a_database_that_drops_connections_again_and_again_is_recovered_each_time() {
    let (app, proxy) = app_behind_proxy().await;
    waiting_run(&app.store).await;
    for round in 0..3 {
        assert_eq!(list_status(&app).await, 200, "round {round}");
        proxy.cut();
        assert_eq!(list_status(&app).await, 503, "round {round}");
        proxy.restore();
        eventually(Duration::from_secs(10), "back", || async {
            list_status(&app).await == 200
        })
        .await;
    }
}
