//! The model server as seen from the backend: one pooled HTTP/1.1 client with bounded timeouts.
//!
//! `POST <model_server_url>` forwards a scoring body as is; `GET <origin>/model` names the served
//! model and its ordered categories; `GET <origin>/health` is readiness. Failures are typed so the
//! edge can answer 503 (down), 504 (too slow) or 502 (answered with something unusable).
//!
//! The client is hyper's own pooled client: a relay needs no more (no redirects, no cookies, no
//! TLS, no decompression), and each request is a few allocations instead of a general client's
//! URL parsing, header building and layered timeouts.

use std::time::Duration;

use axum::http::uri::{PathAndQuery, Scheme};
use axum::http::{HeaderValue, Method, Request, StatusCode, Uri, header};
use bytes::Bytes;
use doodle_core::config::BackendSettings;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::{Deserialize, Serialize};

/// Header carrying the request id, accepted from clients and forwarded to the model server.
pub const REQUEST_ID: &str = "x-request-id";
/// Header naming the model version that answered; passed back to the client when present.
pub const MODEL_VERSION: &str = "x-model-version";

/// How much of an unusable upstream body is kept for the log.
const SNIPPET: usize = 300;
/// The largest answer read from the model server (a prediction is a few hundred bytes).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// Idle pooled connections are closed after this long.
const POOL_IDLE: Duration = Duration::from_secs(90);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot reach the model server at {url}")]
    Unavailable {
        url: Uri,
        #[source]
        source: BoxError,
    },
    #[error("the model server did not answer {url} within {timeout_ms} ms")]
    Timeout { url: Uri, timeout_ms: u64 },
    #[error("the exchange with the model server at {url} failed")]
    Transport {
        url: Uri,
        #[source]
        source: BoxError,
    },
    #[error(
        "the model server answered {url} with {status} and a body that is not JSON: {snippet:?}"
    )]
    NotJson {
        url: Uri,
        status: StatusCode,
        snippet: String,
    },
    /// A 4xx without a JSON body: its status is kept, its text is wrapped.
    #[error("the model server refused the request to {url} with {status}: {snippet:?}")]
    Refused {
        url: Uri,
        status: StatusCode,
        snippet: String,
    },
    #[error("the model server answered {url} with {status}")]
    Status { url: Uri, status: StatusCode },
    #[error("the model server's answer to {url} is not what was expected: {message}")]
    Unexpected { url: Uri, message: String },
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
}

/// An answer read whole: status, headers and body.
struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Bytes,
}

#[derive(Debug, Clone)]
pub struct ModelServerClient {
    http: Client<HttpConnector, Full<Bytes>>,
    invocations: Uri,
    model: Uri,
    health: Uri,
    request_timeout: Duration,
}

