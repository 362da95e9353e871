//! A test's world: temp folders, a run database (SQLite or a fresh PostgreSQL), fake stages as
//! shell scripts, and the real `pipeline-orchestrator` binary started on a config.toml.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use doodle_runs::test_support::{FreshDatabase, fresh_postgres, sqlite_in};
use doodle_runs::{Run, RunId, RunStore, STAGES};
use rustix::process::{Pid, Signal};
use tempfile::TempDir;

/// The orchestrator under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_pipeline-orchestrator");
/// Long enough for anything a test waits for on a busy 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Which run database a test uses.
#[derive(Debug, Clone, Copy)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Temp folders, a database, seven stage commands and a threshold.
pub struct World {
    pub dir: TempDir,
    pub db_url: String,
    _postgres: Option<FreshDatabase>,
    pub commands: [Vec<String>; STAGES],
    pub timeouts: [u64; STAGES],
    pub threshold: u64,
}

/// A finished orchestrator.
#[derive(Debug)]
pub struct Ended {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Ended {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// A running orchestrator (killed if the test panics).
pub struct Running {
    pub child: Child,
    pub started: Instant,
    out: PathBuf,
    err: PathBuf,
}

impl World {
    /// Every stage succeeds: stage 1 finds 50 new images (threshold 20), stage 4 versions the
    /// data, stage 6 registers model 7 and promotes it.
    pub async fn new(db: Db) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (db_url, postgres) = match db {
            Db::Sqlite => (sqlite_in(dir.path()), None),
            Db::Postgres => {
                let fresh = fresh_postgres().await;
                (fresh.url.clone(), Some(fresh))
            }
        };
        let mut world = Self {
            dir,
            db_url,
            _postgres: postgres,
            commands: Default::default(),
            timeouts: [60; STAGES],
            threshold: 20,
        };
        let ok = world.ok_script();
        let results = [
            r#"{"new_images": 50}"#,
            r#"{"summary": "merged"}"#,
            r#"{"summary": "converted"}"#,
            r#"{"data_commit": "abc123", "data_hash": "d41d8cd9"}"#,
            r#"{"model_version": "7"}"#,
            r#"{"model_version": "7", "promoted": true}"#,
            r#"{}"#,
        ];
        for (n, result) in results.iter().enumerate() {
            world.commands[n] = vec![ok.display().to_string(), (*result).to_string()];
        }
        world
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The fake stage that succeeds: a line on each stream, a marker file, `result: $1`, `success`.
    fn ok_script(&self) -> PathBuf {
        self.script(
            "ok.sh",
            r#"echo "stage $DOODLE_STAGE of run $DOODLE_RUN_ID starting"
echo "stage $DOODLE_STAGE says hello on stderr" >&2
touch "$MARKS/ran$DOODLE_STAGE"
echo "result: $1"
echo success"#,
        )
    }

    /// An executable `/bin/sh` script `name` in the test folder; `$MARKS` is the marker folder.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let marks = self.marks();
        std::fs::create_dir_all(&marks).unwrap();
        let path = self.path().join(name);
        let text = format!("#!/bin/sh\nMARKS='{}'\n{body}\n", marks.display());
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// Stage `n` runs `script` (a path from [`World::script`]).
    pub fn stage(&mut self, n: usize, script: &Path) {
        self.commands[n - 1] = vec![script.display().to_string()];
    }

    /// Where scripts leave marker files (`ran<N>`, pid files).
    pub fn marks(&self) -> PathBuf {
        self.path().join("marks")
    }

    pub fn ran(&self, n: usize) -> bool {
        self.marks().join(format!("ran{n}")).exists()
    }

    pub fn log_dir(&self) -> PathBuf {
        self.path().join("logs")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.path().join("state")
    }

    pub fn lock_path(&self) -> PathBuf {
        self.state_dir().join("orchestrator.lock")
    }

