-- pipeline_runs: one row per pipeline run (SQLite, the embedded default).
-- Twin of migrations/postgres/0001_pipeline_runs.sql: same columns, same meaning.
-- Timestamps are TEXT written by the application in one fixed-width UTC format
-- (2024-05-01T12:00:00.000000Z), so ordering the text orders the times.
-- BOOLEAN is stored as 0/1.

CREATE TABLE pipeline_runs (
    run_id              INTEGER PRIMARY KEY AUTOINCREMENT,
    start_time          TEXT NOT NULL,
    end_time            TEXT,
    "trigger"           TEXT NOT NULL,
    host                TEXT NOT NULL,
    pid                 BIGINT NOT NULL,
    stage_1_status      TEXT NOT NULL DEFAULT 'waiting'
                        CHECK (stage_1_status IN ('waiting', 'running', 'complete', 'failed', 'not_triggered')),
    stage_1_start       TEXT,
    stage_1_end         TEXT,
    stage_1_message     TEXT,
    stage_2_status      TEXT NOT NULL DEFAULT 'waiting'
                        CHECK (stage_2_status IN ('waiting', 'running', 'complete', 'failed', 'not_triggered')),
    stage_2_start       TEXT,
    stage_2_end         TEXT,
    stage_2_message     TEXT,
    stage_3_status      TEXT NOT NULL DEFAULT 'waiting'
                        CHECK (stage_3_status IN ('waiting', 'running', 'complete', 'failed', 'not_triggered')),
    stage_3_start       TEXT,
    stage_3_end         TEXT,
    stage_3_message     TEXT,
    stage_4_status      TEXT NOT NULL DEFAULT 'waiting'
                        CHECK (stage_4_status IN ('waiting', 'running', 'complete', 'failed', 'not_triggered')),
    stage_4_start       TEXT,
    stage_4_end         TEXT,
    stage_4_message     TEXT,
    stage_5_status      TEXT NOT NULL DEFAULT 'waiting'
                        CHECK (stage_5_status IN ('waiting', 'running', 'complete', 'failed', 'not_triggered')),
    stage_5_start       TEXT,
    stage_5_end         TEXT,
    stage_5_message     TEXT,
    stage_6_status      TEXT NOT NULL DEFAULT 'waiting'
                        CHECK (stage_6_status IN ('waiting', 'running', 'complete', 'failed', 'not_triggered')),
    stage_6_start       TEXT,
    stage_6_end         TEXT,
    stage_6_message     TEXT,
    stage_7_status      TEXT NOT NULL DEFAULT 'waiting'
                        CHECK (stage_7_status IN ('waiting', 'running', 'complete', 'failed', 'not_triggered')),
    stage_7_start       TEXT,
    stage_7_end         TEXT,
    stage_7_message     TEXT,
    new_images          BIGINT,
    data_commit         TEXT,
    data_hash           TEXT,
    model_version       TEXT,
    promoted            BOOLEAN,
    gate_report         TEXT
);

-- `list`: newest first, paged with LIMIT/OFFSET.
CREATE INDEX pipeline_runs_newest_first ON pipeline_runs (start_time DESC, run_id DESC);
