use doodle_model_server::test_support::{self, TEST_CATEGORIES};
use serde_json::{Value, json};

use crate::helpers::{b64, client, drawings, get, metrics, post_json};

fn png_b64(pixels: &[u8]) -> String {
    let pixels: [u8; 784] = pixels.try_into().unwrap();
    b64(&doodle_core::image::png_from_pixels(&pixels))
}

#[tokio::test]
async fn every_input_shape_and_encoding_gives_the_same_prediction() {
    let server = test_support::spawn().await;
    let d = &drawings(1)[0];
    let grid: Vec<&[u8]> = d.chunks(28).collect();
    let bodies = [
        json!({"inputs": b64(d)}),
        json!({"inputs": png_b64(d)}),
        json!({"inputs": d}),
        json!({"inputs": grid}),
        json!({"instances": [{"image": b64(d)}]}),
        json!({"dataframe_split": {"columns": ["image"], "data": [[png_b64(d)]]}}),
        json!({"dataframe_records": [{"image": d}]}),
    ];
    let mut answers = Vec::new();
    for body in &bodies {
        let response = post_json(&server, body).await;
        assert_eq!(response.status(), 200, "{body}");
        assert_eq!(response.headers()["x-model-version"], "1");
        let value: Value = response.json().await.unwrap();
        answers.push(value);
    }
    for (answer, body) in answers.iter().zip(&bodies) {
        assert_eq!(answer, &answers[0], "{body}");
    }
    let prediction = &answers[0]["predictions"][0];
    let label = prediction["label"].as_str().unwrap();
    assert!(TEST_CATEGORIES.contains(&label));
    let top_k = prediction["top_k"].as_array().unwrap();
    assert_eq!(top_k.len(), 3);
    assert_eq!(top_k[0]["label"], prediction["label"]);
    let total: f64 = top_k.iter().map(|g| g["score"].as_f64().unwrap()).sum();
    assert!(
        (total - 1.0).abs() < 1e-4,
        "3 of 3 categories sum to 1: {total}"
    );
    assert!(
        top_k
            .windows(2)
            .all(|w| w[0]["score"].as_f64() >= w[1]["score"].as_f64())
    );
}

