//! The model server as seen from the backend: one pooled HTTP client with bounded timeouts.
//!
//! `POST <model_server_url>` forwards a scoring body as is; `GET <origin>/model` names the served
//! model and its ordered categories; `GET <origin>/health` is readiness. Failures are typed so the
//! edge can answer 503 (down), 504 (too slow) or 502 (answered with something unusable).

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use bytes::Bytes;
use doodle_core::config::BackendSettings;
use reqwest::Url;
use serde::{Deserialize, Serialize};

/// Header carrying the request id, accepted from clients and forwarded to the model server.
pub const REQUEST_ID: &str = "x-request-id";
/// Header naming the model version that answered; passed back to the client when present.
pub const MODEL_VERSION: &str = "x-model-version";

/// How much of an unusable upstream body is kept for the log.
const SNIPPET: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot reach the model server at {url}")]
    Unavailable {
        url: Url,
        #[source]
        source: reqwest::Error,
    },
    #[error("the model server did not answer {url} within {timeout_ms} ms")]
    Timeout {
        url: Url,
        timeout_ms: u64,
        #[source]
        source: reqwest::Error,
    },
    #[error("the exchange with the model server at {url} failed")]
    Transport {
        url: Url,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "the model server answered {url} with {status} and a body that is not JSON: {snippet:?}"
    )]
    NotJson {
        url: Url,
        status: StatusCode,
        snippet: String,
    },
    /// A 4xx without a JSON body: its status is kept, its text is wrapped.
    #[error("the model server refused the request to {url} with {status}: {snippet:?}")]
    Refused {
        url: Url,
        status: StatusCode,
        snippet: String,
    },
    #[error("the model server answered {url} with {status}")]
    Status { url: Url, status: StatusCode },
    #[error("the model server's answer to {url} is not what was expected: {message}")]
    Unexpected { url: Url, message: String },
}

impl UpstreamError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::Refused { status, .. } => *status,
            Self::Transport { .. }
            | Self::NotJson { .. }
            | Self::Status { .. }
            | Self::Unexpected { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Unavailable { .. } => "model_server_unavailable",
            Self::Timeout { .. } => "model_server_timeout",
            Self::Refused { .. } => "model_server_client_error",
            Self::Transport { .. }
            | Self::NotJson { .. }
            | Self::Status { .. }
            | Self::Unexpected { .. } => "model_server_bad_response",
        }
    }

    /// The client-facing text: what went wrong, without internals.
    pub fn detail(&self) -> String {
        match self {
            Self::Unavailable { .. } => "Model server unavailable".to_owned(),
            Self::Timeout { timeout_ms, .. } => {
                format!("Model server did not answer within {timeout_ms} ms")
            }
            Self::Refused { snippet, .. } => format!("Model server refused the request: {snippet}"),
            Self::Transport { .. }
            | Self::NotJson { .. }
            | Self::Status { .. }
            | Self::Unexpected { .. } => "Model server sent an invalid response".to_owned(),
        }
    }
}

/// An answer from the model server that is passed through to the client unchanged:
/// a 2xx, 4xx or 5xx whose body is JSON.
#[derive(Debug)]
pub struct Passthrough {
    pub status: StatusCode,
    pub body: Bytes,
    pub model_version: Option<HeaderValue>,
}

/// `GET /model` on the model server (extra fields are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub version: serde_json::Value,
    pub categories: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("`{url}` is not a usable model server URL: {message}")]
    Url { url: String, message: String },
    #[error("cannot build the HTTP client")]
    Build(#[source] reqwest::Error),
}

#[derive(Debug, Clone)]
pub struct ModelServerClient {
    http: reqwest::Client,
    invocations: Url,
    model: Url,
    health: Url,
    request_timeout_ms: u64,
}

impl ModelServerClient {
    pub fn new(settings: &BackendSettings) -> Result<Self, ClientError> {
        let url_error = |message: String| ClientError::Url {
            url: settings.model_server_url.clone(),
            message,
        };
        let invocations =
            Url::parse(&settings.model_server_url).map_err(|e| url_error(e.to_string()))?;
        if invocations.cannot_be_a_base() {
            return Err(url_error("not a hierarchical URL".into()));
        }
        let at_origin = |path: &str| invocations.join(path).map_err(|e| url_error(e.to_string()));
        let model = at_origin("/model")?;
        let health = at_origin("/health")?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
            .timeout(Duration::from_millis(settings.request_timeout_ms))
            .redirect(reqwest::redirect::Policy::limited(3))
            .tcp_nodelay(true)
            .no_proxy()
            .build()
            .map_err(ClientError::Build)?;
        Ok(Self {
            http,
            invocations,
            model,
            health,
            request_timeout_ms: settings.request_timeout_ms,
        })
    }

