//! `RunStore` against both databases: every case runs on SQLite (a temp dir) and on a fresh
//! PostgreSQL database (`DOODLE_TEST_POSTGRES_URL`, default the local server).

use std::ops::RangeInclusive;
use std::time::Instant;

use doodle_runs::test_support::{FreshDatabase, fresh_postgres, sqlite_in};
use doodle_runs::{NewRun, RunOutput, RunStore, RunsError, STAGES, StageStatus};
use tempfile::TempDir;
use time::{Duration, OffsetDateTime};

/// One test's database; more stores (pools) can be opened on it.
enum TestDb {
    Sqlite(TempDir),
    Postgres(FreshDatabase),
}

impl TestDb {
    fn url(&self) -> String {
        match self {
            Self::Sqlite(dir) => sqlite_in(dir.path()),
            Self::Postgres(db) => db.url.clone(),
        }
    }

    /// Adds `n` runs straight in SQL, one a microsecond from 2024-01-01 (ids ascending with time).
    async fn seed(&self, n: u32) {
        let url = self.url();
        match self {
            Self::Sqlite(_) => {
                let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
                sqlx::query(
                    r#"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1)
                    INSERT INTO pipeline_runs (start_time, "trigger", host, pid)
                    SELECT printf('2024-01-01T00:00:00.%06dZ', i), 'seed', 'h', i FROM n"#,
                )
                .bind(n)
                .execute(&pool)
                .await
                .unwrap();
            }
            Self::Postgres(_) => {
                let pool = sqlx::PgPool::connect(&url).await.unwrap();
                sqlx::query(
                    r#"INSERT INTO pipeline_runs (start_time, "trigger", host, pid)
                    SELECT timestamptz '2024-01-01 00:00:00Z' + i * interval '1 microsecond',
                           'seed', 'h', i
                    FROM generate_series(1, $1) AS i"#,
                )
                .bind(i32::try_from(n).unwrap())
                .execute(&pool)
                .await
                .unwrap();
                sqlx::query("ANALYZE pipeline_runs")
                    .execute(&pool)
                    .await
                    .unwrap();
            }
        }
    }

    /// A new, migrated store (its own pool) on this database.
    async fn store(&self) -> RunStore {
        let store = RunStore::connect(&self.url()).await.expect("connect");
        store.migrate().await.expect("migrate");
        store
    }
}

/// `async fn case(db: TestDb)` → `sqlite::case` and `postgres::case`.
macro_rules! on_both {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let dir = tempfile::tempdir().expect("temp dir");
                    super::$case(super::TestDb::Sqlite(dir)).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let db = doodle_runs::test_support::fresh_postgres().await;
                    super::$case(super::TestDb::Postgres(db)).await;
                }
            )*
        }
    };
}

on_both!(
    migrate_twice_then_an_empty_table_lists_nothing,
    create_run_starts_every_stage_waiting,
    running_then_complete_sets_start_then_end,
    complete_without_running_starts_and_ends_now,
    failed_stage_fails_every_later_stage_and_ends_the_run,
    mark_not_triggered_marks_the_range_only,
    record_keeps_the_fields_not_given,
    finish_run_sets_end_time,
    list_pages_newest_first,
    list_stays_fast_with_100_000_runs,
    unknown_run_is_none_or_no_such_run,
    stage_outside_1_to_7_is_no_such_stage,
    abandon_unfinished_fails_open_runs_only,
    timestamps_round_trip_at_microseconds,
    every_status_round_trips,
    two_stores_write_concurrently,
);

fn new_run(trigger: &str) -> NewRun {
    NewRun {
        trigger: trigger.to_owned(),
        host: "build-7".to_owned(),
        pid: 4242,
    }
}

/// Now, for bracketing a stored time (which is truncated to microseconds).
fn mark() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn assert_between(t: OffsetDateTime, before: OffsetDateTime, after: OffsetDateTime) {
    assert!(
        before - Duration::microseconds(1) <= t && t <= after,
        "{t} is not between {before} and {after}"
    );
}