#[tokio::test]
async fn a_batch_answers_one_prediction_per_input_in_order() {
    let server = test_support::spawn().await;
    let ds = drawings(5);
    let mut singles = Vec::new();
    for d in &ds {
        let v: Value = post_json(&server, &json!({"inputs": b64(d)}))
            .await
            .json()
            .await
            .unwrap();
        singles.push(v["predictions"][0].clone());
    }
    let body =
        json!({"inputs": ds.iter().map(|d| b64(d)).collect::<Vec<_>>(), "params": {"top_k": 2}});
    let response = post_json(&server, &body).await;
    assert_eq!(response.status(), 200);
    let v: Value = response.json().await.unwrap();
    let predictions = v["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 5);
    for (batched, single) in predictions.iter().zip(&singles) {
        assert_eq!(batched["label"], single["label"]);
        let (a, b) = (
            batched["score"].as_f64().unwrap(),
            single["score"].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 1e-4, "batched {a} vs single {b}");
        assert_eq!(batched["top_k"].as_array().unwrap().len(), 2);
    }
}

#[tokio::test]
async fn health_version_model_and_metrics_describe_the_served_model() {
    let server = test_support::spawn().await;
    let ping = get(&server, "/ping").await;
    assert_eq!(ping.status(), 200);
    assert_eq!(ping.text().await.unwrap(), "\n");
    assert_eq!(get(&server, "/health").await.status(), 200);
    let version = get(&server, "/version").await.text().await.unwrap();
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    let model: Value = get(&server, "/model").await.json().await.unwrap();
    assert_eq!(model["version"], "1");
    assert_eq!(model["name"], "doodle-classifier");
    assert_eq!(model["categories"], json!(TEST_CATEGORIES));
    assert_eq!(model["architecture"], "resnet18");

    post_json(&server, &json!({"inputs": b64(&drawings(1)[0])})).await;
    let text = metrics(&server).await;
    for name in [
        "doodle_http_requests_total{method=\"POST\",route=\"/invocations/\",status=\"200\"} 1",
        "doodle_inference_batch_size_count",
        "doodle_inference_queue_duration_seconds_count",
        "doodle_inference_compute_duration_seconds_count",
        "doodle_inference_queue_size 0",
        "doodle_model_info{name=\"doodle-classifier\",version=\"1\"} 1",
        "doodle_predictions_total{label=",
        "doodle_prediction_confidence_count 1",
    ] {
        assert!(text.contains(name), "missing {name} in\n{text}");
    }
}

#[tokio::test]
async fn requests_from_many_clients_are_batched_together() {
    let server = test_support::spawn_with(|s| s.model_server.max_wait_ms = 20, true).await;
    let d = b64(&drawings(1)[0]);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let url = server.url.clone();
        let body = json!({"inputs": d.clone()});
        tasks.push(tokio::spawn(async move {
            crate::helpers::client()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let text = metrics(&server).await;
    let count = metric_value(&text, "doodle_inference_batch_size_count");
    let sum = metric_value(&text, "doodle_inference_batch_size_sum");
    assert_eq!(sum, 16.0, "{text}");
    assert!(
        count < 16.0,
        "16 concurrent requests took {count} forward passes: not batched"
    );
}

pub fn metric_value(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[tokio::test]
async fn the_batchnorm_folded_network_answers_what_the_checkpoint_does() {
    // Same seed, same weights: one server folds BatchNorm (the default) and, with two libtorch
    // threads, splits each batch into two single-threaded slices; the other does neither.
    let folded = test_support::spawn_with(|s| s.model.threads = 2, true).await;
    let plain = test_support::spawn_with(|s| s.model_server.fold_batchnorm = false, true).await;
    let shape = |model: Value| {
        (
            model["forward_slices"].as_u64().unwrap(),
            model["inference_workers"].as_u64().unwrap(),
        )
    };
    assert_eq!(
        shape(get(&folded, "/model").await.json().await.unwrap()),
        (2, 2)
    );
    assert_eq!(
        shape(get(&plain, "/model").await.json().await.unwrap()),
        (1, 1)
    );
    // Five drawings: slices of three and two.
    let body = json!({
        "inputs": drawings(5).iter().map(|d| b64(d)).collect::<Vec<_>>(),
        "params": {"top_k": 3}
    });
    let a: Value = post_json(&folded, &body).await.json().await.unwrap();
    let b: Value = post_json(&plain, &body).await.json().await.unwrap();
    let (a, b) = (
        a["predictions"].as_array().unwrap(),
        b["predictions"].as_array().unwrap(),
    );
    assert_eq!(a.len(), 5);
    for (x, y) in a.iter().zip(b) {
        for (gx, gy) in x["top_k"]
            .as_array()
            .unwrap()
            .iter()
            .zip(y["top_k"].as_array().unwrap())
        {
            assert_eq!(gx["label"], gy["label"]);
            let (sx, sy) = (gx["score"].as_f64().unwrap(), gy["score"].as_f64().unwrap());
            assert!((sx - sy).abs() < 1e-4, "folded {sx} vs plain {sy}");
        }
    }
    // Concurrent single drawings, taken by both workers side by side: each gets its own answer.
    let one = |d: &[u8]| json!({"inputs": b64(d), "params": {"top_k": 1}});
    let requests: Vec<_> = drawings(12)
        .iter()
        .map(|d| tokio::spawn(client().post(&folded.url).json(&one(d)).send()))
        .collect();
    for (d, r) in drawings(12).iter().zip(requests) {
        let got: Value = r.await.unwrap().unwrap().json().await.unwrap();
        let want: Value = post_json(&plain, &one(d)).await.json().await.unwrap();
        let (g, w) = (
            &got["predictions"][0]["top_k"][0],
            &want["predictions"][0]["top_k"][0],
        );
        assert_eq!(g["label"], w["label"]);
        let (sg, sw) = (g["score"].as_f64().unwrap(), w["score"].as_f64().unwrap());
        assert!((sg - sw).abs() < 1e-4, "worker answer {sg} vs plain {sw}");
    }
}
