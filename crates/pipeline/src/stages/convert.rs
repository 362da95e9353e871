//! Stage 3, convert: every saved PNG → the one 28×28 conversion the model uses
//! ([`doodle_core::image::pixels_from_png`]) → rows appended to `new/<category>.npy`.
//!
//! Per category, in chunks of [`CHUNK`] drawings read lazily from the folder: decode, stage `existing rows + chunk` beside
//! the target, commit through the journal (which removes the PNGs only after the `.npy` is
//! durably in place). A PNG that cannot be read is moved to the quarantine folder, logged with
//! its path, and the run goes on. Memory: one chunk, whatever the number of drawings.
//! A drawing saved while this runs is either in the listing (converted now) or not (next run).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use doodle_core::Settings;
use doodle_core::image::{self, PIXELS};
use rustix::fs::OFlags;

use crate::data::DataDirs;
use crate::fsx;
use crate::images::{self, CategoryDir, Drawing};
use crate::journal::{Entry, Journal};
use crate::npy::{self, NpyFile, Part};
use crate::protocol::StageOutput;

/// Drawings per commit: bounds memory (1.6 MB of rows) and the work a kill throws away.
pub const CHUNK: usize = 2048;

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    converted: u64,
    quarantined: u64,
}

pub fn run(settings: &Settings) -> anyhow::Result<StageOutput> {
    let dirs = DataDirs::new(settings);
    let lock = dirs.lock().context("taking the data lock")?;
    let mut total = Counts::default();
    let mut categories = 0;
    for dir in images::categories(&dirs.images)? {
        let mut list = images::drawings(&dir)?;
        let (mut counts, mut seen) = (Counts::default(), 0);
        loop {
            let chunk = images::next_chunk(&mut list, CHUNK)?;
            if chunk.is_empty() {
                break;
            }
            seen += chunk.len();
            let c = convert_chunk(&dirs, &lock.journal, &dir, &chunk)?;
            counts.converted += c.converted;
            counts.quarantined += c.quarantined;
        }
        if seen > 0 {
            categories += 1;
            tracing::info!(
                category = dir.category.as_str(),
                converted = counts.converted,
                quarantined = counts.quarantined,
                "converted"
            );
        }
        total.converted += counts.converted;
        total.quarantined += counts.quarantined;
    }
    Ok(StageOutput {
        summary: Some(format!(
            "{} drawings converted in {categories} categories, {} quarantined",
            total.converted, total.quarantined
        )),
        ..StageOutput::default()
    })
}

fn convert_chunk(
    dirs: &DataDirs,
    journal: &Journal,
    dir: &CategoryDir,
    chunk: &[Drawing],
) -> anyhow::Result<Counts> {
    let mut rows = Vec::with_capacity(chunk.len() * PIXELS);
    let mut consumed = Vec::with_capacity(chunk.len());
    let mut counts = Counts::default();
    for drawing in chunk {
        match read_drawing(&drawing.path) {
            Ok(pixels) => {
                rows.extend_from_slice(&pixels);
                consumed.push(drawing.path.clone());
            }
            Err(Unreadable::Gone) => {}
            Err(Unreadable::Bad(reason)) => {
                quarantine(dirs, dir, drawing, &reason)?;
                counts.quarantined += 1;
            }
            Err(Unreadable::Io(e)) => {
                return Err(e).with_context(|| format!("reading {}", drawing.path.display()));
            }
        }
    }
    if consumed.is_empty() {
        return Ok(counts);
    }
    let target = dirs.new.join(format!("{}.npy", dir.category));
    let mut parts = Vec::with_capacity(2);
    if target.exists() {
        parts.push(Part::File(NpyFile::open(&target)?));
    }
    parts.push(Part::Rows(&rows));
    let staged = npy::write_stacked(&target, parts)?;
    counts.converted = consumed.len() as u64;
    let entry = Entry {
        tmp: staged.tmp,
        target,
        sha256: staged.sha256,
        consumed,
    };
    journal
        .commit(&entry)
        .with_context(|| format!("committing {}", entry.target.display()))?;
    Ok(counts)
}

/// Why a listed drawing was not converted.
#[derive(Debug)]
enum Unreadable {
    /// Removed since the listing (or replaced by a link): not ours to judge.
    Gone,
    /// Not a drawing: quarantine it.
    Bad(String),
    /// The disk failed: stop the stage.
    Io(io::Error),
}

/// Read one PNG (never through a symbolic link, at most [`image::MAX_PNG_FILE_BYTES`]).
fn read_drawing(path: &Path) -> Result<image::Pixels, Unreadable> {
    let open = File::options()
        .read(true)
        .custom_flags(OFlags::NOFOLLOW.bits() as i32)
        .open(path);
    let file = match open {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Unreadable::Gone),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            tracing::warn!(path = %path.display(), "skipping: became a symbolic link");
            return Err(Unreadable::Gone);
        }
        Err(e) => return Err(Unreadable::Io(e)),
    };
    let limit = image::MAX_PNG_FILE_BYTES as u64;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(Unreadable::Io)?;
    if bytes.len() as u64 > limit {
        return Err(Unreadable::Bad(format!("larger than {limit} bytes")));
    }
    image::pixels_from_png(&bytes).map_err(|e| Unreadable::Bad(e.to_string()))
}

/// Move an unreadable drawing to `<quarantine>/<category>/<name>` (never over another file).
fn quarantine(
    dirs: &DataDirs,
    dir: &CategoryDir,
    drawing: &Drawing,
    reason: &str,
) -> anyhow::Result<()> {
    let folder = dirs.quarantine.join(dir.category.as_str());
    fsx::create_dir_durable(&folder)?;
    let mut to = folder.join(&drawing.name);
    while !move_new(&drawing.path, &to)? {
        to = folder.join(format!(
            "{}.{}",
            drawing.name,
            uuid::Uuid::new_v4().simple()
        ));
    }
    tracing::warn!(path = %drawing.path.display(), moved_to = %to.display(), reason,
        "quarantined an unreadable drawing");
    Ok(())
}

/// [`fsx::rename_new`], or copy + fsync + remove across file systems.
fn move_new(from: &Path, to: &Path) -> anyhow::Result<bool> {
    match fsx::rename_new(from, to) {
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) => {
            if to.exists() {
                return Ok(false);
            }
            let bytes = std::fs::read(from)?;
            fsx::write_atomic(to, &bytes)?;
            fsx::remove_if_present(from)?;
            fsx::sync_dir(fsx::parent(from))?;
            Ok(true)
        }
        other => Ok(other.with_context(|| format!("quarantining {}", from.display()))?),
    }
}