async fn migrate_twice_then_an_empty_table_lists_nothing(db: TestDb) {
    let store = db.store().await;
    store.migrate().await.expect("second migrate");
    store.ping().await.expect("ping");
    assert_eq!(store.count().await.unwrap(), 0);
    assert!(store.list(10, 0).await.unwrap().is_empty());
}

async fn create_run_starts_every_stage_waiting(db: TestDb) {
    let store = db.store().await;
    let before = mark();
    let id = store.create_run(&new_run("schedule")).await.unwrap();
    let after = mark();

    let run = store.get(id).await.unwrap().expect("the new run");
    assert_eq!(run.run_id, id);
    assert_between(run.start_time, before, after);
    assert_eq!(run.end_time, None);
    assert_eq!(
        (run.trigger.as_str(), run.host.as_str(), run.pid),
        ("schedule", "build-7", 4242)
    );
    for stage in &run.stages {
        assert_eq!(stage.status, StageStatus::Waiting);
        assert_eq!(
            (stage.start, stage.end, &stage.message),
            (None, None, &None)
        );
    }
    assert_eq!(run.output, RunOutput::default());
    assert_eq!(store.count().await.unwrap(), 1);
}

async fn running_then_complete_sets_start_then_end(db: TestDb) {
    let store = db.store().await;
    let id = store.create_run(&new_run("manual")).await.unwrap();

    let before = mark();
    store
        .set_stage(id, 1, StageStatus::Running, None)
        .await
        .unwrap();
    let running = store.get(id).await.unwrap().unwrap();
    let stage = running.stage(1);
    assert_eq!(stage.status, StageStatus::Running);
    assert_between(stage.start.expect("start"), before, mark());
    assert_eq!(stage.end, None);

    store
        .set_stage(id, 1, StageStatus::Complete, Some("3 new drawings"))
        .await
        .unwrap();
    let after = mark();
    let done = store.get(id).await.unwrap().unwrap();
    let stage = done.stage(1);
    assert_eq!(stage.status, StageStatus::Complete);
    assert_eq!(stage.start, running.stage(1).start, "start is kept");
    assert_between(stage.end.expect("end"), stage.start.unwrap(), after);
    assert_eq!(stage.message.as_deref(), Some("3 new drawings"));
    assert_eq!(done.stage(2).status, StageStatus::Waiting);
    assert_eq!(done.end_time, None, "a complete stage does not end the run");
}

async fn complete_without_running_starts_and_ends_now(db: TestDb) {
    let store = db.store().await;
    let id = store.create_run(&new_run("manual")).await.unwrap();
    let before = mark();
    store
        .set_stage(id, 2, StageStatus::Complete, None)
        .await
        .unwrap();
    let run = store.get(id).await.unwrap().unwrap();
    let stage = run.stage(2);
    assert_between(stage.start.expect("start"), before, mark());
    assert_eq!(stage.start, stage.end);
}

async fn failed_stage_fails_every_later_stage_and_ends_the_run(db: TestDb) {
    let store = db.store().await;
    let id = store.create_run(&new_run("schedule")).await.unwrap();
    for stage in 1..=2 {
        store
            .set_stage(id, stage, StageStatus::Complete, None)
            .await
            .unwrap();
    }
    store
        .set_stage(id, 3, StageStatus::Running, None)
        .await
        .unwrap();
    let before = mark();
    store
        .set_stage(id, 3, StageStatus::Failed, Some("exit status 2"))
        .await
        .unwrap();
    let after = mark();

    let run = store.get(id).await.unwrap().unwrap();
    for stage in 1..=2 {
        assert_eq!(run.stage(stage).status, StageStatus::Complete);
        assert_eq!(run.stage(stage).message, None);
    }
    let failed = run.stage(3);
    assert_eq!(failed.status, StageStatus::Failed);
    assert_eq!(failed.message.as_deref(), Some("exit status 2"));
    assert!(failed.start.is_some());
    assert_between(failed.end.expect("end"), before, after);
    for stage in 4..=STAGES {
        let later = run.stage(stage);
        assert_eq!(later.status, StageStatus::Failed, "stage {stage}");
        assert_eq!(later.message.as_deref(), Some("not run: stage 3 failed"));
        assert_eq!(later.start, None);
        assert_eq!(later.end, failed.end);
    }
    assert_eq!(run.end_time, failed.end);
}

