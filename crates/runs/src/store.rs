//! [`RunStore`]: the operations on `pipeline_runs`, the same SQL for SQLite and PostgreSQL.

use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Executor as _, Row as _};

use crate::codec::{db_error, decode_run, migrate_error, now};
use crate::{
    NewRun, Run, RunId, RunOutcome, RunOutput, RunStats, RunsError, STAGES, StageStatus,
    check_range, check_stage, sql,
};

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");

/// How long a PostgreSQL connection may take before the server counts as unreachable.
const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long an SQLite writer waits for another process's write to finish.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection pool to the run database.
#[derive(Debug, Clone)]
pub struct RunStore {
    pool: Pool,
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$p` bound to whichever pool `$store` holds: one body, written once,
/// compiled for each database.
macro_rules! on_pool {
    ($store:expr, $p:ident => $body:expr) => {
        match &$store.pool {
            Pool::Sqlite($p) => $body,
            Pool::Postgres($p) => $body,
        }
    };
}

impl RunStore {
    /// Connect to `url` (`sqlite://path?mode=rwc` creates the file; `postgres://…`). Does not
    /// migrate. An unreachable server is [`RunsError::Unavailable`].
    ///
    /// An SQLite file is opened in WAL mode with a busy timeout, so an orchestrator writing and a
    /// dashboard reading from another process do not get "database is locked".
    pub async fn connect(url: &str) -> Result<Self, RunsError> {
        let pool = if url.starts_with("sqlite:") {
            Pool::Sqlite(connect_sqlite(url).await?)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Pool::Postgres(connect_postgres(url).await?)
        } else {
            return Err(RunsError::UnsupportedUrl(url.to_owned()));
        };
        Ok(Self { pool })
    }

    /// Like [`connect`](Self::connect), but nothing is opened yet: the first query connects, and
    /// a database that is down now (or goes down later) is [`RunsError::Unavailable`] for each
    /// query until it is back, then the pool reconnects by itself. For a reader that must start
    /// and keep serving while the database comes and goes (the dashboard). A query waits at most
    /// `acquire_timeout` for a connection.
    pub fn connect_lazy(url: &str, acquire_timeout: Duration) -> Result<Self, RunsError> {
        let pool = if url.starts_with("sqlite:") {
            Pool::Sqlite(
                sqlite_pool_options(url)
                    .acquire_timeout(acquire_timeout)
                    .connect_lazy_with(sqlite_options(url)?),
            )
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Pool::Postgres(
                PgPoolOptions::new()
                    .acquire_timeout(acquire_timeout)
                    .connect_lazy(url)
                    .map_err(db_error)?,
            )
        } else {
            return Err(RunsError::UnsupportedUrl(url.to_owned()));
        };
        Ok(Self { pool })
    }

    /// "Initialize": run the migrations for this database (idempotent).
    pub async fn migrate(&self) -> Result<(), RunsError> {
        match &self.pool {
            Pool::Sqlite(p) => SQLITE_MIGRATOR.run(p).await,
            Pool::Postgres(p) => POSTGRES_MIGRATOR.run(p).await,
        }
        .map_err(migrate_error)
    }

    /// A new run, every stage `waiting`, `start_time` now → its id.
    pub async fn create_run(&self, new: &NewRun) -> Result<RunId, RunsError> {
        on_pool!(self, p => {
            sqlx::query(sql::CREATE_RUN)
                .bind(now())
                .bind(&new.trigger)
                .bind(&new.host)
                .bind(i64::from(new.pid))
                .fetch_one(p)
                .await
                .and_then(|row| row.try_get(0))
        })
        .map_err(db_error)
    }

