//! A run as the API answers it: the design's flat field names (`run_id`, `start_time`,
//! `stage_X_status`, `stage_X_start`, `stage_X_end`) plus what a person wants to know.
//!
//! ```json
//! { "run_id": 7, "start_time": "2026-12-01T10:00:00.000000Z", "end_time": "…",
//!   "outcome": "failed", "failed_stage": 3, "trigger": "schedule",
//!   "stage_1_status": "complete", "stage_1_start": "…", "stage_1_end": "…",
//!   "stage_1_duration_s": 0.412, "stage_1_message": null, …  (stages 1–7)
//!   "new_images": 40, "data_commit": "…", "data_hash": "…",
//!   "model_version": "4", "promoted": true }
//! ```
//! `GET /pipeline_runs/{id}` adds `host`, `pid`, `gate_report` (the gate's JSON report) and
//! `stage_logs` (`{"3": "/pipeline_runs/7/stages/3/log"}`, for the logs that exist).

use std::collections::BTreeMap;

use doodle_runs::{Run, STAGES, StageStatus};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Field names `stage_X_<suffix>`, built once.
struct StageKeys {
    status: String,
    start: String,
    end: String,
    duration: String,
    message: String,
}

static STAGE_KEYS: std::sync::LazyLock<Vec<StageKeys>> = std::sync::LazyLock::new(|| {
    (1..=STAGES)
        .map(|n| StageKeys {
            status: format!("stage_{n}_status"),
            start: format!("stage_{n}_start"),
            end: format!("stage_{n}_end"),
            duration: format!("stage_{n}_duration_s"),
            message: format!("stage_{n}_message"),
        })
        .collect()
});

/// A run in a list.
#[derive(Debug)]
pub struct RunSummary<'a>(pub &'a Run);

/// A run on its own: the summary plus its details.
#[derive(Debug)]
pub struct RunDetail<'a> {
    pub run: &'a Run,
    /// Stage number → URL of its log, for the stages whose log exists.
    pub stage_logs: BTreeMap<String, String>,
}

/// The first stage that failed (the later ones failed with "not run: stage N failed").
pub fn failed_stage(run: &Run) -> Option<usize> {
    run.stages
        .iter()
        .position(|s| s.status == StageStatus::Failed)
        .map(|i| i + 1)
}

/// A stage's duration in seconds, to the millisecond, when it has a start and an end.
pub fn duration_s(start: Option<OffsetDateTime>, end: Option<OffsetDateTime>) -> Option<f64> {
    let (start, end) = (start?, end?);
    Some(((end - start).as_seconds_f64() * 1e3).round() / 1e3)
}

fn rfc3339(t: Option<OffsetDateTime>) -> Option<String> {
    t.map(|t| {
        t.format(&Rfc3339)
            .expect("a stored time is in RFC 3339's range. This is a bug.")
    })
}

fn write_run<M: SerializeMap>(map: &mut M, run: &Run) -> Result<(), M::Error> {
    map.serialize_entry("run_id", &run.run_id)?;
    map.serialize_entry("start_time", &rfc3339(Some(run.start_time)))?;
    map.serialize_entry("end_time", &rfc3339(run.end_time))?;
    map.serialize_entry("outcome", run.outcome().as_str())?;
    map.serialize_entry("failed_stage", &failed_stage(run))?;
    map.serialize_entry("trigger", &run.trigger)?;
    for (stage, keys) in run.stages.iter().zip(STAGE_KEYS.iter()) {
        map.serialize_entry(&keys.status, stage.status.as_str())?;
        map.serialize_entry(&keys.start, &rfc3339(stage.start))?;
        map.serialize_entry(&keys.end, &rfc3339(stage.end))?;
        map.serialize_entry(&keys.duration, &duration_s(stage.start, stage.end))?;
        map.serialize_entry(&keys.message, &stage.message)?;
    }
    let out = &run.output;
    map.serialize_entry("new_images", &out.new_images)?;
    map.serialize_entry("data_commit", &out.data_commit)?;
    map.serialize_entry("data_hash", &out.data_hash)?;
    map.serialize_entry("model_version", &out.model_version)?;
    map.serialize_entry("promoted", &out.promoted)
}

impl Serialize for RunSummary<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        write_run(&mut map, self.0)?;
        map.end()
    }
}

impl Serialize for RunDetail<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        write_run(&mut map, self.run)?;
        map.serialize_entry("host", &self.run.host)?;
        map.serialize_entry("pid", &self.run.pid)?;
        // The report is JSON text; answer it as JSON (or as the text, should it not parse).
        let report = self.run.output.gate_report.as_deref().map(|text| {
            serde_json::from_str::<serde_json::Value>(text)
                .unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
        });
        map.serialize_entry("gate_report", &report)?;
        map.serialize_entry("stage_logs", &self.stage_logs)?;
        map.end()
    }
}
