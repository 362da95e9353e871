use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;

use crate::error::ApiError;
use crate::startup::AppState;
use crate::upstream::ModelInfo;

/// The served model's name, version and ordered categories, from the model server's `/model`.
pub async fn categories(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<ModelInfo>, ApiError> {
    let info = state
        .model_server
        .model_info(super::request_id(&headers))
        .await?;
    Ok(Json(info))
}
