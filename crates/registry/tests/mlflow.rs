//! The MLflow client and registry against a real `mlflow server` (pinned in .venv by
//! scripts/setup-mlflow.sh), started on loopback with a SQLite store and the artifact proxy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use doodle_core::Settings;
use doodle_core::config::RegistryKind;
use doodle_registry::mlflow::{HISTORY_TAG_PREFIX, Metric, Param, Tag};
use doodle_registry::test_support::start_mlflow;
use doodle_registry::{MlflowClient, MlflowRegistry, Registry, RegistryError, RunRecord};

fn checkpoint(dir: &Path, marker: &str) -> PathBuf {
    let ck = dir.join(format!("ck-{marker}"));
    std::fs::create_dir_all(&ck).unwrap();
    std::fs::write(
        ck.join("model.safetensors"),
        format!("weights {marker}").repeat(1000),
    )
    .unwrap();
    std::fs::write(
        ck.join("metadata.json"),
        format!("{{\"marker\": \"{marker}\"}}"),
    )
    .unwrap();
    ck
}

#[tokio::test]
async fn client_and_registry_round_trip_against_a_real_mlflow_server() {
    let server = start_mlflow().await;
    let client = MlflowClient::new(&server.url).unwrap();

    // Experiments: created once, found after.
    assert!(client.experiment_by_name("doodle").await.unwrap().is_none());
    let id = client.experiment_id("doodle").await.unwrap();
    assert_eq!(client.experiment_id("doodle").await.unwrap(), id);

    // Runs: params, metrics, tags, status.
    let run = client.create_run(&id, "retrain-test", &[]).await.unwrap();
    let run_id = run.info.run_id.clone();
    assert_eq!(run.info.status, "RUNNING");
    client.log_param(&run_id, "lr", "0.1").await.unwrap();
    client
        .log_metric(&run_id, "val_accuracy", 0.91, 3)
        .await
        .unwrap();
    client
        .log_batch(
            &run_id,
            &[Param {
                key: "epochs".into(),
                value: "16".into(),
            }],
            &[Metric {
                key: "loss".into(),
                value: 0.25,
                timestamp: 1,
                step: 1,
            }],
            &[Tag {
                key: "dvc_data_rev".into(),
                value: "abc123".into(),
            }],
        )
        .await
        .unwrap();
    client
        .set_run_tag(&run_id, "git_commit", "deadbeef")
        .await
        .unwrap();
    // Params are immutable: a different value is MLflow's 400.
    let err = client.log_param(&run_id, "lr", "0.2").await.unwrap_err();
    assert_eq!(err.error_code(), Some("INVALID_PARAMETER_VALUE"), "{err}");
    client.finish_run(&run_id, "FINISHED").await.unwrap();
    let got = client.get_run(&run_id).await.unwrap();
    assert_eq!(got.info.status, "FINISHED");
    let params: BTreeMap<_, _> = got
        .data
        .params
        .iter()
        .map(|p| (p.key.as_str(), p.value.as_str()))
        .collect();
    assert_eq!(params, BTreeMap::from([("epochs", "16"), ("lr", "0.1")]));
    let acc = got
        .data
        .metrics
        .iter()
        .find(|m| m.key == "val_accuracy")
        .unwrap();
    assert_eq!((acc.value, acc.step), (0.91, 3));
    assert!(
        got.data
            .tags
            .iter()
            .any(|t| t.key == "dvc_data_rev" && t.value == "abc123")
    );

    // Artifacts through the proxy.
    let bytes: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    client
        .upload_artifact(&got.info.artifact_uri, "model/blob.bin", bytes.clone())
        .await
        .unwrap();
    assert_eq!(
        client
            .download_artifact(&got.info.artifact_uri, "model/blob.bin")
            .await
            .unwrap(),
        bytes
    );
    let listed = client
        .list_artifacts(&got.info.artifact_uri, "model")
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].path, "blob.bin");
    assert_eq!(listed[0].file_size, Some(100_000));
    assert!(
        client
            .upload_artifact(&got.info.artifact_uri, "../escape", vec![1])
            .await
            .is_err()
    );

    // The registry: checkpoints as versions, the alias as the deployed one.
    let tmp = tempfile::tempdir().unwrap();
    let registry = MlflowRegistry {
        client: client.clone(),
        model_name: "doodle-classifier".into(),
        experiment: "doodle".into(),
        cache_dir: tmp.path().join("cache"),
    };
    assert!(registry.deployed("champion").await.unwrap().is_none());
    let record = RunRecord {
        run_name: "base".into(),
        params: BTreeMap::from([("architecture".into(), "resnet50".into())]),
        metrics: BTreeMap::from([("val_accuracy".into(), 0.9)]),
        tags: BTreeMap::new(),
    };
    let v1 = registry
        .register(&checkpoint(tmp.path(), "a"), &record, Some("champion"))
        .await
        .unwrap();
    assert_eq!(v1.version, "1");
    let v2 = registry
        .register(&checkpoint(tmp.path(), "b"), &record, None)
        .await
        .unwrap();
    assert_eq!(v2.version, "2");

    let deployed = registry.deployed("champion").await.unwrap().unwrap();
    assert_eq!(deployed.version, "1");
    assert_eq!(
        std::fs::read(deployed.dir.join("model.safetensors")).unwrap(),
        std::fs::read(tmp.path().join("ck-a/model.safetensors")).unwrap()
    );
    let v1_info = client
        .model_version("doodle-classifier", "1")
        .await
        .unwrap();
    assert_eq!(v1_info.tag("deployment"), Some("production"));
    assert!(
        v1_info.source.starts_with("mlflow-artifacts:/"),
        "{}",
        v1_info.source
    );

    client
        .set_alias("doodle-classifier", "champion", "2")
        .await
        .unwrap();
    let deployed = registry.deployed("champion").await.unwrap().unwrap();
    assert_eq!(deployed.version, "2");
    assert_eq!(
        std::fs::read_to_string(deployed.dir.join("metadata.json")).unwrap(),
        "{\"marker\": \"b\"}"
    );
    let model = client.registered_model("doodle-classifier").await.unwrap();
    assert!(
        model
            .aliases
            .iter()
            .any(|a| a.alias == "champion" && a.version == "2")
    );
    let versions = client
        .search_model_versions("doodle-classifier")
        .await
        .unwrap();
    assert_eq!(
        versions
            .iter()
            .map(|v| v.version.as_str())
            .collect::<Vec<_>>(),
        ["2", "1"]
    );
    // The run behind each version recorded its params and metrics.
    let run = client.get_run(&versions[0].run_id).await.unwrap();
    assert_eq!(run.info.status, "FINISHED");
    assert!(
        run.data
            .metrics
            .iter()
            .any(|m| m.key == "val_accuracy" && m.value == 0.9)
    );

    // Unknown names are clear errors, not panics.
    let err = client
        .model_version("doodle-classifier", "99")
        .await
        .unwrap_err();
    assert_eq!(err.error_code(), Some("RESOURCE_DOES_NOT_EXIST"), "{err}");
    assert!(
        client
            .version_by_alias("nope", "champion")
            .await
            .unwrap()
            .is_none()
    );

    // The CLI speaks to the same server when configured for MLflow.
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_doodle-registry"))
            .args(args)
            .env_remove("DOODLE_CONFIG")
            .env("DOODLE_REGISTRY__KIND", "mlflow")
            .env("DOODLE_REGISTRY__MLFLOW_TRACKING_URI", &server.url)
            .env("DOODLE_REGISTRY__LOCAL_DIR", tmp.path().join("local"))
            .current_dir(tmp.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        )
    };
    assert_eq!(cli(&["deployed"]), (Some(0), "2".to_owned()));
    assert_eq!(cli(&["deploy", "1"]).0, Some(0));
    assert_eq!(cli(&["deployed"]), (Some(0), "1".to_owned()));
    let (code, out) = cli(&[
        "register",
        &tmp.path().join("ck-a").display().to_string(),
        "--deploy",
    ]);
    assert_eq!(
        (code, out.as_str()),
        (
            Some(0),
            "registered version 3 and deployed it as \"champion\""
        )
    );
    assert!(
        cli(&["list"])
            .1
            .lines()
            .next()
            .unwrap()
            .ends_with("<- champion")
    );
}

