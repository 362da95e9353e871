//! Stage 7, clean: remove the category folders stage 3 emptied. Only empty folders directly
//! under the image folder are removed (`rmdir`, which refuses a folder that has anything in
//! it, even a save in progress); links and anything outside are never touched.

use std::io;

use doodle_core::Settings;

use crate::images;
use crate::protocol::StageOutput;

pub fn run(settings: &Settings) -> anyhow::Result<StageOutput> {
    let mut removed = 0;
    for dir in images::categories(&settings.backend.img_data_location)? {
        match std::fs::remove_dir(&dir.path) {
            Ok(()) => {
                tracing::info!(category = dir.category.as_str(), "removed the empty folder");
                removed += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => {
                tracing::info!(
                    category = dir.category.as_str(),
                    "kept: drawings are waiting"
                );
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(StageOutput {
        summary: Some(format!("{removed} empty category folders removed")),
        ..StageOutput::default()
    })
}