    pub fn invocations_url(&self) -> &Url {
        &self.invocations
    }

    fn classify(&self, url: &Url, source: reqwest::Error) -> UpstreamError {
        let url = url.clone();
        if source.is_connect() {
            UpstreamError::Unavailable { url, source }
        } else if source.is_timeout() {
            UpstreamError::Timeout {
                url,
                timeout_ms: self.request_timeout_ms,
                source,
            }
        } else {
            UpstreamError::Transport { url, source }
        }
    }

    /// Send a scoring body as is. The answer is passed through when its body is JSON;
    /// a 4xx with another body keeps its status; anything else unusable is an error.
    pub async fn invoke(
        &self,
        body: Bytes,
        request_id: Option<&HeaderValue>,
    ) -> Result<Passthrough, UpstreamError> {
        let url = &self.invocations;
        let mut request = self
            .http
            .post(url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(id) = request_id {
            request = request.header(REQUEST_ID, id);
        }
        let response = request.send().await.map_err(|e| self.classify(url, e))?;
        let status = response.status();
        let model_version = response.headers().get(MODEL_VERSION).cloned();
        let body = response.bytes().await.map_err(|e| self.classify(url, e))?;
        let is_json = serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok();
        let snippet = || snippet(&body);
        match (status.as_u16(), is_json) {
            (200..=299 | 400..=599, true) => Ok(Passthrough {
                status,
                body,
                model_version,
            }),
            (400..=499, false) => Err(UpstreamError::Refused {
                url: url.clone(),
                status,
                snippet: snippet(),
            }),
            (_, _) => Err(UpstreamError::NotJson {
                url: url.clone(),
                status,
                snippet: snippet(),
            }),
        }
    }

    /// The served model's name, version and ordered categories.
    pub async fn model_info(
        &self,
        request_id: Option<&HeaderValue>,
    ) -> Result<ModelInfo, UpstreamError> {
        let url = &self.model;
        let mut request = self.http.get(url.clone());
        if let Some(id) = request_id {
            request = request.header(REQUEST_ID, id);
        }
        let response = request.send().await.map_err(|e| self.classify(url, e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(UpstreamError::Status {
                url: url.clone(),
                status,
            });
        }
        let body = response.bytes().await.map_err(|e| self.classify(url, e))?;
        serde_json::from_slice(&body).map_err(|e| UpstreamError::Unexpected {
            url: url.clone(),
            message: format!("{e}; body: {:?}", snippet(&body)),
        })
    }

    /// Readiness: the model server's `/health` answers 2xx.
    pub async fn health(&self) -> Result<(), UpstreamError> {
        let url = &self.health;
        let response = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| self.classify(url, e))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(UpstreamError::Status {
                url: url.clone(),
                status,
            })
        }
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(SNIPPET)]);
    text.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str) -> Result<ModelServerClient, ClientError> {
        ModelServerClient::new(&BackendSettings {
            model_server_url: url.into(),
            ..BackendSettings::default()
        })
    }

    #[test]
    fn model_and_health_urls_come_from_the_scoring_urls_origin() {
        let c = client("http://127.0.0.1:5002/invocations/").unwrap();
        assert_eq!(c.model.as_str(), "http://127.0.0.1:5002/model");
        assert_eq!(c.health.as_str(), "http://127.0.0.1:5002/health");
        let c = client("http://models.internal:8080/v1/score?x=1").unwrap();
        assert_eq!(c.model.as_str(), "http://models.internal:8080/model");
    }

    #[test]
    fn a_non_url_is_refused() {
        assert!(matches!(client("not a url"), Err(ClientError::Url { .. })));
        assert!(matches!(client("mailto:x@y"), Err(ClientError::Url { .. })));
    }

    #[test]
    fn snippets_are_bounded_and_lossy() {
        let long = vec![b'x'; 10_000];
        assert_eq!(snippet(&long).len(), SNIPPET);
        assert_eq!(snippet(b"\xff ok "), "\u{fffd} ok");
    }
}
