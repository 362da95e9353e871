//! The first N drawings of each category from Quick, Draw!'s public `numpy_bitmap` files.
//!
//! A full category is ~100 MB; we need N × 784 bytes. Each request asks for the byte range
//! holding the `.npy` header and the first N rows, and the stream is read only that far (so a
//! server that ignores `Range` costs no more than one that honours it).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::{IMAGE_PIXELS, ModelError, data};

/// The public bucket's numpy bitmaps (`<base>/<category with spaces>.npy`).
pub const QUICKDRAW_NUMPY_BITMAP: &str =
    "https://storage.googleapis.com/quickdraw_dataset/full/numpy_bitmap";

/// Room for the `.npy` header in the range request (real headers are 80–128 bytes).
const HEADER_ALLOWANCE: usize = 4096;

/// The file name Quick, Draw! uses for a category: `alarm_clock` → `alarm clock.npy`,
/// URL-encoded.
pub fn remote_name(category: &str) -> String {
    format!("{}.npy", category.replace('_', " ")).replace(' ', "%20")
}

/// Download the first `rows` drawings of every category into `<out_dir>/<category>.npy`.
/// Files already there with at least `rows` rows are kept. Returns the written paths.
pub fn download_categories(
    base_url: &str,
    categories: &[String],
    rows: usize,
    out_dir: &Path,
    progress: bool,
) -> Result<Vec<PathBuf>, ModelError> {
    std::fs::create_dir_all(out_dir).map_err(|e| ModelError::io(out_dir, e))?;
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(600))
        .build()
        .map_err(|e| ModelError::Download {
            url: base_url.into(),
            message: e.to_string(),
        })?;
    let pb = ProgressBar::with_draw_target(
        Some((categories.len() * rows * IMAGE_PIXELS) as u64),
        if progress {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    pb.set_style(
        ProgressStyle::with_template(
            "download [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let mut written = Vec::new();
    for cat in categories {
        let path = out_dir.join(format!("{cat}.npy"));
        if path.is_file() && data::read_npy(&path).is_ok_and(|p| p.len() >= rows * IMAGE_PIXELS) {
            pb.inc((rows * IMAGE_PIXELS) as u64);
            written.push(path);
            continue;
        }
        pb.set_message(cat.clone());
        let url = format!("{}/{}", base_url.trim_end_matches('/'), remote_name(cat));
        let fail = |message: String| ModelError::Download {
            url: url.clone(),
            message,
        };
        let last = HEADER_ALLOWANCE + rows * IMAGE_PIXELS - 1;
        let resp = client
            .get(&url)
            .header(reqwest::header::RANGE, format!("bytes=0-{last}"))
            .send()
            .map_err(|e| fail(error_chain(&e)))?;
        let status = resp.status();
        if !(status.is_success()) {
            return Err(fail(format!("HTTP {status}")));
        }
        let reader = pb.wrap_read(resp);
        let pixels = data::read_npy_from(reader.take((last + 1) as u64), Some(rows))
            .map_err(|m| fail(format!("bad .npy data: {m}")))?;
        if pixels.len() < rows * IMAGE_PIXELS {
            tracing::warn!(
                category = %cat,
                "only {} drawings available, wanted {rows}",
                pixels.len() / IMAGE_PIXELS
            );
        }
        // Write to a temporary name first so an interrupted run never leaves a short file.
        let tmp = out_dir.join(format!(".{cat}.npy.part"));
        data::write_npy(&tmp, &pixels)?;
        std::fs::rename(&tmp, &path).map_err(|e| ModelError::io(&path, e))?;
        written.push(path);
    }
    pb.finish_and_clear();
    Ok(written)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
