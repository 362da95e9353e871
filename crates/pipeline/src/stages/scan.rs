//! Stage 1, scan: count the drawings waiting in every category folder of the image folder.

use doodle_core::Settings;

use crate::images;
use crate::protocol::StageOutput;

/// Count `*.png` drawings per category; the total is the run's `new_images`.
pub fn run(settings: &Settings) -> anyhow::Result<StageOutput> {
    let root = &settings.backend.img_data_location;
    let mut total = 0u64;
    let mut folders = 0;
    for dir in images::categories(root)? {
        let mut count = 0u64;
        for drawing in images::drawings(&dir)? {
            drawing?;
            count += 1;
        }
        tracing::info!(category = dir.category.as_str(), count, "drawings waiting");
        total += count;
        folders += 1;
    }
    tracing::info!(total, folders, root = %root.display(), "scanned the image folder");
    Ok(StageOutput {
        new_images: Some(total),
        summary: Some(format!(
            "{total} new drawings in {folders} category folders"
        )),
        ..StageOutput::default()
    })
}
