use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use doodle_runs::STAGES;

use crate::edge::Rows;
use crate::error::ApiError;
use crate::logs;
use crate::routes::parse_run_id;
use crate::startup::AppState;
use crate::view::{RunDetail, RunSummary};

/// Which page of runs: `limit` (default `dashboard.default_limit`, at most
/// `dashboard.max_limit`) from `offset` (default 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: u32,
    pub offset: u64,
}

impl Page {
    fn parse(params: &[(String, String)], default: u32, max: u32) -> Result<Self, ApiError> {
        let mut page = Page {
            limit: default,
            offset: 0,
        };
        for (name, value) in params {
            match name.as_str() {
                "limit" => {
                    page.limit = number(value)
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or(ApiError::InvalidQuery {
                            name: "limit",
                            expected: "a whole number",
                        })?
                        .min(max)
                }
                "offset" => {
                    page.offset = number(value).filter(|&n| i64::try_from(n).is_ok()).ok_or(
                        ApiError::InvalidQuery {
                            name: "offset",
                            expected: "a whole number (0 or more)",
                        },
                    )?
                }
                _ => {}
            }
        }
        Ok(page)
    }

    /// `Link` targets, relative to this resource.
    fn link(self, offset: u64, rel: &str) -> String {
        format!(
            "</pipeline_runs?limit={}&offset={offset}>; rel=\"{rel}\"",
            self.limit
        )
    }
}

/// Decimal digits only (no sign, no spaces), up to `u64`.
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `GET /pipeline_runs`: the design's array of runs, newest first (`start_time` descending,
/// then `run_id`). `Link` has `first`, and `prev`/`next` when there are such pages; whether
/// there is a next page comes from reading one run more than the page holds, not from counting
/// the table (a `COUNT(*)` would cost more than the page itself with 100 000 runs).
pub async fn list_runs(
    State(state): State<AppState>,
    params: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let params = params.map_err(|_| ApiError::InvalidQuery {
        name: "limit",
        expected: "a URL-encoded query (limit, offset)",
    })?;
    let settings = &state.config.dashboard;
    let page = Page::parse(&params, settings.default_limit, settings.max_limit)?;
    let offset = i64::try_from(page.offset).expect("checked by Page::parse. This is a bug.");
    let mut runs = state
        .runs
        .store()
        .await?
        .list_summaries(i64::from(page.limit) + 1, offset)
        .await?;
    let more = runs.len() > page.limit as usize;
    runs.truncate(page.limit as usize);

    let mut links = vec![page.link(0, "first")];
    if page.offset > 0 && page.limit > 0 {
        links.push(page.link(page.offset.saturating_sub(page.limit.into()), "prev"));
    }
    if more {
        links.push(page.link(page.offset + u64::from(page.limit), "next"));
    }
    let rows = runs.len();
    let body: Vec<RunSummary<'_>> = runs.iter().map(RunSummary).collect();
    let mut response = Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::LINK,
        HeaderValue::from_str(&links.join(", ")).expect("ASCII links. This is a bug."),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.extensions_mut().insert(Rows(rows));
    Ok(response)
}

/// `GET /pipeline_runs/{id}`: one run with its gate report and the links to its stage logs.
pub async fn get_run(
    State(state): State<AppState>,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|_| ApiError::UnknownRun)?;
    let id = parse_run_id(&id)?;
    let run = state
        .runs
        .store()
        .await?
        .get(id)
        .await?
        .ok_or(ApiError::UnknownRun)?;
    let log_dir = state.config.log_dir.clone();
    let stage_logs = tokio::task::spawn_blocking(move || {
        (1..=STAGES)
            .filter(|&n| logs::path(&log_dir, id, n).is_file())
            .map(|n| (n.to_string(), format!("/pipeline_runs/{id}/stages/{n}/log")))
            .collect::<BTreeMap<_, _>>()
    })
    .await
    .unwrap_or_default();
    let mut response = Json(RunDetail {
        run: &run,
        stage_logs,
    })
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.extensions_mut().insert(Rows(1));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn no_parameters_is_the_default_page() {
        let page = Page::parse(&[], 100, 1000).unwrap();
        assert_eq!(
            page,
            Page {
                limit: 100,
                offset: 0
            }
        );
    }

    #[test]
    fn a_limit_above_the_cap_is_cut_to_it() {
        let page = Page::parse(&params(&[("limit", "5000"), ("offset", "7")]), 100, 1000).unwrap();
        assert_eq!(
            page,
            Page {
                limit: 1000,
                offset: 7
            }
        );
    }

    #[test]
    fn bad_numbers_are_refused() {
        for (name, value) in [
            ("limit", "-1"),
            ("limit", "abc"),
            ("limit", ""),
            ("limit", "1e3"),
            ("limit", "99999999999"),
            ("offset", "-5"),
            ("offset", "9223372036854775808"),
        ] {
            assert!(
                Page::parse(&params(&[(name, value)]), 100, 1000).is_err(),
                "{name}={value}"
            );
        }
    }
}
