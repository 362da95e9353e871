use std::time::Duration;

use doodle_model_server::test_support::{self, TestModelServer};
use serde_json::{Value, json};

use crate::helpers::{b64, client, drawings, get, metrics, post_json, wait_health};
use crate::scoring::metric_value;

async fn error(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let v: Value = response.json().await.unwrap();
    (
        status,
        v["error_code"].as_str().unwrap().to_owned(),
        v["message"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn bad_requests_get_mlflow_errors_naming_what_and_where() {
    let server = test_support::spawn().await;
    let ok = b64(&[0u8; 784]);
    let (status, code, message) =
        error(post_json(&server, &json!({"inputs": [ok, ok, ok, b64(&[0u8; 783])]})).await).await;
    assert_eq!((status, code.as_str()), (400, "BAD_REQUEST"));
    assert!(
        message.contains("inputs[3]: expected 784 bytes (28x28), got 783"),
        "{message}"
    );

    let (status, code, _) = error(post_json(&server, &json!({"foo": 1})).await).await;
    assert_eq!((status, code.as_str()), (400, "BAD_REQUEST"));

    let not_json = client()
        .post(&server.url)
        .header("content-type", "application/json")
        .body("not-json")
        .send()
        .await
        .unwrap();
    let (status, _, message) = error(not_json).await;
    assert_eq!(status, 400);
    assert!(message.contains("valid JSON"), "{message}");

    for content_type in [
        Some("text/plain"),
        Some("application/json; format=pandas-split"),
        None,
    ] {
        let mut request = client()
            .post(&server.url)
            .body(json!({"inputs": ok}).to_string());
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let (status, code, _) = error(request.send().await.unwrap()).await;
        assert_eq!(
            (status, code.as_str()),
            (415, "BAD_REQUEST"),
            "{content_type:?}"
        );
    }

    let unknown = get(&server, "/nope").await;
    assert_eq!(unknown.status(), 404);
    let text = metrics(&server).await;
    assert!(
        text.contains("doodle_inference_rejected_total{reason=\"bad_request\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("doodle_inference_rejected_total{reason=\"unsupported_media_type\"} 3"),
        "{text}"
    );
}

#[tokio::test]
async fn a_body_past_the_limit_gets_413() {
    let server = test_support::spawn_with(|s| s.model_server.body_limit_bytes = 4096, true).await;
    let ds = drawings(8);
    let body = json!({"inputs": ds.iter().map(|d| b64(d)).collect::<Vec<_>>()});
    let (status, code, message) = error(post_json(&server, &body).await).await;
    assert_eq!((status, code.as_str()), (413, "BAD_REQUEST"));
    assert!(message.contains("4096"), "{message}");
}

#[tokio::test]
async fn without_a_model_everything_is_503_until_one_is_deployed() {
    let server = test_support::spawn_with(|_| {}, false).await;
    let (status, code, _) = error(get(&server, "/health").await).await;
    assert_eq!((status, code.as_str()), (503, "TEMPORARILY_UNAVAILABLE"));
    assert_eq!(get(&server, "/ping").await.status(), 503);
    let (status, code, _) =
        error(post_json(&server, &json!({"inputs": b64(&[0u8; 784])})).await).await;
    assert_eq!((status, code.as_str()), (503, "TEMPORARILY_UNAVAILABLE"));

    let (dir, name, cats) = (
        server.registry_dir.clone(),
        server.model_name.clone(),
        server.categories.clone(),
    );
    tokio::task::spawn_blocking(move || test_support::deploy_untrained(&dir, &name, &cats, 3))
        .await
        .unwrap()
        .unwrap();
    wait_health(&server, 200).await;
    assert_eq!(
        post_json(&server, &json!({"inputs": b64(&[0u8; 784])}))
            .await
            .status(),
        200
    );
}

/// A body of `n` drawings that keeps the single inference thread busy for a while.
fn heavy_body(n: usize) -> Value {
    let ds = drawings(n);
    json!({"inputs": ds.iter().map(|d| b64(d)).collect::<Vec<_>>()})
}

/// Poll `/metrics` until `done` holds for its text.
async fn wait_for_metrics(server: &TestModelServer, what: &str, done: impl Fn(&str) -> bool) {
    for _ in 0..400 {
        if done(&metrics(server).await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Send 256 drawings and return once the inference thread has taken them off the queue:
/// it is then busy with one long forward pass.
async fn occupy_worker(server: &TestModelServer) -> tokio::task::JoinHandle<reqwest::StatusCode> {
    let (url, heavy) = (server.url.clone(), heavy_body(256));
    let busy = tokio::spawn(async move {
        client()
            .post(url)
            .json(&heavy)
            .send()
            .await
            .unwrap()
            .status()
    });
    wait_for_metrics(server, "the heavy job to leave the queue", |text| {
        metric_value(text, "doodle_inference_queue_duration_seconds_count") >= 1.0
    })
    .await;
    busy
}

#[tokio::test]
async fn a_full_queue_answers_429_and_loses_nothing_else() {
    let server = test_support::spawn_with(|s| s.model_server.queue_capacity = 1, true).await;
    // Keep the single inference thread busy, then arrive all at once.
    let busy = occupy_worker(&server).await;
    let light = json!({"inputs": b64(&drawings(1)[0])});
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (url, body) = (server.url.clone(), light.clone());
        tasks.push(tokio::spawn(async move {
            let r = client().post(url).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            (status, v)
        }));
    }
    let mut full = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            200 => assert!(body["predictions"].is_array()),
            429 => {
                assert_eq!(body["error_code"], "RESOURCE_EXHAUSTED");
                full += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(busy.await.unwrap(), 200);
    assert!(
        full > 0,
        "16 concurrent requests into a queue of 1 should overflow"
    );
    let text = metrics(&server).await;
    assert_eq!(
        metric_value(
            &text,
            "doodle_inference_rejected_total{reason=\"queue_full\"}"
        ),
        f64::from(full)
    );
}

#[tokio::test]
async fn a_request_past_its_deadline_gets_504() {
    let server = test_support::spawn_with(|s| s.model_server.deadline_ms = 5, true).await;
    let (status, code, message) = error(post_json(&server, &heavy_body(256)).await).await;
    assert_eq!((status, code.as_str()), (504, "DEADLINE_EXCEEDED"));
    assert!(message.contains("5 ms"), "{message}");
    // The forward pass goes on without its client; let it end (or be dropped as expired)
    // before the process does: libtorch must not be torn down under a running forward pass.
    wait_for_metrics(&server, "the abandoned job to finish", |text| {
        metric_value(text, "doodle_inference_compute_duration_seconds_count") >= 1.0
            || text.contains("doodle_inference_rejected_total{reason=\"expired\"}")
    })
    .await;
}

#[tokio::test]
async fn a_client_that_goes_away_is_dropped_before_compute() {
    let server = test_support::spawn_with(|s| s.model_server.max_batch_size = 256, true).await;
    // Occupy the worker, then send requests whose clients give up while they wait.
    let busy = occupy_worker(&server).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(5))
        .build()
        .unwrap();
    for _ in 0..3 {
        let r = impatient
            .post(&server.url)
            .json(&json!({"inputs": b64(&[0u8; 784])}))
            .send()
            .await;
        assert!(r.is_err(), "the impatient client should time out");
    }
    assert_eq!(busy.await.unwrap(), 200);
    // Let the worker reach the abandoned jobs.
    post_json(&server, &json!({"inputs": b64(&[0u8; 784])})).await;
    let text = metrics(&server).await;
    let gone = metric_value(
        &text,
        "doodle_inference_rejected_total{reason=\"client_gone\"}",
    );
    assert!(gone >= 1.0, "{text}");
}