    fn write_config(&self) -> PathBuf {
        let text = format!(
            "[telemetry]\nlog_dir = {}\nlevel = \"info\"\n\n[database]\nurl = {}\n\n[pipeline]\n\
             state_dir = {}\nfile_threshold = {}\nstage_timeout_secs = {}\nstage_commands = {}\n",
            toml(&self.log_dir()),
            toml(&self.db_url),
            toml(&self.state_dir()),
            self.threshold,
            toml(&self.timeouts),
            toml(&self.commands),
        );
        let path = self.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Start the orchestrator with `args`; its stdout and stderr go to files.
    pub fn start(&self, args: &[&str]) -> Running {
        let config = self.write_config();
        static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let out = self.path().join(format!("orchestrator{n}.out"));
        let err = self.path().join(format!("orchestrator{n}.err"));
        let mut command = Command::new(BIN);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("DOODLE_") || key == "RUST_LOG" {
                command.env_remove(key);
            }
        }
        let child = command
            .args(args)
            .env("DOODLE_CONFIG", config)
            .current_dir(self.path())
            .stdin(Stdio::null())
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap())
            .spawn()
            .unwrap();
        Running {
            child,
            started: Instant::now(),
            out,
            err,
        }
    }

    /// Run the orchestrator with `args` to its end.
    pub async fn run(&self, args: &[&str]) -> Ended {
        self.start(args).wait().await
    }

    pub async fn store(&self) -> RunStore {
        RunStore::connect(&self.db_url).await.unwrap()
    }

    pub async fn get(&self, run: RunId) -> Run {
        self.store()
            .await
            .get(run)
            .await
            .unwrap()
            .expect("the run exists")
    }

    /// Every run, oldest first.
    pub async fn runs(&self) -> Vec<Run> {
        let mut runs = self.store().await.list(1000, 0).await.unwrap();
        runs.sort_by_key(|run| run.run_id);
        runs
    }

    /// Wait until at least `n` runs have ended (at most [`PATIENCE`]).
    pub async fn ended_runs(&self, n: usize) {
        let store = self.store().await;
        let started = Instant::now();
        loop {
            let runs = store.list(1000, 0).await.unwrap_or_default();
            if runs.iter().filter(|run| run.end_time.is_some()).count() >= n {
                return;
            }
            assert!(started.elapsed() < PATIENCE, "fewer than {n} runs ended");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The run's own log of stage `n`, as the orchestrator wrote it.
    pub fn stage_log(&self, run: RunId, n: usize) -> String {
        let path = self.log_dir().join(format!("runs/{run}/stage{n}.log"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    pub fn orchestrator_log(&self) -> String {
        std::fs::read_to_string(self.log_dir().join("pipeline_orchestrator.log"))
            .unwrap_or_default()
    }

    /// The pid a script wrote into `marks/<name>`, waiting for the file.
    pub async fn pid_file(&self, name: &str) -> Pid {
        let path = self.marks().join(name);
        eventually(&format!("{} to be written", path.display()), || {
            std::fs::read_to_string(&path).is_ok_and(|text| text.ends_with('\n'))
        })
        .await;
        let text = std::fs::read_to_string(&path).unwrap();
        Pid::from_raw(text.trim().parse().unwrap()).unwrap()
    }
}

/// A TOML value written as JSON (JSON strings and arrays of them are valid TOML).
fn toml<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap()
}

impl Running {
    pub fn pid(&self) -> Pid {
        Pid::from_child(&self.child)
    }

    pub fn signal(&self, signal: Signal) {
        rustix::process::kill_process(self.pid(), signal).unwrap();
    }

    /// Wait for the end (at most [`PATIENCE`]).
    pub async fn wait(mut self) -> Ended {
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                self.started.elapsed() < PATIENCE,
                "the orchestrator is still running after {PATIENCE:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
        Ended {
            status,
            stdout: read(&self.out),
            stderr: read(&self.err),
            elapsed: self.started.elapsed(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Poll `condition` every 20 ms until it holds; panic after [`PATIENCE`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < PATIENCE, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The process is gone: no such pid, or only its zombie is left (its parent died and this
/// container's init does not reap orphans; a zombie runs nothing).
pub fn gone(pid: Pid) -> bool {
    if rustix::process::test_kill_process(pid).is_err() {
        return true;
    }
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero()));
    // "<pid> (<comm>) <state> ...": the state follows the last ')'.
    stat.is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'))
    })
}

/// A pid no process has: a child that has exited and been reaped.
pub fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}