/// `[registry]` for an MLflow server, with downloads cached under `local_dir`.
fn mlflow_settings(url: &str, local_dir: &Path) -> Settings {
    let mut settings = Settings::default();
    settings.registry.kind = RegistryKind::Mlflow;
    settings.registry.mlflow_tracking_uri = url.to_owned();
    settings.registry.local_dir = local_dir.to_owned();
    settings
}

#[tokio::test]
async fn alias_history_and_rollback_live_on_a_real_mlflow_server() {
    let server = start_mlflow().await;
    let tmp = tempfile::tempdir().unwrap();
    let registry =
        Registry::from_settings(&mlflow_settings(&server.url, &tmp.path().join("a"))).unwrap();
    let client = MlflowClient::new(&server.url).unwrap();
    let name = "doodle-classifier";
    assert_eq!(registry.alias_history("champion").await.unwrap(), []);

    let record = RunRecord {
        run_name: "retrain".into(),
        tags: BTreeMap::from([("data_commit".into(), "abc123".into())]),
        ..RunRecord::default()
    };
    for marker in ["a", "b", "c"] {
        registry
            .register(&checkpoint(tmp.path(), marker), &record)
            .await
            .unwrap();
    }
    assert_eq!(
        client
            .version_by_alias(name, "champion")
            .await
            .unwrap()
            .map(|v| v.version),
        None
    );
    let v2 = client.model_version(name, "2").await.unwrap();
    assert_eq!(
        v2.tag("data_commit"),
        Some("abc123"),
        "record tags are version tags"
    );
    assert_eq!(v2.tag("deployment"), None, "registering does not deploy");

    for (v, why) in [
        ("1", "first"),
        ("2", "gate passed"),
        ("3", "gate passed again"),
    ] {
        let event = registry
            .move_alias("champion", v, "pipeline run 7", why)
            .await
            .unwrap();
        assert_eq!(event.version, v);
        let alias = client
            .version_by_alias(name, "champion")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(alias.version, v);
        assert_eq!(alias.tag("deployment"), Some("production"));
    }

    // Another client (another process, a fresh cache) sees the same history.
    let other =
        Registry::from_settings(&mlflow_settings(&server.url, &tmp.path().join("b"))).unwrap();
    let history = other.alias_history("champion").await.unwrap();
    assert_eq!(history, registry.alias_history("champion").await.unwrap());
    let rows: Vec<(&str, Option<&str>, &str)> = history
        .iter()
        .map(|e| (e.version.as_str(), e.previous.as_deref(), e.reason.as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            ("1", None, "first"),
            ("2", Some("1"), "gate passed"),
            ("3", Some("2"), "gate passed again")
        ]
    );
    assert!(history.iter().all(|e| e.by == "pipeline run 7"));

    // Rollback walks back: 3 -> 2 -> 1, then there is nowhere left to go.
    let back = other
        .rollback("champion", "doodle-registry rollback")
        .await
        .unwrap();
    assert_eq!(
        (back.version.as_str(), back.previous.as_deref()),
        ("2", Some("3"))
    );
    assert_eq!(back.reason, "rollback from version 3");
    let deployed = registry.deployed("champion").await.unwrap().unwrap();
    assert_eq!(deployed.version, "2");
    assert_eq!(
        std::fs::read_to_string(deployed.dir.join("metadata.json")).unwrap(),
        "{\"marker\": \"b\"}"
    );
    assert_eq!(
        registry.rollback("champion", "me").await.unwrap().version,
        "1"
    );
    let err = registry.rollback("champion", "me").await.unwrap_err();
    assert!(
        matches!(&err, RegistryError::Invalid(m) if m.contains("no earlier version to roll back to")),
        "{err}"
    );
    assert_eq!(registry.alias_history("champion").await.unwrap().len(), 5);
    assert_eq!(
        client
            .version_by_alias(name, "champion")
            .await
            .unwrap()
            .unwrap()
            .version,
        "1"
    );

    // Any version's files, version tags, and unknown versions.
    let dir = registry.version_dir("3").await.unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("metadata.json")).unwrap(),
        "{\"marker\": \"c\"}"
    );
    registry
        .set_version_tag("3", "gate", "refused")
        .await
        .unwrap();
    assert_eq!(
        client.model_version(name, "3").await.unwrap().tag("gate"),
        Some("refused")
    );
    assert!(matches!(
        registry.move_alias("champion", "99", "me", "").await,
        Err(RegistryError::NoSuchVersion { version: 99, .. })
    ));
    assert!(matches!(
        registry.set_version_tag("99", "k", "v").await,
        Err(RegistryError::NoSuchVersion { version: 99, .. })
    ));

    // Concurrent movers both keep their event; a long history stays whole and in order.
    let (a, b) = tokio::join!(
        registry.move_alias("champion", "2", "mover a", "race"),
        other.move_alias("champion", "3", "mover b", "race"),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let history = registry.alias_history("champion").await.unwrap();
    assert_eq!(history.len(), 7);
    assert!(history.contains(&a) && history.contains(&b));
    for i in 0..20u32 {
        let v = ["1", "2", "3"][i as usize % 3];
        registry
            .move_alias("champion", v, "loop", &i.to_string())
            .await
            .unwrap();
    }
    // Hundreds of earlier moves (written straight as tags: the API moves take ~0.25 s each
    // here) keep their order, and the next move still lands last.
    let seeded = 27;
    for seq in 1..=300u32 {
        let event = doodle_registry::AliasEvent::now(
            "champion",
            "1".into(),
            None,
            "seed",
            &seq.to_string(),
        );
        let key = format!("{HISTORY_TAG_PREFIX}champion.{:08}.seed", 1000 + seq);
        client
            .set_registered_model_tag(name, &key, &serde_json::to_string(&event).unwrap())
            .await
            .unwrap();
    }
    registry
        .move_alias("champion", "3", "loop", "after the seeds")
        .await
        .unwrap();
    let history = registry.alias_history("champion").await.unwrap();
    assert_eq!(history.len(), seeded + 300 + 1);
    let reasons: Vec<String> = history[7..].iter().map(|e| e.reason.clone()).collect();
    let expected: Vec<String> = (0..20)
        .chain(1..=300)
        .map(|i| i.to_string())
        .chain(["after the seeds".to_owned()])
        .collect();
    assert_eq!(reasons, expected);

    // The CLI: history and rollback against the same server.
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_doodle-registry"))
            .args(args)
            .env_remove("DOODLE_CONFIG")
            .env("DOODLE_REGISTRY__KIND", "mlflow")
            .env("DOODLE_REGISTRY__MLFLOW_TRACKING_URI", &server.url)
            .env("DOODLE_REGISTRY__LOCAL_DIR", tmp.path().join("cli"))
            .current_dir(tmp.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        )
    };
    let (code, out) = cli(&["history"]);
    assert_eq!(code, Some(0));
    assert_eq!(out.lines().count(), 328);
    assert!(
        out.lines()
            .last()
            .unwrap()
            .ends_with("\tloop\tafter the seeds"),
        "{out}"
    );
    // Back from 3 to the newest earlier champion: the seeds' version 1.
    assert_eq!(cli(&["rollback"]), (Some(0), "champion: 3 -> 1".to_owned()));
    assert_eq!(cli(&["deployed"]), (Some(0), "1".to_owned()));
}