    /// Set stage `stage` (1-based) of `run` to `status`, with the times that status implies:
    /// `running` → start = now (end cleared); a final status → end = now (start kept, or now
    /// when it never ran; `not_triggered` leaves it empty). `failed` also marks every later
    /// stage that is still waiting or running `failed` with the message "not run: stage N
    /// failed" and sets the run's `end_time`, all in one statement. `message` is stored on the
    /// stage. (`waiting` clears both times.)
    pub async fn set_stage(
        &self,
        run: RunId,
        stage: usize,
        status: StageStatus,
        message: Option<&str>,
    ) -> Result<(), RunsError> {
        check_stage(stage)?;
        let sql = sql::set_stage(stage, status);
        let later = format!("not run: stage {stage} failed");
        let changed = on_pool!(self, p => {
            let mut query = sqlx::query(&sql).bind(run).bind(status.as_str()).bind(message);
            if status != StageStatus::Waiting {
                query = query.bind(now());
            }
            if status == StageStatus::Failed {
                query = query.bind(&later);
            }
            query.execute(p).await.map(|done| done.rows_affected())
        });
        expect_one(run, changed)
    }

    /// Mark stages `range` of `run` `not_triggered` (end = now), with `message`.
    pub async fn mark_not_triggered(
        &self,
        run: RunId,
        range: RangeInclusive<usize>,
        message: &str,
    ) -> Result<(), RunsError> {
        check_range(&range)?;
        let sql = sql::mark_not_triggered(range);
        let changed = on_pool!(self, p => {
            sqlx::query(&sql)
                .bind(run)
                .bind(now())
                .bind(message)
                .execute(p)
                .await
                .map(|done| done.rows_affected())
        });
        expect_one(run, changed)
    }

    /// Store what the run produced: each `Some` field of `output` overwrites; `None`s are kept.
    pub async fn record(&self, run: RunId, output: &RunOutput) -> Result<(), RunsError> {
        let changed = on_pool!(self, p => {
            sqlx::query(sql::RECORD)
                .bind(run)
                .bind(output.new_images)
                .bind(&output.data_commit)
                .bind(&output.data_hash)
                .bind(&output.model_version)
                .bind(output.promoted)
                .bind(&output.gate_report)
                .execute(p)
                .await
                .map(|done| done.rows_affected())
        });
        expect_one(run, changed)
    }

    /// Set the run's `end_time` to now.
    pub async fn finish_run(&self, run: RunId) -> Result<(), RunsError> {
        let changed = on_pool!(self, p => {
            sqlx::query(sql::FINISH_RUN)
                .bind(run)
                .bind(now())
                .execute(p)
                .await
                .map(|done| done.rows_affected())
        });
        expect_one(run, changed)
    }

    /// Every run that still has a `running` or `waiting` stage (left by an orchestrator that
    /// died): its running stage → `failed` with `reason`, waiting stages → `failed` with
    /// "not run: `reason`", end_time now, all in one statement (concurrent calls do not
    /// deadlock). Returns the ids it changed,
    /// ascending.
    pub async fn abandon_unfinished(&self, reason: &str) -> Result<Vec<RunId>, RunsError> {
        let not_run = format!("not run: {reason}");
        let sql = match self.pool {
            Pool::Sqlite(_) => &*sql::ABANDON_UNFINISHED_SQLITE,
            Pool::Postgres(_) => &*sql::ABANDON_UNFINISHED_POSTGRES,
        };
        let mut ids: Vec<RunId> = on_pool!(self, p => {
            sqlx::query(sql)
                .bind(now())
                .bind(reason)
                .bind(&not_run)
                .fetch_all(p)
                .await
                .and_then(|rows| rows.iter().map(|row| row.try_get(0)).collect())
        })
        .map_err(db_error)?;
        ids.sort_unstable();
        Ok(ids)
    }

    /// Runs newest first (`start_time` descending, then `run_id` descending), `limit` from
    /// `offset` (negative values count as 0).
    pub async fn list(&self, limit: i64, offset: i64) -> Result<Vec<Run>, RunsError> {
        self.page(&sql::LIST, limit, offset).await
    }

    /// Like [`list`](Self::list), without each run's `gate_report` (`None`; [`get`](Self::get)
    /// reads it): a page of runs for a table.
    pub async fn list_summaries(&self, limit: i64, offset: i64) -> Result<Vec<Run>, RunsError> {
        self.page(&sql::LIST_SUMMARIES, limit, offset).await
    }

