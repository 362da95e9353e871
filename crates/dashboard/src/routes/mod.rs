//! One module per resource; each handler is thin and returns `Result<_, ApiError>`.

mod health;
mod metrics;
mod runs;
mod stage_log;

pub use health::{health, ready};
pub use metrics::metrics;
pub use runs::{get_run, list_runs};
pub use stage_log::stage_log;

use doodle_runs::{RunId, STAGES};

use crate::error::ApiError;

/// Unmatched paths: FastAPI's `{"detail": "Not Found"}`.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// Known paths, wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// A run id from a path: 1 to 19 ASCII digits, a positive `i64`. Anything else (`..`, a sign,
/// spaces, a number too large) is no run.
pub fn parse_run_id(text: &str) -> Result<RunId, ApiError> {
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::UnknownRun);
    }
    match text.parse::<RunId>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::UnknownRun),
    }
}

/// A stage number from a path: one digit, 1 to 7.
pub fn parse_stage(text: &str) -> Result<usize, ApiError> {
    match text.as_bytes() {
        [digit @ b'1'..=b'9'] if usize::from(digit - b'0') <= STAGES => {
            Ok(usize::from(digit - b'0'))
        }
        _ => Err(ApiError::UnknownStage),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_positive_decimal_numbers_only() {
        assert_eq!(parse_run_id("1").unwrap(), 1);
        assert_eq!(parse_run_id("9223372036854775807").unwrap(), i64::MAX);
        for bad in [
            "",
            "0",
            "-1",
            "+1",
            " 1",
            "1 ",
            "..",
            ".",
            "1.0",
            "1e3",
            "0x10",
            "%2e%2e",
            "9223372036854775808",
            "99999999999999999999999",
            "١",
            "1/..",
        ] {
            assert!(parse_run_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stages_are_1_to_7() {
        for n in 1..=7 {
            assert_eq!(parse_stage(&n.to_string()).unwrap(), n);
        }
        for bad in ["0", "8", "9", "-1", "01", "1.", "..", "", "77", "stage1"] {
            assert!(parse_stage(bad).is_err(), "{bad:?}");
        }
    }
}
