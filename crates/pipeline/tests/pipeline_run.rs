//! Whole runs over drawings saved through the real backend: the real orchestrator and the real
//! data stages, real git and DVC, on SQLite and PostgreSQL. Stages 5 and 6 (retrain, register)
//! need a trained model and are tested in crates/retrain; here a stand-in that says so runs instead.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{Pipeline, drawing, id_of, output_text, read_npy};
use doodle_core::image::{Pixels, encode_base64};
use doodle_runs::{RunStore, StageStatus};

const ORCHESTRATOR: &str = env!("CARGO_BIN_EXE_pipeline-orchestrator");

/// A pipeline whose stages are the real binaries, 5 and 6 a stand-in that prints `success`.
fn pipeline(threshold: u64) -> Pipeline {
    let stand_in = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/part-2-stand-in.sh"
    );
    let commands = [
        env!("CARGO_BIN_EXE_stage1-scan"),
        env!("CARGO_BIN_EXE_stage2-merge"),
        env!("CARGO_BIN_EXE_stage3-convert"),
        env!("CARGO_BIN_EXE_stage4-version"),
        stand_in,
        stand_in,
        env!("CARGO_BIN_EXE_stage7-clean"),
    ];
    let list: Vec<String> = commands.iter().map(|c| format!("[{c:?}]")).collect();
    Pipeline::with_config(&format!(
        "file_threshold = {threshold}\nstage_commands = [{}]\n",
        list.join(", ")
    ))
}

/// The real backend on port 0, saving into the pipeline's image folder.
async fn backend(p: &Pipeline) -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
    let settings = doodle_core::config::BackendSettings {
        port: 0,
        img_data_location: p.images.clone(),
        // Saving never calls the model server.
        model_server_url: "http://127.0.0.1:9/invocations/".into(),
        ..Default::default()
    };
    let app = doodle_backend::Application::build(settings).await.unwrap();
    let url = format!("http://127.0.0.1:{}/save-image/", app.port());
    (
        url,
        tokio::spawn(app.run_until_stopped(std::future::pending())),
    )
}

async fn save_all(url: &str, drawings: &[(&str, Pixels)]) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for (category, pixels) in drawings {
        let body = serde_json::json!({"image": encode_base64(pixels), "category": category});
        let res = client.post(url).json(&body).send().await.unwrap();
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    }
}

fn orchestrate(p: &Pipeline, db: &str) -> Output {
    p.command(ORCHESTRATOR)
        .arg("--once")
        .env("DOODLE_DATABASE__URL", db)
        .output()
        .unwrap()
}

fn ids(rows: &[Pixels]) -> Vec<u32> {
    let mut ids: Vec<u32> = rows.iter().map(id_of).collect();
    ids.sort();
    ids
}

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(repo)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", output_text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

