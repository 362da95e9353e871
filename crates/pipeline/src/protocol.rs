//! How a stage reports to the orchestrator: its exit status, plus two lines on stdout.
//!
//! A stage prints, as its last two lines,
//! ```text
//! result: {"new_images": 123, ...}
//! success
//! ```
//! or, when it fails, `failure: <reason>` as its last line (and exits non-zero). The exit status
//! decides the outcome; the lines say why and what the stage produced. The `result:` object is
//! the stage's [`StageOutput`]: every field optional, so each stage fills what it knows.
//! The design's stages printed `success`/`failure` too; the orchestrator keeps the last lines
//! of every stage's output for its log.

use serde::{Deserialize, Serialize};

/// Prefix of the line that carries a stage's [`StageOutput`] as JSON.
pub const RESULT_PREFIX: &str = "result: ";
/// The last line of a stage that succeeded.
pub const SUCCESS_LINE: &str = "success";
/// Prefix of the last line of a stage that failed.
pub const FAILURE_PREFIX: &str = "failure: ";

/// Environment variable with the orchestrator's run id, set for every stage it starts.
pub const RUN_ID_ENV: &str = "DOODLE_RUN_ID";

/// What a stage produced (each stage fills its own fields).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StageOutput {
    /// Stage 1: PNGs waiting in the image folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_images: Option<u64>,
    /// Stage 4: the data repository's commit after versioning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_commit: Option<String>,
    /// Stage 4: DVC's hash of the data folder (the `.dir` md5 in `<folder>.dvc`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_hash: Option<String>,
    /// Stage 5/6 (part 2): the model version produced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// Stage 6 (part 2): whether the gate promoted it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promoted: Option<bool>,
    /// Stage 5/6: the candidate checkpoint folder (written by 5, judged by 6).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate: Option<String>,
    /// Stage 6: the gate's report (both models per category, each rule and its verdict).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate_report: Option<serde_json::Value>,
    /// A one-line human summary ("3 categories, 120 drawings converted").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

impl StageOutput {
    /// The `result:` line for this output.
    pub fn line(&self) -> String {
        let json = serde_json::to_string(self).expect("a StageOutput always serializes");
        format!("{RESULT_PREFIX}{json}")
    }

    /// Parse a `result:` line; `None` for any other line.
    pub fn parse_line(line: &str) -> Option<Result<StageOutput, serde_json::Error>> {
        line.strip_prefix(RESULT_PREFIX).map(serde_json::from_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_line_round_trips_and_other_lines_are_not_results() {
        let out = StageOutput {
            new_images: Some(42),
            summary: Some("ok".into()),
            ..StageOutput::default()
        };
        let line = out.line();
        assert_eq!(line, r#"result: {"new_images":42,"summary":"ok"}"#);
        assert_eq!(StageOutput::parse_line(&line).unwrap().unwrap(), out);
        assert!(StageOutput::parse_line("success").is_none());
        assert!(
            StageOutput::parse_line("result: {\"bogus\":1}")
                .unwrap()
                .is_err()
        );
    }
}
