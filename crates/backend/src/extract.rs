//! A JSON-object body whose every rejection is an [`ApiError`] (415, 413, 422), so bad bodies
//! get the same `{"detail": ...}` shape as every other error. The raw bytes are kept: the
//! scoring body is forwarded to the model server exactly as it came.

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use serde_json::{Map, Value};

use crate::error::ApiError;

#[derive(Debug)]
pub struct JsonObject {
    pub raw: Bytes,
    pub fields: Map<String, Value>,
}

impl JsonObject {
    /// A required string field.
    pub fn string(&self, field: &'static str) -> Result<&str, ApiError> {
        match self.fields.get(field) {
            None => Err(ApiError::MissingField(field)),
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(ApiError::InvalidField {
                field,
                expected: "a string",
            }),
        }
    }
}

/// `application/json`, with or without parameters. A missing Content-Type is read as JSON,
/// as FastAPI did; any other type is refused.
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or("<not text>");
    let essence = text.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(
            text.chars().take(100).collect(),
        ))
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        check_content_type(req.headers())?;
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(usize::MAX, |l| l.0);
        let raw = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(limit)
            } else {
                ApiError::BodyRead(axum::Error::new(rejection))
            }
        })?;
        match serde_json::from_slice::<Value>(&raw) {
            Ok(Value::Object(fields)) => Ok(Self { raw, fields }),
            Ok(other) => Err(ApiError::NotAnObject(kind(&other))),
            Err(err) => Err(ApiError::InvalidJson(err.to_string())),
        }
    }
}

/// The configured body limit, put in request extensions so a 413 can say what it is.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(ct: Option<&'static str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(ct) = ct {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        h
    }

    #[test]
    fn json_content_types_pass_and_others_are_refused() {
        assert!(check_content_type(&headers(None)).is_ok());
        assert!(check_content_type(&headers(Some("application/json"))).is_ok());
        assert!(check_content_type(&headers(Some("Application/JSON; charset=utf-8"))).is_ok());
        assert!(matches!(
            check_content_type(&headers(Some("text/plain"))),
            Err(ApiError::UnsupportedMediaType(t)) if t == "text/plain"
        ));
        assert!(check_content_type(&headers(Some("application/x-www-form-urlencoded"))).is_err());
    }
}
