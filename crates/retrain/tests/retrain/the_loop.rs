//! The loop, end to end, against the real binaries: the model server serves the cached base
//! model (apple, bicycle, rainbow); people save drawings through the backend's `/save-image/`;
//! one `pipeline-orchestrator --once` runs all seven stages; the model server picks up what the
//! gate promoted by itself, while a client keeps classifying through the backend. Each test runs
//! on the local registry and on a real `mlflow server`.

use std::time::Duration;

use doodle_registry::Registry;
use doodle_registry::test_support::{MlflowServer, start_mlflow};
use doodle_retrain::register::GateReport;
use doodle_runs::{Run, RunStore, StageStatus};

use crate::helpers::*;
use crate::stack::{Answer, Stack, orchestrate};

#[derive(Debug, Clone, Copy)]
enum Kind {
    Local,
    Mlflow,
}

/// A pipeline whose registry holds the base model as version 1 behind `champion`, and the
/// running stack following it.
struct Loop {
    p: Pipeline,
    registry: Registry,
    stack: Stack,
    _mlflow: Option<MlflowServer>,
}

impl Loop {
    async fn start(kind: Kind, pipeline: &str) -> Self {
        let mlflow = match kind {
            Kind::Local => None,
            Kind::Mlflow => Some(start_mlflow().await),
        };
        let registry_keys = mlflow.as_ref().map_or(String::new(), |m| {
            format!("kind = \"mlflow\"\nmlflow_tracking_uri = \"{}\"", m.url)
        });
        let p = Pipeline::without_repo(&registry_keys, pipeline);
        let registry = p.deploy_base().await;
        let stack = Stack::start(&p).await;
        Self {
            p,
            registry,
            stack,
            _mlflow: mlflow,
        }
    }

    /// Run the orchestrator once; the run's row, every stage complete.
    async fn run_pipeline(&self) -> Run {
        let (out, text) = orchestrate(&self.p).await;
        assert!(
            out.status.success(),
            "orchestrator: {text}\n{}",
            self.stage_logs()
        );
        let store = RunStore::connect(&self.p.database).await.unwrap();
        let mut runs = store.list(10, 0).await.unwrap();
        assert_eq!(runs.len(), 1, "{runs:#?}");
        let run = runs.remove(0);
        for n in 1..=7 {
            let stage = run.stage(n);
            assert_eq!(
                stage.status,
                StageStatus::Complete,
                "stage {n}: {stage:?}\n{}",
                self.stage_logs()
            );
        }
        run
    }

    fn stage_logs(&self) -> String {
        let mut all = String::new();
        for n in 1..=7 {
            let path = self.p.logs.join("runs/1").join(format!("stage{n}.log"));
            let log = std::fs::read_to_string(&path).unwrap_or_default();
            all.push_str(&format!("---- {}\n{log}", path.display()));
        }
        all
    }

    /// The data version stage 4 committed: git HEAD and the DVC hash in `drawings.dvc`.
    fn data_version(&self) -> (String, String) {
        let dvc = std::fs::read_to_string(self.p.repo.join("drawings.dvc")).unwrap();
        let md5 = dvc
            .lines()
            .find_map(|l| l.trim_start_matches(['-', ' ']).strip_prefix("md5: "))
            .expect("drawings.dvc names the folder's hash")
            .to_string();
        (self.p.head(), md5)
    }
}

fn gate_report(run: &Run) -> GateReport {
    serde_json::from_str(run.output.gate_report.as_deref().expect("a gate report")).unwrap()
}

/// Every answer was a 200; the versions, in order, with repeats folded.
fn versions_served(answers: &[Answer]) -> Vec<String> {
    let failed: Vec<&Answer> = answers.iter().filter(|a| a.status != 200).collect();
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    let mut versions: Vec<String> = Vec::new();
    for a in answers {
        let v = a
            .version
            .clone()
            .expect("every answer names its model version");
        if versions.last() != Some(&v) {
            versions.push(v);
        }
    }
    versions
}

