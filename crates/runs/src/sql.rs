//! The SQL text, written once for both databases (`$N` placeholders work in SQLite too).
//!
//! Stage columns are named from the stage number: every function here takes a number the
//! caller has checked with [`crate::check_stage`], so nothing from outside reaches the text.

use std::fmt::Write as _;
use std::ops::RangeInclusive;
use std::sync::LazyLock;

use crate::{STAGES, StageStatus};

/// Statuses a stage can still leave.
const OPEN: &str = "('waiting', 'running')";

/// Every column of a run, in the order of [`crate::Run`].
pub(crate) static RUN_COLUMNS: LazyLock<String> = LazyLock::new(|| {
    let mut cols = String::from(r#"run_id, start_time, end_time, "trigger", host, pid"#);
    for n in 1..=STAGES {
        write!(
            cols,
            ", stage_{n}_status, stage_{n}_start, stage_{n}_end, stage_{n}_message"
        )
        .expect("writing to a String");
    }
    cols.push_str(", new_images, data_commit, data_hash, model_version, promoted, gate_report");
    cols
});

pub(crate) const CREATE_RUN: &str = r#"INSERT INTO pipeline_runs (start_time, "trigger", host, pid)
VALUES ($1, $2, $3, $4) RETURNING run_id"#;

pub(crate) const RECORD: &str = "UPDATE pipeline_runs SET
    new_images = COALESCE($2, new_images),
    data_commit = COALESCE($3, data_commit),
    data_hash = COALESCE($4, data_hash),
    model_version = COALESCE($5, model_version),
    promoted = COALESCE($6, promoted),
    gate_report = COALESCE($7, gate_report)
WHERE run_id = $1";

pub(crate) const FINISH_RUN: &str = "UPDATE pipeline_runs SET end_time = $2 WHERE run_id = $1";

pub(crate) const COUNT: &str = "SELECT COUNT(*) FROM pipeline_runs";

pub(crate) static LIST: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM pipeline_runs ORDER BY start_time DESC, run_id DESC LIMIT $1 OFFSET $2",
        *RUN_COLUMNS
    )
});

/// [`LIST`] without `gate_report` (a JSON document per run, read only with [`GET`]): what a
/// page of runs needs, lighter to read and to send.
pub(crate) static LIST_SUMMARIES: LazyLock<String> = LazyLock::new(|| {
    let columns = RUN_COLUMNS.replace(", gate_report", ", CAST(NULL AS TEXT) AS gate_report");
    format!(
        "SELECT {columns} FROM pipeline_runs ORDER BY start_time DESC, run_id DESC LIMIT $1 OFFSET $2"
    )
});

/// A run's outcome as SQL, the same rule as [`crate::Run::outcome`]: any stage open → `running`,
/// else any failed → `failed`, else any not triggered → `not_triggered`, else `complete`.
fn outcome_case() -> String {
    let any = |test: &str| {
        (1..=STAGES)
            .map(|n| format!("stage_{n}_status {test}"))
            .collect::<Vec<_>>()
            .join(" OR ")
    };
    format!(
        "CASE WHEN {} THEN 'running' WHEN {} THEN 'failed' WHEN {} THEN 'not_triggered' \
         ELSE 'complete' END",
        any(&format!("IN {OPEN}")),
        any("= 'failed'"),
        any("= 'not_triggered'"),
    )
}

/// `stats`, part 1: how many runs have each outcome (`outcome`, `runs`).
pub(crate) static OUTCOMES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT outcome, COUNT(*) AS runs FROM (SELECT {} AS outcome FROM pipeline_runs) AS o \
         GROUP BY outcome",
        outcome_case()
    )
});

/// `stats`, part 2: per stage, the number of finished stages (complete or failed, with both
/// times) and the sum of their durations in seconds: `finished_N`, `seconds_N`. Time arithmetic
/// is the one thing the two databases spell differently.
fn stage_durations(seconds: fn(&str, &str) -> String) -> String {
    let columns: Vec<String> = (1..=STAGES)
        .map(|n| {
            let (start, end) = (format!("stage_{n}_start"), format!("stage_{n}_end"));
            let finished = format!(
                "stage_{n}_status IN ('complete', 'failed') AND {start} IS NOT NULL \
                 AND {end} IS NOT NULL"
            );
            format!(
                "COUNT(CASE WHEN {finished} THEN 1 END) AS finished_{n}, \
                 COALESCE(SUM(CASE WHEN {finished} THEN {} END), 0.0) AS seconds_{n}",
                seconds(&start, &end)
            )
        })
        .collect();
    format!("SELECT {} FROM pipeline_runs", columns.join(", "))
}

