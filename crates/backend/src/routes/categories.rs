use axum::extract::State;
use axum::{Extension, Json};

use crate::edge::RequestId;
use crate::error::ApiError;
use crate::startup::AppState;
use crate::upstream::ModelInfo;

/// The served model's name, version and ordered categories, from the model server's `/model`.
pub async fn categories(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
) -> Result<Json<ModelInfo>, ApiError> {
    let info = state.model_server.model_info(Some(&id.0)).await?;
    Ok(Json(info))
}
