use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::edge::Rows;
use crate::error::ApiError;
use crate::logs;
use crate::routes::{parse_run_id, parse_stage};
use crate::startup::AppState;

/// `GET /pipeline_runs/{id}/stages/{n}/log`: the end of that stage's log as plain text
/// (`dashboard.log_tail_bytes`, whole lines). `X-Log-Size` is the file's size and
/// `X-Log-Truncated` says whether its start was left out.
///
/// The file is found from the parsed numbers only ([`doodle_runs::stage_log_path`]), and only
/// for a run the database knows: nothing from the request reaches the file system as text.
pub async fn stage_log(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    let Path((id, stage)) = path.map_err(|_| ApiError::UnknownRun)?;
    let id = parse_run_id(&id)?;
    let stage = parse_stage(&stage)?;
    state
        .runs
        .store()
        .await?
        .get(id)
        .await?
        .ok_or(ApiError::UnknownRun)?;
    let path = logs::path(&state.config.log_dir, id, stage);
    let max = state.config.dashboard.log_tail_bytes;
    let tail = tokio::task::spawn_blocking(move || logs::tail(&path, max))
        .await
        .map_err(|err| ApiError::LogRead(std::io::Error::other(err)))?
        .map_err(ApiError::LogRead)?
        .ok_or(ApiError::NoLog { run: id, stage })?;
    let rows = tail.lines();
    let mut response = (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        tail.text,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert("x-log-size", HeaderValue::from(tail.size));
    headers.insert(
        "x-log-truncated",
        HeaderValue::from_static(if tail.truncated { "true" } else { "false" }),
    );
    response.extensions_mut().insert(Rows(rows));
    Ok(response)
}