pub(crate) static STAGE_DURATIONS_SQLITE: LazyLock<String> = LazyLock::new(|| {
    stage_durations(|start, end| {
        format!("CAST((julianday({end}) - julianday({start})) * 86400.0 AS REAL)")
    })
});

pub(crate) static STAGE_DURATIONS_POSTGRES: LazyLock<String> = LazyLock::new(|| {
    stage_durations(|start, end| {
        format!("CAST(EXTRACT(EPOCH FROM ({end} - {start})) AS DOUBLE PRECISION)")
    })
});

pub(crate) static GET: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM pipeline_runs WHERE run_id = $1",
        *RUN_COLUMNS
    )
});

/// `set_stage`. Binds: `$1` run, `$2` status, `$3` message, then `$4` now unless `status` is
/// `waiting`, then `$5` the later stages' message when it is `failed`.
pub(crate) fn set_stage(stage: usize, status: StageStatus) -> String {
    let (start, end) = (format!("stage_{stage}_start"), format!("stage_{stage}_end"));
    let times = match status {
        StageStatus::Waiting => format!("{start} = NULL, {end} = NULL"),
        StageStatus::Running => format!("{start} = $4, {end} = NULL"),
        StageStatus::Complete | StageStatus::Failed => {
            format!("{start} = COALESCE({start}, $4), {end} = $4")
        }
        StageStatus::NotTriggered => format!("{end} = $4"),
    };
    let mut sql = format!(
        "UPDATE pipeline_runs SET stage_{stage}_status = $2, stage_{stage}_message = $3, {times}"
    );
    if status == StageStatus::Failed {
        for later in stage + 1..=STAGES {
            write!(sql, ", {}", fail_open(later, "$4", "$5", "$5")).expect("writing to a String");
        }
        sql.push_str(", end_time = $4");
    }
    sql.push_str(" WHERE run_id = $1");
    sql
}

/// `mark_not_triggered`. Binds: `$1` run, `$2` now, `$3` message.
pub(crate) fn mark_not_triggered(range: RangeInclusive<usize>) -> String {
    let sets: Vec<String> = range
        .map(|n| {
            format!(
                "stage_{n}_status = 'not_triggered', stage_{n}_end = $2, stage_{n}_message = $3"
            )
        })
        .collect();
    format!(
        "UPDATE pipeline_runs SET {} WHERE run_id = $1",
        sets.join(", ")
    )
}

/// `abandon_unfinished` for SQLite, which has one writer at a time anyway.
pub(crate) static ABANDON_UNFINISHED_SQLITE: LazyLock<String> =
    LazyLock::new(|| abandon_unfinished(""));

/// `abandon_unfinished` for PostgreSQL: the runs are locked in id order first, so two
/// concurrent calls queue up instead of deadlocking on rows locked in different orders.
pub(crate) static ABANDON_UNFINISHED_POSTGRES: LazyLock<String> =
    LazyLock::new(|| abandon_unfinished(" FOR UPDATE"));

/// Binds: `$1` now, `$2` message for running stages, `$3` for waiting ones.
fn abandon_unfinished(lock: &str) -> String {
    let sets: Vec<String> = (1..=STAGES)
        .map(|n| fail_open(n, "$1", "$2", "$3"))
        .collect();
    let open: Vec<String> = (1..=STAGES)
        .map(|n| format!("stage_{n}_status IN {OPEN}"))
        .collect();
    format!(
        "WITH unfinished AS (SELECT run_id FROM pipeline_runs WHERE {} ORDER BY run_id{lock}) \
         UPDATE pipeline_runs SET {}, end_time = $1 \
         WHERE run_id IN (SELECT run_id FROM unfinished) RETURNING run_id",
        open.join(" OR "),
        sets.join(", ")
    )
}

/// Assignments that turn stage `n`, if still waiting or running, into `failed` ending at `ts`,
/// with message `running_msg` or `waiting_msg`; a final stage is left as it is. (Every
/// right-hand side reads the row as it was before the update, in both databases.)
fn fail_open(n: usize, ts: &str, running_msg: &str, waiting_msg: &str) -> String {
    let (status, end, msg) = (
        format!("stage_{n}_status"),
        format!("stage_{n}_end"),
        format!("stage_{n}_message"),
    );
    format!(
        "{status} = CASE WHEN {status} IN {OPEN} THEN 'failed' ELSE {status} END, \
         {end} = CASE WHEN {status} IN {OPEN} THEN {ts} ELSE {end} END, \
         {msg} = CASE {status} WHEN 'running' THEN {running_msg} \
         WHEN 'waiting' THEN {waiting_msg} ELSE {msg} END"
    )
}
