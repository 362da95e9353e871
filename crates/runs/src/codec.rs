//! Between Rust values and both databases: timestamps as bound, rows decoded into [`Run`]s,
//! and sqlx errors sorted into [`RunsError`]s.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::migrate::MigrateError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo};
use sqlx::sqlite::{SqliteArgumentValue, SqliteTypeInfo};
use sqlx::{ColumnIndex, Database, Decode, Encode, Postgres, Row, Sqlite, Type};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::{Run, RunOutput, RunsError, STAGES, StageState};

/// SQLite's stored form: fixed width, always UTC, so comparing the text compares the times
/// (RFC 3339 as `time` writes it drops trailing zeros, and `…:00Z` sorts after `…:00.5Z`).
const SQLITE_FORMAT: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// Now, in UTC, truncated to whole microseconds (what PostgreSQL keeps), so a stored time reads
/// back equal on both databases.
pub(crate) fn now() -> Ts {
    let t = OffsetDateTime::now_utc();
    Ts(t - Duration::nanoseconds(i64::from(t.nanosecond() % 1_000)))
}

/// A timestamp as bound to SQL: `TIMESTAMPTZ` in PostgreSQL, [`SQLITE_FORMAT`] text in SQLite.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ts(pub(crate) OffsetDateTime);

impl Type<Sqlite> for Ts {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl<'q> Encode<'q, Sqlite> for Ts {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        let text = self.0.to_offset(UtcOffset::UTC).format(SQLITE_FORMAT)?;
        Encode::<Sqlite>::encode(text, buf)
    }
}

impl Type<Postgres> for Ts {
    fn type_info() -> PgTypeInfo {
        <OffsetDateTime as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for Ts {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Postgres>::encode_by_ref(&self.0, buf)
    }
}

/// A type a row of database `DB` can be decoded into.
pub(crate) trait Column<DB: Database>: for<'r> Decode<'r, DB> + Type<DB> {}

impl<DB: Database, T: for<'r> Decode<'r, DB> + Type<DB>> Column<DB> for T {}

/// A row selected with [`crate::sql::RUN_COLUMNS`] → a [`Run`]; the one decoder for both databases.
pub(crate) fn decode_run<R>(row: &R) -> Result<Run, sqlx::Error>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    i64: Column<R::Database>,
    bool: Column<R::Database>,
    String: Column<R::Database>,
    OffsetDateTime: Column<R::Database>,
{
    let stages: Vec<StageState> = (1..=STAGES)
        .map(|n| decode_stage(row, n))
        .collect::<Result<_, _>>()?;
    Ok(Run {
        run_id: row.try_get("run_id")?,
        start_time: row.try_get("start_time")?,
        end_time: row.try_get("end_time")?,
        trigger: row.try_get("trigger")?,
        host: row.try_get("host")?,
        pid: row.try_get("pid")?,
        stages: stages
            .try_into()
            .map_err(|_| sqlx::Error::Decode("not 7 stages".into()))?,
        output: RunOutput {
            new_images: row.try_get("new_images")?,
            data_commit: row.try_get("data_commit")?,
            data_hash: row.try_get("data_hash")?,
            model_version: row.try_get("model_version")?,
            promoted: row.try_get("promoted")?,
            gate_report: row.try_get("gate_report")?,
        },
    })
}

fn decode_stage<R>(row: &R, n: usize) -> Result<StageState, sqlx::Error>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    String: Column<R::Database>,
    OffsetDateTime: Column<R::Database>,
{
    let status: String = row.try_get(format!("stage_{n}_status").as_str())?;
    Ok(StageState {
        status: status
            .parse()
            .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
        start: row.try_get(format!("stage_{n}_start").as_str())?,
        end: row.try_get(format!("stage_{n}_end").as_str())?,
        message: row.try_get(format!("stage_{n}_message").as_str())?,
    })
}

/// A connection-level failure (the database was not reached) → [`RunsError::Unavailable`];
/// anything the database answered → [`RunsError::Query`].
pub(crate) fn db_error(e: sqlx::Error) -> RunsError {
    if is_connection_error(&e) {
        RunsError::Unavailable(e)
    } else {
        RunsError::Query(e)
    }
}

/// Like [`db_error`] for migrations: failing to reach the database is still `Unavailable`.
pub(crate) fn migrate_error(e: MigrateError) -> RunsError {
    match e {
        MigrateError::Execute(e) if is_connection_error(&e) => RunsError::Unavailable(e),
        e => RunsError::Migrate(e),
    }
}

fn is_connection_error(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
    )
}
