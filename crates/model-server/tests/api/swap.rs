use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use doodle_model_server::test_support;
use doodle_registry::LocalRegistry;
use serde_json::json;

use crate::helpers::{b64, client, drawings, get, metrics, post_json};
use crate::scoring::metric_value;

#[tokio::test]
async fn a_hot_swap_under_concurrent_load_loses_no_request() {
    let server = test_support::spawn().await;
    let stop = Arc::new(AtomicBool::new(false));
    let body = json!({"inputs": b64(&drawings(1)[0])});
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (url, body, stop) = (server.url.clone(), body.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let r = client().post(&url).json(&body).send().await.unwrap();
                assert_eq!(r.status(), 200, "a request failed during the swap");
                seen.push(r.headers()["x-model-version"].to_str().unwrap().to_owned());
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (dir, name, cats) = (
        server.registry_dir.clone(),
        server.model_name.clone(),
        server.categories.clone(),
    );
    let v2 =
        tokio::task::spawn_blocking(move || test_support::deploy_untrained(&dir, &name, &cats, 2))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(v2, 2);
    let mut swapped = false;
    for _ in 0..100 {
        if post_json(&server, &body).await.headers()["x-model-version"] == "2" {
            swapped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let mut all = Vec::new();
    for c in clients {
        all.extend(c.await.unwrap());
    }
    assert!(swapped, "version 2 was never served");
    assert!(
        all.iter().any(|v| v == "1") && all.iter().any(|v| v == "2"),
        "{all:?}"
    );
    // Once 2 is served, 1 never comes back.
    let first_two = all.iter().position(|v| v == "2").unwrap();
    let model: serde_json::Value = get(&server, "/model").await.json().await.unwrap();
    assert_eq!(model["version"], "2");
    assert!(first_two > 0);
    let text = metrics(&server).await;
    assert!(
        text.contains("doodle_model_info{name=\"doodle-classifier\",version=\"2\"} 1"),
        "{text}"
    );
    assert!(
        !text.contains("version=\"1\"} 1"),
        "the old version's info is removed: {text}"
    );
}

#[tokio::test]
async fn a_version_that_fails_to_load_is_counted_and_the_old_one_keeps_serving() {
    let server = test_support::spawn().await;
    let broken = tempfile::tempdir().unwrap();
    std::fs::write(broken.path().join("model.safetensors"), b"not weights").unwrap();
    std::fs::write(broken.path().join("metadata.json"), b"{\"nonsense\": true}").unwrap();
    let registry = LocalRegistry::new(&server.registry_dir, &server.model_name).unwrap();
    let v = registry.register(broken.path(), BTreeMap::new()).unwrap();
    registry.set_alias("champion", v.version).unwrap();

    let mut failures = 0.0;
    for _ in 0..100 {
        failures = metric_value(&metrics(&server).await, "doodle_model_load_failures_total");
        if failures > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(failures, 1.0);
    let r = post_json(&server, &json!({"inputs": b64(&[0u8; 784])})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-model-version"], "1");
    assert_eq!(get(&server, "/health").await.status(), 200);
    // It is not retried (and re-logged) on every poll.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        metric_value(&metrics(&server).await, "doodle_model_load_failures_total"),
        1.0
    );
}
