use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use doodle_core::image::{decode_base64, pixels_from_raw};
use serde_json::{Map, Value};

use crate::edge::RequestId;
use crate::error::{ApiError, ErrorReport};
use crate::extract::JsonObject;
use crate::feedback::single_top1;
use crate::startup::AppState;
use crate::upstream::MODEL_VERSION;

/// The MLflow scoring protocol's input fields; a body holds exactly one.
const INPUT_FIELDS: [&str; 4] = [
    "inputs",
    "instances",
    "dataframe_split",
    "dataframe_records",
];

/// `POST /invocations/`: check the body, forward it unchanged, answer with the model server's
/// status and JSON. The top-1 for a design-shaped drawing is remembered for live feedback.
pub async fn invocations(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    body: Result<JsonObject, ApiError>,
) -> Result<Response, ApiError> {
    state.metrics.prediction_requests.inc();
    let _timer = state.metrics.prediction_latency.start_timer();
    let body = body?;
    let drawing = check_scoring_body(&body.fields)?;
    let answer = state.model_server.invoke(body.raw, Some(&id.0)).await?;
    let status = answer.status;
    if let Some(pixels) = drawing
        && status.is_success()
        && let Some(label) = single_top1(&answer.body)
    {
        state.recent.remember(&pixels, &label);
    }
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        answer.body,
    )
        .into_response();
    if let Some(version) = answer.model_version {
        response.headers_mut().insert(MODEL_VERSION, version);
    }
    if status.is_client_error() || status.is_server_error() {
        response.extensions_mut().insert(ErrorReport {
            error_type: if status.is_client_error() {
                "model_server_client_error"
            } else {
                "model_server_error"
            },
            message: format!("the model server answered {status}; passed through"),
        });
    }
    Ok(response)
}

/// Exactly one MLflow input field. The design's own shape, `{"inputs": "<base64>"}`, is checked
/// here so a bad drawing is a 400 without a round trip; every other shape is the model server's
/// to judge. Returns the drawing's 784 bytes for the design's shape.
fn check_scoring_body(fields: &Map<String, Value>) -> Result<Option<Vec<u8>>, ApiError> {
    let present: Vec<&str> = INPUT_FIELDS
        .into_iter()
        .filter(|f| fields.contains_key(*f))
        .collect();
    match present.as_slice() {
        [] => return Err(ApiError::MissingField("inputs")),
        [_] => {}
        many => {
            let names: Vec<String> = many.iter().map(|f| format!("`{f}`")).collect();
            return Err(ApiError::AmbiguousInput(names.join(", ")));
        }
    }
    if let Some(Value::String(text)) = fields.get("inputs") {
        let bytes = decode_base64(text).map_err(|_| ApiError::InvalidBase64)?;
        pixels_from_raw(&bytes).map_err(|_| ApiError::WrongSize(bytes.len()))?;
        return Ok(Some(bytes));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(body: Value) -> Result<Option<Vec<u8>>, ApiError> {
        let Value::Object(fields) = body else {
            panic!("test bodies are objects")
        };
        check_scoring_body(&fields)
    }

    #[test]
    fn the_designs_shape_is_checked_locally() {
        let ok = doodle_core::image::encode_base64(&[9; 784]);
        assert_eq!(check(json!({ "inputs": ok })).unwrap(), Some(vec![9; 784]));
        let short = doodle_core::image::encode_base64(&[9; 783]);
        assert!(matches!(
            check(json!({ "inputs": short })),
            Err(ApiError::WrongSize(783))
        ));
        assert!(matches!(
            check(json!({ "inputs": "not*base64!" })),
            Err(ApiError::InvalidBase64)
        ));
    }

    #[test]
    fn other_mlflow_shapes_pass_to_the_model_server() {
        assert_eq!(check(json!({ "inputs": [[0.0, 1.0]] })).unwrap(), None);
        assert!(check(json!({ "instances": [{ "image": "x" }] })).is_ok());
        assert!(check(json!({ "dataframe_split": { "data": [] }, "params": {} })).is_ok());
    }

    #[test]
    fn zero_or_two_input_fields_are_refused() {
        assert!(matches!(
            check(json!({ "foo": 1 })),
            Err(ApiError::MissingField("inputs"))
        ));
        assert!(matches!(
            check(json!({ "inputs": [], "instances": [] })),
            Err(ApiError::AmbiguousInput(_))
        ));
    }
}
