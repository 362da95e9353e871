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
    hot_swap_under_load(1).await;
}

#[tokio::test]
async fn a_hot_swap_reaches_every_inference_worker() {
    // Two libtorch threads: two single-threaded workers, each with its own handle to swap.
    hot_swap_under_load(2).await;
}

async fn hot_swap_under_load(threads: usize) {
    let server = test_support::spawn_with(|s| s.model.threads = threads, true).await;
    let model: serde_json::Value = get(&server, "/model").await.json().await.unwrap();
    assert_eq!(model["inference_workers"], threads);
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
    // Every worker took version 2 (a pass already running when the swap arrived may have
    // ended on version 1): concurrent requests, which keep every worker busy, all get 2.
    for _ in 0..3 {
        let requests: Vec<_> = (0..8)
            .map(|_| tokio::spawn(client().post(&server.url).json(&body).send()))
            .collect();
        for r in requests {
            let r = r.await.unwrap().unwrap();
            assert_eq!(
                r.headers()["x-model-version"],
                "2",
                "a worker still serves 1"
            );
        }
    }
    let model: serde_json::Value = get(&server, "/model").await.json().await.unwrap();
    assert_eq!(model["version"], "2");
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

/// A checkpoint validated with mirrored TTA is served with it by default, and from the drawing
/// alone with `mirror_tta = false`.
#[test]
fn mirror_tta_follows_the_checkpoint_unless_turned_off() {
    use doodle_model_server::swap::{ServeOptions, load};
    let dir = tempfile::tempdir().unwrap();
    let cats: Vec<String> = ["a", "b", "c"].iter().map(|s| (*s).to_owned()).collect();
    doodle_model::save_untrained(
        dir.path(),
        doodle_core::config::Architecture::Resnet18,
        &cats,
        4,
    )
    .unwrap();
    let meta = dir.path().join(doodle_model::checkpoint::METADATA_FILE);
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta).unwrap()).unwrap();
    v["tta_hflip"] = true.into();
    std::fs::write(&meta, v.to_string()).unwrap();
    let deployed = doodle_registry::Deployed {
        version: "1".into(),
        dir: dir.path().to_path_buf(),
    };
    let serve = |mirror_tta| {
        load(
            "m",
            &deployed,
            ServeOptions {
                fold_batchnorm: false,
                workers: 1,
                mirror_tta,
            },
        )
        .unwrap()
    };
    let (with, without) = (serve(true), serve(false));
    assert!(with.info.mirror_tta);
    assert!(!without.info.mirror_tta);

    let drawing = drawings(1).remove(0);
    let mirrored: Vec<u8> = drawing
        .chunks(28)
        .flat_map(|row| row.iter().rev().copied())
        .collect();
    let p = with.classifier.predict_proba(&drawing).unwrap();
    let alone = without.classifier.predict_proba(&drawing).unwrap();
    let mirror = without.classifier.predict_proba(&mirrored).unwrap();
    let mut differs = false;
    for i in 0..cats.len() {
        let mean = (alone[i] + mirror[i]) / 2.0;
        assert!(
            (p[i] - mean).abs() < 1e-5,
            "{p:?} vs mean of {alone:?} and {mirror:?}"
        );
        differs |= (p[i] - alone[i]).abs() > 1e-6;
    }
    assert!(
        differs,
        "the drawing and its mirror got the same answer: {alone:?} {mirror:?}"
    );
}
