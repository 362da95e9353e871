//! What the dashboard reads: `connect_lazy`, `list_summaries`, `stats`, `Run::outcome` and the
//! shared stage-log path, on SQLite and on a fresh PostgreSQL database.

use std::path::Path;
use std::time::Duration;

use doodle_runs::test_support::{fresh_postgres, sqlite_in};
use doodle_runs::{NewRun, RunOutcome, RunOutput, RunStore, StageStatus, stage_log_path};

macro_rules! on_both {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let dir = tempfile::tempdir().expect("temp dir");
                    super::$case(&sqlite_in(dir.path())).await;
                }
            )*
            use super::sqlite_in;
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let db = super::fresh_postgres().await;
                    super::$case(&db.url).await;
                }
            )*
        }
    };
}

on_both!(
    a_lazy_store_reads_what_another_store_wrote,
    summaries_are_the_list_without_the_gate_report,
    stats_count_outcomes_and_add_up_stage_durations,
);

fn new_run() -> NewRun {
    NewRun {
        trigger: "test".into(),
        host: "h".into(),
        pid: 1,
    }
}

async fn writer(url: &str) -> RunStore {
    let store = RunStore::connect(url).await.unwrap();
    store.migrate().await.unwrap();
    store
}

async fn a_lazy_store_reads_what_another_store_wrote(url: &str) {
    let lazy = RunStore::connect_lazy(url, Duration::from_secs(2)).unwrap();
    let store = writer(url).await;
    let run = store.create_run(&new_run()).await.unwrap();
    assert_eq!(lazy.count().await.unwrap(), 1);
    assert_eq!(lazy.get(run).await.unwrap().unwrap().run_id, run);
}

async fn summaries_are_the_list_without_the_gate_report(url: &str) {
    let store = writer(url).await;
    for i in 0..3 {
        let run = store.create_run(&new_run()).await.unwrap();
        let output = RunOutput {
            model_version: Some(format!("{i}")),
            promoted: Some(i % 2 == 0),
            gate_report: Some(format!(r#"{{"run":{i}}}"#)),
            ..RunOutput::default()
        };
        store.record(run, &output).await.unwrap();
    }
    let full = store.list(10, 0).await.unwrap();
    let lean = store.list_summaries(10, 0).await.unwrap();
    assert_eq!(lean.len(), 3);
    for (full, lean) in full.iter().zip(&lean) {
        assert!(full.output.gate_report.is_some());
        assert_eq!(lean.output.gate_report, None);
        let mut without = full.clone();
        without.output.gate_report = None;
        assert_eq!(&without, lean);
    }
    assert_eq!(store.list_summaries(2, 2).await.unwrap().len(), 1);
}

async fn stats_count_outcomes_and_add_up_stage_durations(url: &str) {
    let store = writer(url).await;
    assert_eq!(store.stats().await.unwrap().outcomes, vec![]);

    let done = store.create_run(&new_run()).await.unwrap();
    for n in 1..=7 {
        store
            .set_stage(done, n, StageStatus::Running, None)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        store
            .set_stage(done, n, StageStatus::Complete, None)
            .await
            .unwrap();
    }
    let failed = store.create_run(&new_run()).await.unwrap();
    store
        .set_stage(failed, 1, StageStatus::Running, None)
        .await
        .unwrap();
    store
        .set_stage(failed, 1, StageStatus::Failed, Some("x"))
        .await
        .unwrap();
    let skipped = store.create_run(&new_run()).await.unwrap();
    store
        .set_stage(skipped, 1, StageStatus::Complete, None)
        .await
        .unwrap();
    store
        .mark_not_triggered(skipped, 2..=7, "few")
        .await
        .unwrap();
    let open = store.create_run(&new_run()).await.unwrap();

    let list = store.list(10, 0).await.unwrap();
    let outcome = |id| list.iter().find(|r| r.run_id == id).unwrap().outcome();
    assert_eq!(outcome(done), RunOutcome::Complete);
    assert_eq!(outcome(failed), RunOutcome::Failed);
    assert_eq!(outcome(skipped), RunOutcome::NotTriggered);
    assert_eq!(outcome(open), RunOutcome::Running);

    let stats = store.stats().await.unwrap();
    assert_eq!(
        stats.outcomes,
        vec![
            (RunOutcome::Complete, 1),
            (RunOutcome::Failed, 1),
            (RunOutcome::NotTriggered, 1),
            (RunOutcome::Running, 1),
        ],
        "the SQL rule agrees with Run::outcome"
    );
    // Stage 1 finished three times (complete, failed, complete-without-running); 2-7 once.
    assert_eq!(stats.stages_finished, [3, 1, 1, 1, 1, 1, 1]);
    let expected: Vec<f64> = (1..=7)
        .map(|n| {
            list.iter()
                .filter_map(|r| {
                    let s = r.stage(n);
                    let finished = matches!(s.status, StageStatus::Complete | StageStatus::Failed);
                    finished.then_some((s.end? - s.start?).as_seconds_f64())
                })
                .sum()
        })
        .collect();
    for (n, (&got, want)) in stats.stage_seconds.iter().zip(&expected).enumerate() {
        assert!(
            (got - want).abs() < 0.002,
            "stage {}: {got} vs {want}",
            n + 1
        );
        assert!(n == 0 || got >= 0.004, "{:?}", stats.stage_seconds);
    }
}

#[tokio::test]
async fn a_lazy_store_on_a_server_that_is_down_is_unavailable_quickly() {
    // Nothing listens on port 1: every query is Unavailable, quickly, and nothing panics.
    let lazy = RunStore::connect_lazy(
        "postgres://postgres@127.0.0.1:1/none",
        Duration::from_millis(300),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let err = lazy.ping().await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(RunStore::connect_lazy("mysql://x", Duration::from_secs(1)).is_err());
}

#[test]
fn the_stage_log_path_is_made_of_two_numbers() {
    assert_eq!(
        stage_log_path(Path::new("logs"), 42, 3),
        Path::new("logs/runs/42/stage3.log")
    );
}