async fn mark_not_triggered_marks_the_range_only(db: TestDb) {
    let store = db.store().await;
    let id = store.create_run(&new_run("schedule")).await.unwrap();
    store
        .set_stage(id, 1, StageStatus::Complete, Some("no new drawings"))
        .await
        .unwrap();
    let before = mark();
    store
        .mark_not_triggered(id, 2..=7, "no new drawings")
        .await
        .unwrap();

    let run = store.get(id).await.unwrap().unwrap();
    assert_eq!(run.stage(1).status, StageStatus::Complete);
    for stage in 2..=7 {
        let s = run.stage(stage);
        assert_eq!(s.status, StageStatus::NotTriggered, "stage {stage}");
        assert_eq!(s.start, None);
        assert_between(s.end.expect("end"), before, mark());
        assert_eq!(s.message.as_deref(), Some("no new drawings"));
    }

    let other = store.create_run(&new_run("schedule")).await.unwrap();
    store
        .mark_not_triggered(other, 6..=6, "skip")
        .await
        .unwrap();
    let statuses: Vec<_> = store
        .get(other)
        .await
        .unwrap()
        .unwrap()
        .stages
        .map(|s| s.status)
        .into();
    let mut want = vec![StageStatus::Waiting; STAGES];
    want[5] = StageStatus::NotTriggered;
    assert_eq!(statuses, want);

    let reversed = store
        .mark_not_triggered(other, RangeInclusive::new(5, 3), "x")
        .await;
    assert!(
        matches!(reversed, Err(RunsError::EmptyRange { start: 5, end: 3 })),
        "{reversed:?}"
    );
}