impl ModelServerClient {
    pub fn new(settings: &BackendSettings) -> Result<Self, ClientError> {
        let url_error = |message: &str| ClientError::Url {
            url: settings.model_server_url.clone(),
            message: message.to_owned(),
        };
        let invocations: Uri = settings
            .model_server_url
            .parse()
            .map_err(|e: axum::http::uri::InvalidUri| url_error(&e.to_string()))?;
        if invocations.scheme() != Some(&Scheme::HTTP) {
            return Err(url_error("the scheme must be http"));
        }
        let Some(authority) = invocations.authority().cloned() else {
            return Err(url_error("no host"));
        };
        let at_origin = |path: &'static str| {
            Uri::builder()
                .scheme(Scheme::HTTP)
                .authority(authority.clone())
                .path_and_query(PathAndQuery::from_static(path))
                .build()
                .map_err(|e| url_error(&e.to_string()))
        };
        let model = at_origin("/model")?;
        let health = at_origin("/health")?;

        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_millis(settings.connect_timeout_ms)));
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .build(connector);
        Ok(Self {
            http,
            invocations,
            model,
            health,
            request_timeout: Duration::from_millis(settings.request_timeout_ms),
        })
    }

    pub fn invocations_url(&self) -> &Uri {
        &self.invocations
    }

    fn timeout_ms(&self) -> u64 {
        u64::try_from(self.request_timeout.as_millis()).unwrap_or(u64::MAX)
    }

    /// One exchange, connect to last body byte, within the request timeout.
    async fn exchange(
        &self,
        url: &Uri,
        method: Method,
        body: Bytes,
        request_id: Option<&HeaderValue>,
    ) -> Result<Answer, UpstreamError> {
        let mut request = Request::builder().method(method).uri(url.clone());
        if !body.is_empty() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(id) = request_id {
            request = request.header(REQUEST_ID, id);
        }
        let request = request
            .body(Full::new(body))
            .expect("a request from a checked URI and valid headers. This is a bug.");
        let exchange = async {
            let response = self.http.request(request).await.map_err(|e| {
                if e.is_connect() {
                    UpstreamError::Unavailable {
                        url: url.clone(),
                        source: e.into(),
                    }
                } else {
                    UpstreamError::Transport {
                        url: url.clone(),
                        source: e.into(),
                    }
                }
            })?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|source| UpstreamError::Transport {
                    url: url.clone(),
                    source,
                })?
                .to_bytes();
            Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.request_timeout, exchange)
            .await
            .map_err(|_| UpstreamError::Timeout {
                url: url.clone(),
                timeout_ms: self.timeout_ms(),
            })?
    }

    /// Send a scoring body as is. The answer is passed through when its body is JSON;
    /// a 4xx with another body keeps its status; anything else unusable is an error.
    pub async fn invoke(
        &self,
        body: Bytes,
        request_id: Option<&HeaderValue>,
    ) -> Result<Passthrough, UpstreamError> {
        let url = &self.invocations;
        let Answer {
            status,
            mut headers,
            body,
        } = self.exchange(url, Method::POST, body, request_id).await?;
        let is_json = serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok();
        let snippet = || snippet(&body);
        match (status.as_u16(), is_json) {
            (200..=299 | 400..=599, true) => Ok(Passthrough {
                status,
                model_version: headers.remove(MODEL_VERSION),
                body,
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
        let answer = self
            .exchange(url, Method::GET, Bytes::new(), request_id)
            .await?;
        if !answer.status.is_success() {
            return Err(UpstreamError::Status {
                url: url.clone(),
                status: answer.status,
            });
        }
        serde_json::from_slice(&answer.body).map_err(|e| UpstreamError::Unexpected {
            url: url.clone(),
            message: format!("{e}; body: {:?}", snippet(&answer.body)),
        })
    }

    /// Readiness: the model server's `/health` answers 2xx.
    pub async fn health(&self) -> Result<(), UpstreamError> {
        let url = &self.health;
        let answer = self.exchange(url, Method::GET, Bytes::new(), None).await?;
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(UpstreamError::Status {
                url: url.clone(),
                status: answer.status,
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
        assert_eq!(c.model.to_string(), "http://127.0.0.1:5002/model");
        assert_eq!(c.health.to_string(), "http://127.0.0.1:5002/health");
        let c = client("http://models.internal:8080/v1/score?x=1").unwrap();
        assert_eq!(c.model.to_string(), "http://models.internal:8080/model");
        assert_eq!(
            c.invocations_url().to_string(),
            "http://models.internal:8080/v1/score?x=1"
        );
    }

    #[test]
    fn a_non_http_url_is_refused() {
        for url in [
            "not a url",
            "mailto:x@y",
            "/invocations",
            "https://models.internal/invocations",
        ] {
            assert!(
                matches!(client(url), Err(ClientError::Url { .. })),
                "{url} was accepted"
            );
        }
    }

    #[test]
    fn snippets_are_bounded_and_lossy() {
        let long = vec![b'x'; 10_000];
        assert_eq!(snippet(&long).len(), SNIPPET);
        assert_eq!(snippet(b"\xff ok "), "\u{fffd} ok");
    }
}
