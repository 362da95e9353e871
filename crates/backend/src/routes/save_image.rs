use axum::extract::State;
use axum::{Extension, Json};
use doodle_core::category::Category;
use doodle_core::image::{decode_base64, pixels_from_raw, png_from_pixels};
use serde::Serialize;

use crate::edge::RequestId;
use crate::error::ApiError;
use crate::extract::JsonObject;
use crate::startup::AppState;

#[derive(Debug, Serialize)]
pub struct Saved {
    message: &'static str,
    filepath: String,
}

/// `POST /save-image/`: `{"image": "<base64 of 784 bytes>", "category": "<name>"}` → a 28×28
/// grayscale PNG in `<img_data_location>/<category>/`. Once saved, it counts as live feedback on
/// the prediction relayed for the same bytes (see [`feedback`](crate::feedback)).
pub async fn save_image(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    body: Result<JsonObject, ApiError>,
) -> Result<Json<Saved>, ApiError> {
    state.metrics.save_requests.inc();
    let _timer = state.metrics.save_latency.start_timer();
    let body = body?;
    let image = body.string("image")?;
    let category = body.string("category")?;
    let bytes = decode_base64(image).map_err(|_| ApiError::InvalidBase64)?;
    let pixels = pixels_from_raw(&bytes).map_err(|_| ApiError::WrongSize(bytes.len()))?;
    let category = Category::parse(category)?;
    let feedback = state.recent.feedback(&bytes, category.as_str());

    let store = state.store.clone();
    let path = tokio::task::spawn_blocking(move || {
        let png = png_from_pixels(&pixels);
        store.save(&category, &png)
    })
    .await
    .expect("the save task does not panic. This is a bug.")?;
    state.metrics.feedback(&feedback);
    let filepath = path.display().to_string();
    tracing::info!(request_id = %id.as_str(), "Image saved successfully: {filepath}");
    Ok(Json(Saved {
        message: "Image saved successfully",
        filepath,
    }))
}
