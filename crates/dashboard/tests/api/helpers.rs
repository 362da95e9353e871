//! `spawn_app`: the real app on port 0 over a fresh database, with a writer `RunStore` to seed
//! it, a log folder, and request helpers; `TcpProxy` to take PostgreSQL away and bring it back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use doodle_core::config::DashboardSettings;
use doodle_dashboard::{Application, DashboardConfig};
use doodle_runs::test_support::{FreshDatabase, fresh_postgres, sqlite_in};
use doodle_runs::{NewRun, RunId, RunOutput, RunStore, StageStatus};
use tempfile::TempDir;
use time::OffsetDateTime;
use time::macros::format_description;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// One test's database.
pub enum TestDb {
    Sqlite(TempDir),
    Postgres(FreshDatabase),
}

impl TestDb {
    pub async fn new(kind: Kind) -> Self {
        match kind {
            Kind::Sqlite => Self::Sqlite(tempfile::tempdir().unwrap()),
            Kind::Postgres => Self::Postgres(fresh_postgres().await),
        }
    }

    pub fn url(&self) -> String {
        match self {
            Self::Sqlite(dir) => sqlite_in(dir.path()),
            Self::Postgres(db) => db.url.clone(),
        }
    }
}

pub struct TestApp {
    pub url: String,
    pub client: reqwest::Client,
    /// A second pool on the same database: what the orchestrator would write with.
    pub store: RunStore,
    pub log_dir: TempDir,
    pub db: TestDb,
}

/// Small pages and a short database timeout, so the tests stay quick.
pub fn test_settings() -> DashboardSettings {
    DashboardSettings {
        port: 0,
        default_limit: 100,
        max_limit: 500,
        log_tail_bytes: 4096,
        db_timeout_ms: 500,
        ..DashboardSettings::default()
    }
}

pub async fn spawn_app(kind: Kind) -> TestApp {
    let db = TestDb::new(kind).await;
    let url = db.url();
    spawn_app_on(db, &url, test_settings()).await
}

/// The app on `app_url` (the database's URL, or a proxy's in front of it).
pub async fn spawn_app_on(db: TestDb, app_url: &str, settings: DashboardSettings) -> TestApp {
    doodle_core::telemetry::init_for_tests();
    let log_dir = tempfile::tempdir().unwrap();
    let url = start(app_url, log_dir.path(), settings).await;
    let store = RunStore::connect(&db.url()).await.unwrap();
    store.migrate().await.unwrap();
    TestApp {
        url,
        client: reqwest::Client::new(),
        store,
        log_dir,
        db,
    }
}

/// Start an app; its base URL.
pub async fn start(
    database_url: &str,
    log_dir: &std::path::Path,
    settings: DashboardSettings,
) -> String {
    let config = DashboardConfig {
        dashboard: settings,
        database_url: database_url.to_owned(),
        log_dir: log_dir.to_path_buf(),
    };
    let app = Application::build(config).await.expect("the app builds");
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    url
}

impl TestApp {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("the app answers")
    }

    /// GET → (status, JSON body).
    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self.get(path).await;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("GET {path}: {status}, not JSON ({e}): {text}"));
        (status, json)
    }

    /// The list's run ids, in the order answered.
    pub async fn ids(&self, path: &str) -> Vec<i64> {
        let (status, body) = self.get_json(path).await;
        assert_eq!(status, 200, "{body}");
        body.as_array()
            .unwrap()
            .iter()
            .map(|r| r["run_id"].as_i64().unwrap())
            .collect()
    }

    /// A request written byte for byte on a socket (no client normalises `..` or `%2e` away):
    /// (status, body).
    pub async fn raw_get(&self, path: &str) -> (u16, String) {
        let addr = self.url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line: {answer}"));
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// Set a run's `column` (`start_time`, `stage_N_start`, ...) to `t`, in the database's own
    /// format (the store never writes a time of our choosing).
    pub async fn set_time(&self, run: RunId, column: &str, t: OffsetDateTime) {
        let sql = format!("UPDATE pipeline_runs SET {column} = $1 WHERE run_id = $2");
        match &self.db {
            TestDb::Sqlite(_) => {
                let pool = sqlx::SqlitePool::connect(&self.db.url()).await.unwrap();
                let text = t
                    .format(format_description!(
                        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
                    ))
                    .unwrap();
                sqlx::query(&sql)
                    .bind(text)
                    .bind(run)
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            }
            TestDb::Postgres(_) => {
                let pool = sqlx::PgPool::connect(&self.db.url()).await.unwrap();
                sqlx::query(&sql)
                    .bind(t)
                    .bind(run)
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            }
        }
    }
}

