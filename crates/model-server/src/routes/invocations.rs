//! `POST /invocations`: MLflow's scoring endpoint.

use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::MODEL_VERSION_HEADER;
use crate::error::ServeError;
use crate::parse;
use crate::startup::AppState;
use crate::worker::Job;

/// Default number of guesses in each prediction's `top_k`.
pub const DEFAULT_TOP_K: usize = 3;

#[derive(Debug, Serialize)]
pub struct Guess<'a> {
    pub label: &'a str,
    pub score: f32,
}

#[derive(Debug, Serialize)]
pub struct Prediction<'a> {
    pub label: &'a str,
    pub score: f32,
    pub top_k: Vec<Guess<'a>>,
}

#[derive(Debug, Serialize)]
pub struct Predictions<'a> {
    pub predictions: Vec<Prediction<'a>>,
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ServeError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(ServeError::UnsupportedMediaType(
            "missing Content-Type; send application/json".into(),
        ));
    };
    let text = value.to_str().unwrap_or("");
    let mut parts = text.split(';').map(str::trim);
    let mime = parts.next().unwrap_or("").to_ascii_lowercase();
    if mime != "application/json" {
        return Err(ServeError::UnsupportedMediaType(format!(
            "Content-Type {text:?} is not supported; send application/json"
        )));
    }
    for param in parts.filter(|p| !p.is_empty()) {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        if !(key.eq_ignore_ascii_case("charset")
            && value.trim_matches('"').eq_ignore_ascii_case("utf-8"))
        {
            return Err(ServeError::UnsupportedMediaType(format!(
                "Content-Type parameter {param:?} is not supported; only charset=utf-8 is"
            )));
        }
    }
    Ok(())
}

pub async fn invocations(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ServeError> {
    let result = score(&state, &headers, body).await;
    if let Err(err) = &result {
        state
            .metrics
            .rejected
            .with_label_values(&[err.reason()])
            .inc();
    }
    result
}

async fn score(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ServeError> {
    check_content_type(headers)?;
    let body = body.map_err(|rejection| match rejection {
        BytesRejection::FailedToBufferBody(_) => ServeError::PayloadTooLarge(state.body_limit),
        other => ServeError::BadRequest(other.body_text()),
    })?;
    let max_images = state.max_images_per_request;
    let request = if body.len() > 64 * 1024 {
        // Large batches of PNGs take a while to decode: keep them off the async threads.
        tokio::task::spawn_blocking(move || parse::parse(&body, max_images))
            .await
            .map_err(|e| ServeError::Internal(format!("parsing task failed: {e}")))??
    } else {
        parse::parse(&body, max_images)?
    };

    let (reply, answer) = oneshot::channel();
    let now = Instant::now();
    let deadline = Duration::from_millis(state.deadline_ms);
    state.batcher.submit(Job {
        pixels: request.pixels,
        count: request.count,
        enqueued: now,
        deadline: now + deadline,
        reply,
    })?;
    let output = match tokio::time::timeout(deadline, answer).await {
        Ok(Ok(result)) => result?,
        Ok(Err(_)) => {
            return Err(ServeError::Internal(
                "the inference thread dropped the request".into(),
            ));
        }
        Err(_) => return Err(ServeError::DeadlineExceeded(state.deadline_ms)),
    };

    let categories = &output.model.categories;
    let classes = categories.len();
    let k = request.top_k.unwrap_or(DEFAULT_TOP_K).min(classes);
    let mut predictions = Vec::with_capacity(request.count);
    for row in output.probabilities.chunks(classes) {
        let mut order: Vec<usize> = (0..classes).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        let top_k: Vec<Guess> = order[..k]
            .iter()
            .map(|&i| Guess {
                label: &categories[i],
                score: row[i],
            })
            .collect();
        let best = order[0];
        state
            .metrics
            .predictions
            .with_label_values(&[&categories[best]])
            .inc();
        state.metrics.confidence.observe(f64::from(row[best]));
        predictions.push(Prediction {
            label: &categories[best],
            score: row[best],
            top_k,
        });
    }
    let mut response = Json(Predictions { predictions }).into_response();
    if let Ok(v) = HeaderValue::from_str(&output.model.version) {
        response.headers_mut().insert(MODEL_VERSION_HEADER, v);
    }
    Ok(response)
}