    /// One page of a newest-first listing query (`$1` limit, `$2` offset, clamped at 0).
    async fn page(&self, query: &str, limit: i64, offset: i64) -> Result<Vec<Run>, RunsError> {
        on_pool!(self, p => {
            sqlx::query(query)
                .bind(limit.max(0))
                .bind(offset.max(0))
                .fetch_all(p)
                .await
                .and_then(|rows| rows.iter().map(decode_run).collect())
        })
        .map_err(db_error)
    }

    /// Totals over every run: runs by outcome, finished stages and their summed durations. Two
    /// scans of the table; for `/metrics`, not for every request.
    pub async fn stats(&self) -> Result<RunStats, RunsError> {
        let durations = match self.pool {
            Pool::Sqlite(_) => &*sql::STAGE_DURATIONS_SQLITE,
            Pool::Postgres(_) => &*sql::STAGE_DURATIONS_POSTGRES,
        };
        on_pool!(self, p => async {
            let mut stats = RunStats::default();
            for row in sqlx::query(&sql::OUTCOMES).fetch_all(p).await? {
                let outcome: String = row.try_get("outcome")?;
                let outcome: RunOutcome = outcome
                    .parse()
                    .map_err(|e: String| sqlx::Error::Decode(e.into()))?;
                stats.outcomes.push((outcome, row.try_get("runs")?));
            }
            stats.outcomes.sort_by_key(|(outcome, _)| outcome.as_str());
            let row = sqlx::query(durations).fetch_one(p).await?;
            for n in 1..=STAGES {
                stats.stages_finished[n - 1] = row.try_get(format!("finished_{n}").as_str())?;
                stats.stage_seconds[n - 1] = row.try_get(format!("seconds_{n}").as_str())?;
            }
            Ok::<_, sqlx::Error>(stats)
        }.await)
        .map_err(db_error)
    }

    /// How many runs there are.
    pub async fn count(&self) -> Result<i64, RunsError> {
        on_pool!(self, p => {
            sqlx::query(sql::COUNT).fetch_one(p).await.and_then(|row| row.try_get(0))
        })
        .map_err(db_error)
    }

    /// One run, or `None`.
    pub async fn get(&self, run: RunId) -> Result<Option<Run>, RunsError> {
        on_pool!(self, p => {
            sqlx::query(&sql::GET)
                .bind(run)
                .fetch_optional(p)
                .await
                .and_then(|row| row.as_ref().map(decode_run).transpose())
        })
        .map_err(db_error)
    }

    /// A trivial query: `Ok` when the database answers.
    pub async fn ping(&self) -> Result<(), RunsError> {
        on_pool!(self, p => p.execute("SELECT 1").await.map(drop)).map_err(db_error)
    }
}

/// An update of one run by id: no row changed means there is no such run.
fn expect_one(run: RunId, changed: Result<u64, sqlx::Error>) -> Result<(), RunsError> {
    match changed.map_err(db_error)? {
        0 => Err(RunsError::NoSuchRun(run)),
        _ => Ok(()),
    }
}

async fn connect_sqlite(url: &str) -> Result<SqlitePool, RunsError> {
    sqlite_pool_options(url)
        .connect_with(sqlite_options(url)?)
        .await
        .map_err(db_error)
}

fn sqlite_options(url: &str) -> Result<SqliteConnectOptions, RunsError> {
    Ok(SqliteConnectOptions::from_str(url)
        .map_err(db_error)?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(SQLITE_BUSY_TIMEOUT))
}

fn sqlite_pool_options(url: &str) -> SqlitePoolOptions {
    let pool = SqlitePoolOptions::new();
    if url.contains(":memory:") || url.contains("mode=memory") {
        // An in-memory database lives as long as a connection to it: keep exactly one.
        pool.max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        pool
    }
}

async fn connect_postgres(url: &str) -> Result<PgPool, RunsError> {
    PgPoolOptions::new()
        .acquire_timeout(PG_ACQUIRE_TIMEOUT)
        .connect(url)
        .await
        .map_err(db_error)
}