// --- runs in every state, written as the orchestrator writes them ---------------------------

fn new_run() -> NewRun {
    NewRun {
        trigger: "schedule".into(),
        host: "test-host".into(),
        pid: 4242,
    }
}

async fn run_stages(store: &RunStore, run: RunId, stages: std::ops::RangeInclusive<usize>) {
    for n in stages {
        store
            .set_stage(run, n, StageStatus::Running, None)
            .await
            .unwrap();
        store
            .set_stage(run, n, StageStatus::Complete, None)
            .await
            .unwrap();
    }
}

pub const GATE_REPORT: &str = r#"{"promote":true,"champion_top1":0.81,"candidate_top1":0.83}"#;

/// Every stage complete; 40 new drawings, data version, model version 4, promoted.
pub async fn complete_run(store: &RunStore) -> RunId {
    let run = store.create_run(&new_run()).await.unwrap();
    run_stages(store, run, 1..=7).await;
    let output = RunOutput {
        new_images: Some(40),
        data_commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        data_hash: Some("d41d8cd98f00b204e9800998ecf8427e.dir".into()),
        model_version: Some("4".into()),
        promoted: Some(true),
        gate_report: Some(GATE_REPORT.into()),
    };
    store.record(run, &output).await.unwrap();
    store.finish_run(run).await.unwrap();
    run
}

pub const FAILURE: &str = "3 of 40 drawings could not be decoded: cat/7.png: not a PNG";

/// Stages 1–2 complete, stage 3 failed with [`FAILURE`] (so 4–7 failed, not run).
pub async fn failed_run(store: &RunStore) -> RunId {
    let run = store.create_run(&new_run()).await.unwrap();
    run_stages(store, run, 1..=2).await;
    store
        .set_stage(run, 3, StageStatus::Running, None)
        .await
        .unwrap();
    store
        .set_stage(run, 3, StageStatus::Failed, Some(FAILURE))
        .await
        .unwrap();
    run
}

/// Stages 1–4 complete, stage 5 running.
pub async fn running_run(store: &RunStore) -> RunId {
    let run = store.create_run(&new_run()).await.unwrap();
    run_stages(store, run, 1..=4).await;
    store
        .set_stage(run, 5, StageStatus::Running, None)
        .await
        .unwrap();
    run
}

pub const NOT_ENOUGH: &str = "3 new drawings, fewer than the threshold of 20";

/// Stage 1 complete, 2–7 not triggered.
pub async fn not_triggered_run(store: &RunStore) -> RunId {
    let run = store.create_run(&new_run()).await.unwrap();
    run_stages(store, run, 1..=1).await;
    store
        .mark_not_triggered(run, 2..=7, NOT_ENOUGH)
        .await
        .unwrap();
    store.finish_run(run).await.unwrap();
    run
}

/// Just created: every stage waiting.
pub async fn waiting_run(store: &RunStore) -> RunId {
    store.create_run(&new_run()).await.unwrap()
}

/// `n` plain runs (waiting), ids ascending.
pub async fn many_runs(store: &RunStore, n: usize) -> Vec<RunId> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(waiting_run(store).await);
    }
    ids
}

// --- a database that goes away ---------------------------------------------------------------

/// A TCP proxy in front of PostgreSQL: `cut` closes every connection through it and makes it
/// close new ones as soon as they arrive (what a client sees of a crashed server), `restore`
/// lets them through again. The shared test server itself is never stopped.
pub struct TcpProxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    kill: broadcast::Sender<()>,
}

impl TcpProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (kill, _) = broadcast::channel(4);
        let (up2, kill2) = (up.clone(), kill.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut killed = kill2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = killed.recv() => {}
                    }
                });
            }
        });
        Self { addr, up, kill }
    }

    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        let _ = self.kill.send(());
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn url_for(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap();
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        let userinfo = authority
            .rsplit_once('@')
            .map(|(u, _)| format!("{u}@"))
            .unwrap_or_default();
        format!("{scheme}://{userinfo}{}{path}", self.addr)
    }
}

/// The address in a PostgreSQL URL (`postgres://user@host:port/db`).
pub fn server_addr(url: &str) -> SocketAddr {
    let rest = url.split_once("://").unwrap().1;
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    let host_port = host_port.replace("localhost", "127.0.0.1");
    host_port
        .parse()
        .unwrap_or_else(|e| panic!("{host_port}: {e}"))
}

/// Poll `check` every 100 ms until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `$name(kind)` once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::helpers::Kind::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::helpers::Kind::Postgres).await;
                }
            )*
        }
    };
}