async fn saved_drawings_flow_into_versioned_data(db: &str) {
    let p = pipeline(20);
    let (url, _server) = backend(&p).await;
    // 15 cats, and a category the model has never seen, drawn 10 times.
    let first: Vec<(&str, Pixels)> = (0..25)
        .map(|i| (if i < 15 { "cat" } else { "teapot" }, drawing(i)))
        .collect();
    save_all(&url, &first).await;
    let out = orchestrate(&p, db);
    assert!(out.status.success(), "{}", output_text(&out));

    let store = RunStore::connect(db).await.unwrap();
    let run = store.list(1, 0).await.unwrap().remove(0);
    for n in 1..=7 {
        let stage = run.stage(n);
        assert_eq!(stage.status, StageStatus::Complete, "stage {n}: {stage:?}");
        assert!(stage.start.unwrap() <= stage.end.unwrap());
    }
    assert_eq!(run.output.new_images, Some(25));
    let head = git(&p.repo, &["rev-parse", "HEAD"]);
    assert_eq!(run.output.data_commit.as_deref(), Some(head.as_str()));
    assert!(run.output.data_hash.as_deref().unwrap().ends_with(".dir"));
    assert_eq!(
        ids(&read_npy(&p.data("new").join("cat.npy"))),
        (0..15).collect::<Vec<_>>()
    );
    assert_eq!(
        ids(&read_npy(&p.data("new").join("teapot.npy"))),
        (15..25).collect::<Vec<_>>()
    );
    assert!(
        !p.images.join("cat").exists(),
        "stage 7 removed the emptied folders"
    );
    let status = Command::new(common::dvc())
        .arg("status")
        .current_dir(&p.repo)
        .output();
    assert!(output_text(&status.unwrap()).contains("up to date"));
    let log = std::fs::read_to_string(p.logs.join(format!("runs/{}/stage3.log", run.run_id)));
    assert!(
        log.unwrap().contains("converted"),
        "the run's own stage log"
    );

    // A second run: the first run's drawings are merged into old/, the new ones converted.
    let second: Vec<(&str, Pixels)> = (25..50).map(|i| ("teapot", drawing(i))).collect();
    save_all(&url, &second).await;
    let out = orchestrate(&p, db);
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(
        ids(&read_npy(&p.data("old").join("cat.npy"))),
        (0..15).collect::<Vec<_>>()
    );
    assert_eq!(
        ids(&read_npy(&p.data("old").join("teapot.npy"))),
        (15..25).collect::<Vec<_>>()
    );
    assert_eq!(
        ids(&read_npy(&p.data("new").join("teapot.npy"))),
        (25..50).collect::<Vec<_>>()
    );
    for (_, pixels) in first.iter().chain(&second) {
        let all = p.everything();
        let found = all.values().flatten().filter(|row| *row == pixels).count();
        assert_eq!(
            found,
            1,
            "drawing {} exactly once, byte for byte",
            id_of(pixels)
        );
    }
    let commits = git(&p.repo, &["log", "--format=%s"]);
    assert_eq!(
        commits.matches("Update tracked data in drawings").count(),
        2,
        "{commits}"
    );

    // Below the threshold: stage 1 complete, the rest not triggered, nothing moves.
    save_all(&url, &[("cat", drawing(99))]).await;
    let out = orchestrate(&p, db);
    assert!(out.status.success(), "{}", output_text(&out));
    let run = store.list(1, 0).await.unwrap().remove(0);
    assert_eq!(run.stage(1).status, StageStatus::Complete);
    for n in 2..=7 {
        assert_eq!(run.stage(n).status, StageStatus::NotTriggered);
    }
    assert!(
        run.stage(2)
            .message
            .as_deref()
            .unwrap()
            .contains("threshold")
    );
    assert_eq!(p.everything()["cat"].len(), 16);
}

#[tokio::test]
async fn saved_drawings_flow_into_versioned_data_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    saved_drawings_flow_into_versioned_data(&doodle_runs::test_support::sqlite_in(dir.path()))
        .await;
}

#[tokio::test]
async fn saved_drawings_flow_into_versioned_data_on_postgres() {
    let db = doodle_runs::test_support::fresh_postgres().await;
    saved_drawings_flow_into_versioned_data(&db.url).await;
}

#[tokio::test]
async fn an_orchestrator_killed_mid_convert_loses_and_doubles_nothing() {
    let p = pipeline(1);
    let dir = tempfile::tempdir().unwrap();
    let db = doodle_runs::test_support::sqlite_in(dir.path());
    for i in 0..5000 {
        p.save(["cat", "dog"][i as usize % 2], &drawing(i));
    }
    let mut child = p
        .command(ORCHESTRATOR)
        .env("DOODLE_DATABASE__URL", &db)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let store = RunStore::connect(&db).await.unwrap();
    store.migrate().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let runs = store.list(1, 0).await.unwrap();
        if runs
            .first()
            .is_some_and(|r| r.stage(3).status == StageStatus::Running)
        {
            break;
        }
        assert!(Instant::now() < deadline, "stage 3 never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();

    // The next run takes over: the dead run is marked failed, every drawing ends up once.
    let out = orchestrate(&p, &db);
    assert!(out.status.success(), "{}", output_text(&out));
    let runs = store.list(10, 0).await.unwrap();
    assert_eq!(runs.len(), 2);
    let dead = &runs[1];
    assert_eq!(dead.stage(3).status, StageStatus::Failed);
    assert!(
        dead.stage(3).message.as_deref().unwrap().contains("pid"),
        "{dead:?}"
    );
    let all = p.everything();
    let mut seen: Vec<u32> = all.values().flatten().map(id_of).collect();
    seen.sort();
    assert_eq!(
        seen,
        (0..5000).collect::<Vec<_>>(),
        "each drawing exactly once"
    );
}
