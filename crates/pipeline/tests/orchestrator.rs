//! The real `pipeline-orchestrator` binary over fake stages (shell scripts) and real run
//! databases: SQLite, and a fresh PostgreSQL database per test.

#[path = "orchestrator/helpers.rs"]
mod helpers;

use std::time::Duration;

use doodle_pipeline::lockfile::{FileLock, Holder};
use doodle_runs::{NewRun, StageStatus};
use helpers::{Db, World, dead_pid, eventually, gone};
use rustix::process::Signal;

use StageStatus::{Complete, Failed, NotTriggered};

fn statuses(run: &doodle_runs::Run) -> Vec<StageStatus> {
    run.stages.iter().map(|stage| stage.status).collect()
}

fn message(run: &doodle_runs::Run, n: usize) -> &str {
    run.stage(n).message.as_deref().unwrap_or("")
}

// ---------------------------------------------------------------------------------------------
// Every stage succeeds.

async fn all_stages_complete(db: Db) {
    let world = World::new(db).await;
    let ended = world.run(&[]).await;
    assert_eq!(ended.code(), Some(0), "{ended:?}");

    let run = world.get(1).await;
    assert_eq!(statuses(&run), vec![Complete; 7]);
    for (n, stage) in run.stages.iter().enumerate() {
        let (start, end) = (stage.start.unwrap(), stage.end.unwrap());
        assert!(start <= end, "stage {}: {start} > {end}", n + 1);
    }
    assert!(run.end_time.is_some());
    assert_eq!(run.trigger, "once");
    assert!(run.pid > 0 && !run.host.is_empty());
    assert_eq!(run.output.new_images, Some(50));
    assert_eq!(run.output.data_commit.as_deref(), Some("abc123"));
    assert_eq!(run.output.data_hash.as_deref(), Some("d41d8cd9"));
    assert_eq!(run.output.model_version.as_deref(), Some("7"));
    assert_eq!(run.output.promoted, Some(true));

    for n in 1..=7 {
        let log = world.stage_log(1, n);
        assert!(
            log.contains(&format!("stage {n} of run 1 starting")),
            "{log}"
        );
        assert!(
            log.contains(&format!("stage {n} says hello on stderr")),
            "{log}"
        );
        assert!(log.lines().any(|line| line == "success"), "{log}");
    }
    let log = world.orchestrator_log();
    assert_eq!(log.matches("first_line_ms=").count(), 14, "{log}");
    assert!(log.contains("stage 7 complete"), "{log}");
    assert!(log.contains(r#"last_lines=["#), "{log}");
    let lock = std::fs::read_to_string(world.lock_path()).unwrap();
    assert_eq!(lock, "", "a clean exit leaves no holder in the lock file");
}

#[tokio::test]
async fn all_stages_complete_sqlite() {
    all_stages_complete(Db::Sqlite).await;
}

#[tokio::test]
async fn all_stages_complete_postgres() {
    all_stages_complete(Db::Postgres).await;
}

// ---------------------------------------------------------------------------------------------
// Stage 1 and the threshold.

#[tokio::test]
async fn below_the_threshold_the_rest_is_not_triggered() {
    let mut world = World::new(Db::Sqlite).await;
    let scan = world.script(
        "scan.sh",
        r#"echo 'result: {"new_images": 12}'; echo success"#,
    );
    world.stage(1, &scan);
    let ended = world.run(&["--once"]).await;
    assert_eq!(ended.code(), Some(0), "{ended:?}");

    let run = world.get(1).await;
    assert_eq!(statuses(&run)[0], Complete);
    assert_eq!(statuses(&run)[1..], [NotTriggered; 6]);
    for n in 2..=7 {
        assert_eq!(message(&run, n), "12 new images, below the threshold of 20");
    }
    assert_eq!(run.output.new_images, Some(12));
    assert!(run.end_time.is_some());
    assert!(!world.ran(2));
}

#[tokio::test]
async fn a_scan_without_new_images_fails_stage_1() {
    let mut world = World::new(Db::Sqlite).await;
    let scan = world.script(
        "scan.sh",
        r#"echo 'result: {"summary": "forgot"}'; echo success"#,
    );
    world.stage(1, &scan);
    let ended = world.run(&[]).await;
    assert_eq!(ended.code(), Some(1), "{ended:?}");
    let run = world.get(1).await;
    assert_eq!(statuses(&run), vec![Failed; 7]);
    assert!(message(&run, 1).contains("new_images"), "{run:?}");
}

// ---------------------------------------------------------------------------------------------
// A failing stage halts the run.

async fn a_failing_stage_halts_the_run(db: Db) {
    let mut world = World::new(db).await;
    let convert = world.script(
        "convert.sh",
        "echo converting\necho 'failure: disk full'\nexit 1",
    );
    world.stage(3, &convert);
    let ended = world.run(&[]).await;
    assert_eq!(ended.code(), Some(1), "{ended:?}");

    let run = world.get(1).await;
    assert_eq!(
        statuses(&run),
        [Complete, Complete, Failed, Failed, Failed, Failed, Failed]
    );
    assert_eq!(message(&run, 3), "disk full");
    for n in 4..=7 {
        assert_eq!(message(&run, n), "not run: stage 3 failed");
        assert!(!world.ran(n), "stage {n} was started");
    }
    assert!(run.end_time.is_some());
    assert!(world.stage_log(1, 3).contains("failure: disk full"));
    let log = world.orchestrator_log();
    assert!(log.contains("stage 3 failed: disk full"), "{log}");
}

#[tokio::test]
async fn a_failing_stage_halts_the_run_sqlite() {
    a_failing_stage_halts_the_run(Db::Sqlite).await;
}

#[tokio::test]
async fn a_failing_stage_halts_the_run_postgres() {
    a_failing_stage_halts_the_run(Db::Postgres).await;
}

#[tokio::test]
async fn without_a_failure_line_the_exit_status_is_the_reason() {
    let mut world = World::new(Db::Sqlite).await;
    let all_ok = world.commands.clone();
    let merge = world.script("merge.sh", "exit 4");
    world.stage(2, &merge);
    assert_eq!(world.run(&[]).await.code(), Some(1));
    assert_eq!(message(&world.get(1).await, 2), "exited with status 4");

    world.commands = all_ok;
    let convert = world.script("convert.sh", "kill -9 $$");
    world.stage(3, &convert);
    assert_eq!(world.run(&[]).await.code(), Some(1));
    assert_eq!(
        message(&world.get(2).await, 3),
        "killed by signal 9 (SIGKILL)"
    );
}

#[tokio::test]
async fn a_missing_program_fails_its_stage_saying_where_it_looked() {
    let mut world = World::new(Db::Sqlite).await;
    world.commands[4] = vec!["no-such-stage-program".into()];
    let ended = world.run(&[]).await;
    assert_eq!(ended.code(), Some(1), "{ended:?}");

    let run = world.get(1).await;
    assert_eq!(statuses(&run)[..4], [Complete; 4]);
    assert_eq!(statuses(&run)[4..], [Failed; 3]);
    let why = message(&run, 5);
    assert!(why.contains("`no-such-stage-program` not found"), "{why}");
    assert!(
        why.contains("next to the orchestrator") && why.contains("PATH ("),
        "{why}"
    );
    assert!(!world.ran(6));
}

// ---------------------------------------------------------------------------------------------
// Time limits and stop signals kill the stage's whole process group.

/// A stage that starts a grandchild, writes both pids and waits forever.
fn hanging_stage(world: &World, ignore_term: bool) -> std::path::PathBuf {
    let trap = if ignore_term { "trap '' TERM" } else { "" };
    let body = r#"
sleep 300 &
echo $! > "$MARKS/grandchild.pid"
echo $$ > "$MARKS/stage.pid"
echo waiting
sleep 300
echo never"#;
    world.script("hang.sh", &format!("{trap}{body}"))
}

#[tokio::test]
async fn a_stage_past_its_time_limit_is_killed_with_its_children() {
    let mut world = World::new(Db::Sqlite).await;
    let hang = hanging_stage(&world, true);
    world.stage(2, &hang);
    world.timeouts[1] = 1;
    let ended = world.run(&[]).await;
    assert_eq!(ended.code(), Some(1), "{ended:?}");
    // 1 s limit + 2 s grace (SIGTERM is ignored, so SIGKILL ends it) + start-up.
    assert!(
        ended.elapsed >= Duration::from_secs(1),
        "{:?}",
        ended.elapsed
    );
    assert!(
        ended.elapsed < Duration::from_secs(20),
        "{:?}",
        ended.elapsed
    );

    let run = world.get(1).await;
    assert_eq!(statuses(&run)[..2], [Complete, Failed]);
    assert_eq!(
        message(&run, 2),
        "timed out after 1 s; process group killed"
    );
    for name in ["stage.pid", "grandchild.pid"] {
        let pid = world.pid_file(name).await;
        assert!(gone(pid), "{name} {pid:?} survived");
    }
    assert!(!world.stage_log(1, 2).contains("never"));
}

async fn a_stop_signal_mid_stage(signal: Signal, name: &str, code: i32) {
    let mut world = World::new(Db::Sqlite).await;
    let hang = hanging_stage(&world, false);
    world.stage(2, &hang);
    let running = world.start(&[]);
    let stage = world.pid_file("stage.pid").await;
    let grandchild = world.pid_file("grandchild.pid").await;
    running.signal(signal);
    let ended = running.wait().await;
    assert_eq!(ended.code(), Some(code), "{ended:?}");
    assert!(
        ended.elapsed < Duration::from_secs(20),
        "{:?}",
        ended.elapsed
    );

    let run = world.get(1).await;
    assert_eq!(
        statuses(&run),
        [Complete, Failed, Failed, Failed, Failed, Failed, Failed]
    );
    assert_eq!(message(&run, 2), format!("stopped by {name}"));
    assert!(run.end_time.is_some());
    assert!(
        gone(stage) && gone(grandchild),
        "the stage's process group survived"
    );
    assert_eq!(std::fs::read_to_string(world.lock_path()).unwrap(), "");
}

#[tokio::test]
async fn sigterm_mid_stage_fails_it_kills_its_group_and_exits_143() {
    a_stop_signal_mid_stage(Signal::TERM, "SIGTERM", 143).await;
}

#[tokio::test]
async fn ctrl_c_mid_stage_fails_it_and_exits_130() {
    a_stop_signal_mid_stage(Signal::INT, "SIGINT", 130).await;
}

// ---------------------------------------------------------------------------------------------
// The run lock.

#[tokio::test]
async fn a_second_orchestrator_is_refused_and_names_the_holder() {
    let mut world = World::new(Db::Sqlite).await;
    let slow = world.script("slow.sh", "echo $$ > \"$MARKS/stage.pid\"\nsleep 300");
    world.stage(1, &slow);
    let first = world.start(&[]);
    world.pid_file("stage.pid").await;

    let second = world.run(&["--once"]).await;
    assert_eq!(second.code(), Some(3), "{second:?}");
    let pid = first.pid().as_raw_nonzero().to_string();
    assert!(
        second.stderr.contains(&format!("pid {pid} on host")),
        "{}",
        second.stderr
    );
    assert!(second.stderr.contains("(run 1)"), "{}", second.stderr);
    assert!(
        second.stdout.contains("the run lock is held by"),
        "{}",
        second.stdout
    );
    assert_eq!(
        world.runs().await.len(),
        1,
        "the second orchestrator created a run"
    );

    first.signal(Signal::TERM);
    assert_eq!(first.wait().await.code(), Some(143));
}

async fn a_stale_lock_is_taken_over(db: Db) {
    let world = World::new(db).await;
    let store = world.store().await;
    store.migrate().await.unwrap();
    let dead = dead_pid();
    let ghost = NewRun {
        trigger: "once".into(),
        host: "ghost-host".into(),
        pid: dead,
    };
    let old = store.create_run(&ghost).await.unwrap();
    store.set_stage(old, 1, Complete, None).await.unwrap();
    store
        .set_stage(old, 2, StageStatus::Running, None)
        .await
        .unwrap();
    std::fs::create_dir_all(world.state_dir()).unwrap();
    let holder = Holder {
        host: "ghost-host".into(),
        pid: dead,
        since: "2026-01-01T00:00:00Z".into(),
        run_id: Some(old),
        what: "pipeline-orchestrator".into(),
    };
    std::fs::write(world.lock_path(), serde_json::to_vec(&holder).unwrap()).unwrap();

    let ended = world.run(&[]).await;
    assert_eq!(ended.code(), Some(0), "{ended:?}");
    let reason =
        format!("orchestrator pid {dead} on host ghost-host stopped without finishing the run");
    let abandoned = world.get(old).await;
    assert_eq!(
        statuses(&abandoned),
        [Complete, Failed, Failed, Failed, Failed, Failed, Failed]
    );
    assert_eq!(message(&abandoned, 2), reason);
    assert!(abandoned.end_time.is_some());
    let mine = world.get(old + 1).await;
    assert_eq!(statuses(&mine), vec![Complete; 7]);
    let log = world.orchestrator_log();
    let takeover = format!("taking over the run lock left by pid {dead} on host ghost-host");
    assert!(log.contains(&takeover), "{log}");
}

#[tokio::test]
async fn a_stale_lock_is_taken_over_sqlite() {
    a_stale_lock_is_taken_over(Db::Sqlite).await;
}

#[tokio::test]
async fn a_stale_lock_is_taken_over_postgres() {
    a_stale_lock_is_taken_over(Db::Postgres).await;
}

#[tokio::test]
async fn after_an_orchestrator_is_sigkilled_the_next_one_takes_over() {
    let mut world = World::new(Db::Sqlite).await;
    let hang_once = world.script(
        "hang-once.sh",
        r#"if [ "$DOODLE_RUN_ID" = 1 ]; then echo $$ > "$MARKS/stage.pid"; sleep 300; fi
echo 'result: {}'"#,
    );
    world.stage(2, &hang_once);
    let first = world.start(&[]);
    let orphan = world.pid_file("stage.pid").await;
    let dead = first.pid().as_raw_nonzero().get();
    first.signal(Signal::KILL);
    assert!(!first.wait().await.status.success());

    let ended = world.run(&[]).await;
    // The first orchestrator's stage outlives it (its own process group): end it.
    let _ = rustix::process::kill_process_group(orphan, Signal::KILL);
    assert_eq!(ended.code(), Some(0), "{ended:?}");
    let abandoned = world.get(1).await;
    assert_eq!(statuses(&abandoned)[..3], [Complete, Failed, Failed]);
    let why = message(&abandoned, 2);
    assert!(
        why.starts_with(&format!("orchestrator pid {dead} on host ")),
        "{why}"
    );
    assert!(why.ends_with("stopped without finishing the run"), "{why}");
    assert_eq!(statuses(&world.get(2).await), vec![Complete; 7]);
}

// ---------------------------------------------------------------------------------------------
// Scheduled runs.

/// Waits until `n` runs have ended, then SIGTERMs the schedule; 0 when it lands between runs,
/// 143 (and that run stopped) when a new run had already begun.
async fn stop_schedule_after(
    world: &World,
    running: helpers::Running,
    n: usize,
) -> Vec<doodle_runs::Run> {
    world.ended_runs(n).await;
    running.signal(Signal::TERM);
    let ended = running.wait().await;
    let runs = world.runs().await;
    match ended.code() {
        Some(0) => assert!(runs.iter().all(|run| run.end_time.is_some())),
        Some(143) => {
            let last = runs.last().unwrap();
            assert!(
                last.stages
                    .iter()
                    .any(|s| s.message.as_deref().is_some_and(|m| m.contains("SIGTERM")))
            );
        }
        other => panic!("exit {other:?}: {ended:?}"),
    }
    runs
}

#[tokio::test]
async fn every_runs_on_a_schedule_until_sigterm() {
    let world = World::new(Db::Sqlite).await;
    let running = world.start(&["--every", "1s"]);
    let runs = stop_schedule_after(&world, running, 2).await;
    assert!(runs.iter().all(|run| run.trigger == "schedule"), "{runs:?}");
    let complete = runs.iter().filter(|run| statuses(run) == vec![Complete; 7]);
    assert!(complete.count() >= 2, "{runs:?}");
    let starts: Vec<_> = runs.iter().map(|run| run.start_time).collect();
    assert!(
        starts[1] - starts[0] >= time::Duration::milliseconds(900),
        "{starts:?}"
    );
}

#[tokio::test]
async fn a_schedule_goes_on_after_failed_and_refused_runs() {
    let mut world = World::new(Db::Sqlite).await;
    let convert = world.script("convert.sh", "echo 'failure: bad data'\nexit 1");
    world.stage(3, &convert);
    std::fs::create_dir_all(world.state_dir()).unwrap();
    let mut held = FileLock::try_acquire(&world.lock_path()).unwrap().unwrap();
    held.write_holder(&Holder::this_process("a test", None))
        .unwrap();

    let running = world.start(&["--every", "1s"]);
    let log_says = |text: &str| {
        let log = world.orchestrator_log();
        log.contains(text)
    };
    eventually("a refused run", || log_says("the run lock is held by")).await;
    held.release().unwrap();
    let runs = stop_schedule_after(&world, running, 2).await;
    let failed_at_3 = runs
        .iter()
        .filter(|run| run.stage(3).status == Failed && message(run, 3) == "bad data");
    assert!(failed_at_3.count() >= 2, "{runs:?}");
}

#[tokio::test]
async fn between_scheduled_runs_a_manual_run_works_and_sigterm_exits_0_at_once() {
    let world = World::new(Db::Sqlite).await;
    let schedule = world.start(&["--every", "1h"]);
    world.ended_runs(1).await;

    let manual = world.run(&["--once"]).await;
    assert_eq!(manual.code(), Some(0), "{manual:?}");
    assert_eq!(world.get(2).await.trigger, "once");

    let signalled = std::time::Instant::now();
    schedule.signal(Signal::TERM);
    let ended = schedule.wait().await;
    assert_eq!(ended.code(), Some(0), "{ended:?}");
    assert!(signalled.elapsed() < Duration::from_secs(10));
    assert_eq!(world.runs().await.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// --check: the container HEALTHCHECK. It says what it checked and changes nothing.

#[tokio::test]
async fn check_passes_when_the_database_answers_and_every_program_is_found() {
    let world = World::new(Db::Postgres).await;
    let ended = world.run(&["--check"]).await;
    assert_eq!(ended.code(), Some(0), "{ended:?}");
    assert!(ended.stdout.contains("ok: database answers"), "{ended:?}");
    for n in 1..=7 {
        assert!(
            ended.stdout.contains(&format!("ok: stage {n}: ")),
            "{ended:?}"
        );
    }
    // Nothing was created: not even the table a run would need (only a run migrates).
    let count = world.store().await.count().await;
    assert!(
        count.is_err(),
        "--check must not migrate or start a run: {count:?}"
    );
    assert!(
        !world.log_dir().join("pipeline_orchestrator.log").exists(),
        "--check must not write the orchestrator's log"
    );
}

#[tokio::test]
async fn check_fails_naming_a_missing_stage_program() {
    let mut world = World::new(Db::Sqlite).await;
    world.commands[5] = vec!["no-such-stage-program".into()];
    let ended = world.run(&["--check"]).await;
    assert_eq!(ended.code(), Some(2), "{ended:?}");
    assert!(
        ended
            .stderr
            .contains("stage 6: program `no-such-stage-program` not found"),
        "{ended:?}"
    );
}

#[tokio::test]
async fn check_fails_when_the_database_does_not_answer() {
    let mut world = World::new(Db::Sqlite).await;
    // A port nothing listens on: refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    world.db_url = format!("postgres://postgres@127.0.0.1:{port}/none");
    let ended = world.run(&["--check"]).await;
    assert_eq!(ended.code(), Some(2), "{ended:?}");
    assert!(
        ended
            .stderr
            .contains("pipeline-orchestrator --check: database:"),
        "{ended:?}"
    );
}
