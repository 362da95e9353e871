//! The MLflow client and registry against a real `mlflow server` (pinned in .venv by
//! scripts/setup-mlflow.sh), started on loopback with a SQLite store and the artifact proxy.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use doodle_registry::mlflow::{Metric, Param, Tag};
use doodle_registry::{MlflowClient, MlflowRegistry, RunRecord};

struct MlflowServer {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        // mlflow server runs workers (uvicorn, huey consumers) as children in its process
        // group: ask the group to stop, then make sure every one of them is gone.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && !matches!(self.child.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

fn mlflow_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/mlflow");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/setup-mlflow.sh (make test does)",
        bin.display()
    );
    bin
}

async fn start_mlflow() -> MlflowServer {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::fs::File::create(dir.path().join("mlflow.log")).unwrap();
    let child = Command::new(mlflow_bin())
        .args([
            "server",
            "--backend-store-uri",
            &format!("sqlite:///{}/mlflow.db", dir.path().display()),
            "--artifacts-destination",
            &dir.path().join("artifacts").display().to_string(),
            "--serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--workers",
            "1",
        ])
        .env("MLFLOW_DISABLE_TELEMETRY", "true")
        .env("DO_NOT_TRACK", "true")
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .process_group(0)
        .spawn()
        .expect("starting mlflow server");
    let server = MlflowServer {
        child,
        url: format!("http://127.0.0.1:{port}"),
        dir,
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Ok(r) = http.get(format!("{}/health", server.url)).send().await
            && r.status().is_success()
        {
            return server;
        }
        assert!(
            Instant::now() < deadline,
            "mlflow server did not start; its log:\n{}",
            std::fs::read_to_string(server.dir.path().join("mlflow.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

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