/// People teach it a new category: 300 houses saved through the backend. The run registers
/// version 2 with the data version it trained on, the gate promotes it, the model server swaps
/// to it with no failed request, and held-back houses come back as "house".
async fn a_new_category_is_learned_promoted_and_served(kind: Kind) {
    // Every layer learns (see stages.rs: the small base model's features do not tell a house
    // apart, so the final layer alone cannot learn one without costing the known classes).
    let l = Loop::start(kind, "retrain_unfreeze_all = true\n").await;
    let probe = shared_rows("rainbow", 1500..1501);
    assert_eq!(l.stack.classify(&probe).await.version.as_deref(), Some("1"));
    l.stack.save("house", &shared_rows("house", 0..300)).await;
    let traffic = l.stack.traffic(&probe);
    let run = l.run_pipeline().await;
    l.stack
        .wait_for_version("2", Duration::from_secs(60), &probe)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answers = traffic.stop().await;

    // (a) a new version, registered with the data version it was trained on.
    let (commit, hash) = l.data_version();
    assert_eq!(run.output.new_images, Some(300));
    assert_eq!(run.output.data_commit.as_deref(), Some(commit.as_str()));
    assert_eq!(run.output.data_hash.as_deref(), Some(hash.as_str()));
    assert_eq!(run.output.model_version.as_deref(), Some("2"));
    let tags = l.registry.version_tags("2").await.unwrap();
    assert_eq!(tags["data_commit"], commit);
    assert_eq!(tags["data_hash"], hash);
    assert_eq!(tags["pipeline_run"], run.run_id.to_string());
    // (b) promoted by the gate.
    assert_eq!(run.output.promoted, Some(true));
    let report = gate_report(&run);
    assert_eq!(report.decision, "promote", "{}", report.reason);
    assert_eq!(tags["gate"], "passed");
    assert_eq!(
        l.registry
            .alias_version("champion")
            .await
            .unwrap()
            .as_deref(),
        Some("2")
    );
    // (c) the running model server swapped to it, with no failed request on the way.
    assert_eq!(versions_served(&answers), ["1", "2"], "{answers:?}");
    // (d) it answers the new category for drawings nobody saved.
    let after = l.stack.labels(&shared_rows("house", 1000..1100)).await;
    let houses = after.iter().filter(|x| *x == "house").count();
    assert!(houses >= 60, "{houses}/100 held-back houses: {after:?}");
}

/// People "teach" it that apples are rainbows: the candidate is registered as version 2, the
/// gate refuses it and says why, and version 1 keeps serving with no failed request.
async fn a_model_taught_wrong_labels_is_refused_and_the_old_one_keeps_serving(kind: Kind) {
    let l = Loop::start(kind, "").await;
    let probe = shared_rows("apple", 1500..1501);
    let held_back = shared_rows("apple", 1600..1650);
    let before = l.stack.labels(&held_back).await;
    l.stack
        .save("rainbow", &shared_rows("apple", 1000..1400))
        .await;
    let traffic = l.stack.traffic(&probe);
    let run = l.run_pipeline().await;
    // Three of the model server's registry polls (one second apart) after the run.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let answers = traffic.stop().await;

    assert_eq!(run.output.new_images, Some(400));
    assert_eq!(run.output.model_version.as_deref(), Some("2"));
    assert_eq!(run.output.promoted, Some(false));
    let report = gate_report(&run);
    assert_eq!(report.decision, "refuse");
    assert!(report.reason.contains("apple drops"), "{}", report.reason);
    assert_eq!(
        l.registry.version_tags("2").await.unwrap()["gate"],
        "refused"
    );
    assert_eq!(
        l.registry
            .alias_version("champion")
            .await
            .unwrap()
            .as_deref(),
        Some("1")
    );
    assert_eq!(versions_served(&answers), ["1"], "{answers:?}");
    assert_eq!(
        l.stack.labels(&held_back).await,
        before,
        "the same model answers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_local_a_new_category_is_learned_promoted_and_served() {
    a_new_category_is_learned_promoted_and_served(Kind::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_local_a_model_taught_wrong_labels_is_refused_and_the_old_one_keeps_serving() {
    a_model_taught_wrong_labels_is_refused_and_the_old_one_keeps_serving(Kind::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_mlflow_a_new_category_is_learned_promoted_and_served() {
    a_new_category_is_learned_promoted_and_served(Kind::Mlflow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_mlflow_a_model_taught_wrong_labels_is_refused_and_the_old_one_keeps_serving() {
    a_model_taught_wrong_labels_is_refused_and_the_old_one_keeps_serving(Kind::Mlflow).await;
}