async fn record_keeps_the_fields_not_given(db: TestDb) {
    let store = db.store().await;
    let id = store.create_run(&new_run("schedule")).await.unwrap();
    let first = RunOutput {
        new_images: Some(12),
        data_commit: Some("a1b2c3".to_owned()),
        data_hash: Some("md5:ffee".to_owned()),
        ..RunOutput::default()
    };
    store.record(id, &first).await.unwrap();
    let second = RunOutput {
        model_version: Some("7".to_owned()),
        promoted: Some(false),
        gate_report: Some(r#"{"accuracy": 0.91}"#.to_owned()),
        ..RunOutput::default()
    };
    store.record(id, &second).await.unwrap();
    store
        .record(
            id,
            &RunOutput {
                promoted: Some(true),
                ..RunOutput::default()
            },
        )
        .await
        .unwrap();

    let run = store.get(id).await.unwrap().unwrap();
    let want = RunOutput {
        new_images: Some(12),
        data_commit: Some("a1b2c3".to_owned()),
        data_hash: Some("md5:ffee".to_owned()),
        model_version: Some("7".to_owned()),
        promoted: Some(true),
        gate_report: Some(r#"{"accuracy": 0.91}"#.to_owned()),
    };
    assert_eq!(run.output, want);
    assert!(run.stages.iter().all(|s| s.status == StageStatus::Waiting));
}

async fn finish_run_sets_end_time(db: TestDb) {
    let store = db.store().await;
    let id = store.create_run(&new_run("once")).await.unwrap();
    let before = mark();
    store.finish_run(id).await.unwrap();
    let run = store.get(id).await.unwrap().unwrap();
    assert_between(run.end_time.expect("end_time"), before, mark());
    assert!(run.end_time.unwrap() >= run.start_time);
}

async fn list_pages_newest_first(db: TestDb) {
    let store = db.store().await;
    let mut ids = Vec::new();
    for i in 0..25 {
        ids.push(
            store
                .create_run(&new_run(&format!("run {i}")))
                .await
                .unwrap(),
        );
    }
    ids.reverse(); // newest first

    assert_eq!(store.count().await.unwrap(), 25);
    let mut seen = Vec::new();
    for (offset, want_len) in [(0, 10), (10, 10), (20, 5)] {
        let page = store.list(10, offset).await.unwrap();
        assert_eq!(page.len(), want_len, "page at {offset}");
        seen.extend(page.iter().map(|run| run.run_id));
    }
    assert_eq!(seen, ids);
    let all = store.list(100, 0).await.unwrap();
    assert!(all.windows(2).all(|w| w[0].start_time >= w[1].start_time));
    assert_eq!(all[0].trigger, "run 24");
    assert!(store.list(10, 25).await.unwrap().is_empty());
    assert!(store.list(0, 0).await.unwrap().is_empty());
    assert_eq!(
        store.list(-1, -5).await.unwrap().len(),
        0,
        "negative limit is 0"
    );
}

async fn list_stays_fast_with_100_000_runs(db: TestDb) {
    let store = db.store().await;
    db.seed(100_000).await;
    let newest = store.create_run(&new_run("now")).await.unwrap();
    assert_eq!(store.count().await.unwrap(), 100_001);

    let started = Instant::now();
    let first = store.list(10, 0).await.unwrap();
    let deep = store.list(10, 99_991).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(first[0].run_id, newest);
    assert_eq!(first[1].run_id, 100_000);
    let deep_ids: Vec<_> = deep.iter().map(|run| run.run_id).collect();
    assert_eq!(deep_ids, (1..=10).rev().collect::<Vec<_>>());
    assert!(
        elapsed < std::time::Duration::from_secs(2),
        "two pages took {elapsed:?}"
    );
}

async fn unknown_run_is_none_or_no_such_run(db: TestDb) {
    let store = db.store().await;
    let id = store.create_run(&new_run("manual")).await.unwrap();
    let unknown = id + 1000;
    assert_eq!(store.get(unknown).await.unwrap(), None);

    let no_such_run =
        |r: Result<(), RunsError>| matches!(r, Err(RunsError::NoSuchRun(n)) if n == unknown);
    assert!(no_such_run(
        store
            .set_stage(unknown, 1, StageStatus::Running, None)
            .await
    ));
    assert!(no_such_run(
        store
            .set_stage(unknown, 2, StageStatus::Failed, Some("x"))
            .await
    ));
    assert!(no_such_run(
        store.mark_not_triggered(unknown, 2..=7, "x").await
    ));
    assert!(no_such_run(
        store.record(unknown, &RunOutput::default()).await
    ));
    assert!(no_such_run(store.finish_run(unknown).await));
    assert_eq!(store.count().await.unwrap(), 1, "nothing was created");
}

async fn stage_outside_1_to_7_is_no_such_stage(db: TestDb) {
    let store = db.store().await;
    let id = store.create_run(&new_run("manual")).await.unwrap();
    for stage in [0, 8, usize::MAX] {
        let r = store.set_stage(id, stage, StageStatus::Running, None).await;
        assert!(
            matches!(r, Err(RunsError::NoSuchStage(n)) if n == stage),
            "{r:?}"
        );
    }
    let r = store.mark_not_triggered(id, 0..=3, "x").await;
    assert!(matches!(r, Err(RunsError::NoSuchStage(0))), "{r:?}");
    let r = store.mark_not_triggered(id, 2..=8, "x").await;
    assert!(matches!(r, Err(RunsError::NoSuchStage(8))), "{r:?}");
    let run = store.get(id).await.unwrap().unwrap();
    assert!(run.stages.iter().all(|s| s.status == StageStatus::Waiting));
}

async fn abandon_unfinished_fails_open_runs_only(db: TestDb) {
    let store = db.store().await;
    let finished = store.create_run(&new_run("schedule")).await.unwrap();
    store
        .set_stage(finished, 1, StageStatus::Complete, None)
        .await
        .unwrap();
    store
        .mark_not_triggered(finished, 2..=7, "nothing new")
        .await
        .unwrap();
    store.finish_run(finished).await.unwrap();
    let finished_before = store.get(finished).await.unwrap().unwrap();

    let midway = store.create_run(&new_run("schedule")).await.unwrap();
    for stage in 1..=2 {
        store
            .set_stage(midway, stage, StageStatus::Complete, None)
            .await
            .unwrap();
    }
    store
        .set_stage(midway, 3, StageStatus::Running, None)
        .await
        .unwrap();
    let fresh = store.create_run(&new_run("manual")).await.unwrap();

    let before = mark();
    let ids = store
        .abandon_unfinished("orchestrator restarted")
        .await
        .unwrap();
    let after = mark();
    assert_eq!(ids, vec![midway, fresh]);

    assert_eq!(store.get(finished).await.unwrap().unwrap(), finished_before);
    let run = store.get(midway).await.unwrap().unwrap();
    assert_eq!(run.stage(1).status, StageStatus::Complete);
    assert_eq!(run.stage(2).status, StageStatus::Complete);
    let died = run.stage(3);
    assert_eq!(died.status, StageStatus::Failed);
    assert_eq!(died.message.as_deref(), Some("orchestrator restarted"));
    assert!(died.start.is_some());
    assert_between(died.end.expect("end"), before, after);
    for stage in 4..=STAGES {
        assert_eq!(run.stage(stage).status, StageStatus::Failed);
        assert_eq!(
            run.stage(stage).message.as_deref(),
            Some("not run: orchestrator restarted")
        );
    }
    assert_between(run.end_time.expect("end_time"), before, after);

    let run = store.get(fresh).await.unwrap().unwrap();
    assert!(
        run.stages
            .iter()
            .all(|s| s.status == StageStatus::Failed && s.start.is_none())
    );
    assert!(run.end_time.is_some());

    assert!(store.abandon_unfinished("again").await.unwrap().is_empty());
}

async fn timestamps_round_trip_at_microseconds(db: TestDb) {
    let store = db.store().await;
    let id = store.create_run(&new_run("manual")).await.unwrap();
    store
        .set_stage(id, 1, StageStatus::Running, None)
        .await
        .unwrap();
    store
        .set_stage(id, 1, StageStatus::Complete, None)
        .await
        .unwrap();
    store.finish_run(id).await.unwrap();

    let run = store.get(id).await.unwrap().unwrap();
    let times = [
        run.start_time,
        run.stage(1).start.unwrap(),
        run.stage(1).end.unwrap(),
        run.end_time.unwrap(),
    ];
    for t in times {
        assert_eq!(t.offset(), time::UtcOffset::UTC, "{t}");
        assert_eq!(t.nanosecond() % 1_000, 0, "{t} is whole microseconds");
    }
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");

    // Read through another path (and another pool), and through JSON: the same values.
    let listed = db.store().await.list(1, 0).await.unwrap().remove(0);
    assert_eq!(listed, run);
    let json = serde_json::to_string(&run).unwrap();
    assert_eq!(
        serde_json::from_str::<doodle_runs::Run>(&json).unwrap(),
        run
    );
}

async fn every_status_round_trips(db: TestDb) {
    let store = db.store().await;
    let id = store.create_run(&new_run("manual")).await.unwrap();
    for (i, status) in StageStatus::ALL.into_iter().enumerate() {
        let stage = i + 1;
        store
            .set_stage(id, stage, status, Some(status.as_str()))
            .await
            .unwrap();
        let got = store.get(id).await.unwrap().unwrap();
        assert_eq!(got.stage(stage).status, status);
        assert_eq!(got.stage(stage).message.as_deref(), Some(status.as_str()));
        assert_eq!(
            got.stage(stage).end.is_some(),
            status.is_final(),
            "{status}"
        );
        assert_eq!(
            got.stage(stage).start.is_some(),
            matches!(
                status,
                StageStatus::Running | StageStatus::Complete | StageStatus::Failed
            ),
            "{status}"
        );
    }
}

async fn two_stores_write_concurrently(db: TestDb) {
    // Two pools, as an orchestrator and a dashboard in two processes; four tasks on each.
    let stores = [db.store().await, db.store().await];
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = stores[i % 2].clone();
            tokio::spawn(async move {
                for _ in 0..15 {
                    let id = store.create_run(&new_run("concurrent")).await?;
                    store.set_stage(id, 1, StageStatus::Running, None).await?;
                    store
                        .set_stage(id, 1, StageStatus::Failed, Some("boom"))
                        .await?;
                    store.list(5, 0).await?;
                    store.abandon_unfinished("sweep").await?;
                }
                Ok::<_, RunsError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("a writer failed");
    }
    assert_eq!(stores[0].count().await.unwrap(), 120);
    let runs = stores[1].list(200, 0).await.unwrap();
    assert_eq!(runs.len(), 120);
    assert!(
        runs.iter()
            .all(|r| r.end_time.is_some()
                && r.stages.iter().all(|s| s.status == StageStatus::Failed))
    );
}

#[tokio::test]
async fn an_unreachable_postgres_is_unavailable() {
    let started = std::time::Instant::now();
    let err = RunStore::connect("postgres://postgres@127.0.0.1:1/x")
        .await
        .expect_err("nothing listens on port 1");
    assert!(err.is_unavailable(), "{err:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn an_unknown_url_scheme_is_unsupported() {
    let err = RunStore::connect("mysql://localhost/x")
        .await
        .expect_err("mysql");
    assert!(matches!(err, RunsError::UnsupportedUrl(_)), "{err:?}");
    assert!(!err.is_unavailable());
}

#[tokio::test]
async fn an_in_memory_sqlite_keeps_its_data() {
    let store = RunStore::connect("sqlite::memory:").await.unwrap();
    store.migrate().await.unwrap();
    let id = store.create_run(&new_run("manual")).await.unwrap();
    assert_eq!(store.get(id).await.unwrap().unwrap().run_id, id);
}

#[tokio::test]
async fn a_missing_sqlite_folder_is_a_query_error() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_in(&dir.path().join("missing"));
    let err = RunStore::connect(&url).await.expect_err("no such folder");
    assert!(matches!(err, RunsError::Query(_)), "{err:?}");
}

#[tokio::test]
async fn a_fresh_postgres_database_is_dropped_with_its_guard() {
    use sqlx::Connection as _;
    let db = fresh_postgres().await;
    let store = db.store().await.unwrap();
    store.create_run(&new_run("manual")).await.unwrap();
    let name = db.name.clone();
    let admin = std::env::var("DOODLE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| doodle_runs::test_support::DEFAULT_POSTGRES_URL.to_owned());
    drop(db); // with the store's connections still open
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0, "{name} was not dropped");
    assert!(store.ping().await.is_err(), "its connections were closed");
}

#[tokio::test]
async fn an_sqlite_file_is_wal_with_fixed_width_utc_times() {
    let dir = tempfile::tempdir().unwrap();
    let store = RunStore::connect(&sqlite_in(dir.path())).await.unwrap();
    store.migrate().await.unwrap();
    let id = store.create_run(&new_run("manual")).await.unwrap();
    store
        .set_stage(id, 1, StageStatus::Complete, None)
        .await
        .unwrap();
    assert!(dir.path().join("runs.db").is_file());
    assert!(dir.path().join("runs.db-wal").is_file(), "WAL mode");

    let pool = sqlx::SqlitePool::connect(&sqlite_in(dir.path()))
        .await
        .unwrap();
    let (start, end): (String, String) =
        sqlx::query_as("SELECT start_time, stage_1_end FROM pipeline_runs")
            .fetch_one(&pool)
            .await
            .unwrap();
    for text in [start, end] {
        // 2024-05-01T12:00:00.000000Z: sorting the text sorts the times.
        assert_eq!(text.len(), 27, "{text}");
        assert_eq!((&text[10..11], &text[19..20], &text[26..]), ("T", ".", "Z"));
    }
}
