-- pipeline_runs: one row per pipeline run (PostgreSQL, what docker-compose runs).
-- Twin of migrations/sqlite/0001_pipeline_runs.sql: same columns, same meaning.
-- The design's table (run_id, start_time, stage_X_status/start/end for X = 1..7) plus
-- end_time, what triggered the run, which orchestrator ran it (host, pid), why each stage
-- failed (stage_X_message) and what the run produced. run_id is the design's serial, widened.
-- Timestamps are written by the application (UTC, whole microseconds).

CREATE TABLE pipeline_runs (
    run_id              BIGSERIAL PRIMARY KEY,
    start_time          TIMESTAMPTZ NOT NULL DEFAULT now(),
    end_time            TIMESTAMPTZ,
    "trigger"           TEXT NOT NULL,
    host                TEXT NOT NULL,
    pid                 BIGINT NOT NULL,
    stage_1_status      TEXT NOT NULL DEFAULT 'waiting'
                        CHECK (stage_1_status IN ('waiting', 'running', 'complete', 'failed', 'not_triggered')),
    stage_1_start       TIMESTAMPTZ,
    stage_1_end         TIMESTAMPTZ,
    stage_1_message     TEXT,
    stage_2_status      TEXT NOT NULL DEFAULT 'waiting'
                        CHECK (stage_2_status IN ('waiting', 'running', 'complete', 'failed', 'not_triggered')),
    stage_2_start       TIMESTAMPTZ,
    stage_2_end         TIMESTAMPTZ,
    stage_2_message     TEXT,
    stage_3_status      TEXT NOT NULL DEFAULT 'waiting'
                        CHECK (stage_3_status IN ('waiting', 'running', 'complete', 'failed', 'not_triggered')),
    stage_3_start       TIMESTAMPTZ,
    stage_3_end         TIMESTAMPTZ,
    stage_3_message     TEXT,
    stage_4_status      TEXT NOT NULL DEFAULT 'waiting'
                        CHECK (stage_4_status IN ('waiting', 'running', 'complete', 'failed', 'not_triggered')),
    stage_4_start       TIMESTAMPTZ,
    stage_4_end         TIMESTAMPTZ,
    stage_4_message     TEXT,
    stage_5_status      TEXT NOT NULL DEFAULT 'waiting'
                        CHECK (stage_5_status IN ('waiting', 'running', 'complete', 'failed', 'not_triggered')),
    stage_5_start       TIMESTAMPTZ,
    stage_5_end         TIMESTAMPTZ,
    stage_5_message     TEXT,
    stage_6_status      TEXT NOT NULL DEFAULT 'waiting'
                        CHECK (stage_6_status IN ('waiting', 'running', 'complete', 'failed', 'not_triggered')),
    stage_6_start       TIMESTAMPTZ,
    stage_6_end         TIMESTAMPTZ,
    stage_6_message     TEXT,
    stage_7_status      TEXT NOT NULL DEFAULT 'waiting'
                        CHECK (stage_7_status IN ('waiting', 'running', 'complete', 'failed', 'not_triggered')),
    stage_7_start       TIMESTAMPTZ,
    stage_7_end         TIMESTAMPTZ,
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
