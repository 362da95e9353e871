//! Drawings on disk → a [`Dataset`] of 784-byte rows with label indices.
//!
//! Accepted sources (a directory or an `.npz` file), per category `c` of `categories.txt`:
//! - `<dir>/<c>.npy`: Quick, Draw! numpy bitmaps, dtype `uint8`, shape `(N,784)`, `(N,1,784)`
//!   or `(N,28,28)`;
//! - `<dir>/<c>/*.png`: PNGs of any size or colour mode, converted by
//!   [`doodle_core::image::pixels_from_png`] (the conversion the model server uses too);
//! - `<file>.npz`: a NumPy bundle with one array per category, named after it.
//!
//! A file that cannot be used is an error naming it, never a panic.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use npyz::WriterBuilder;
use sha2::{Digest, Sha256};

use crate::rng::Rng;
use crate::{IMAGE_PIXELS, ModelError};

/// Drawings with labels. `pixels` holds `len() × 784` bytes; `labels[i]` indexes `categories`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    pub categories: Vec<String>,
    pub pixels: Vec<u8>,
    pub labels: Vec<i64>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The 784 bytes of drawing `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[i * IMAGE_PIXELS..(i + 1) * IMAGE_PIXELS]
    }

    /// Number of drawings per category.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.categories.len()];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// The drawings at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let mut pixels = Vec::with_capacity(indices.len() * IMAGE_PIXELS);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        Dataset {
            categories: self.categories.clone(),
            pixels,
            labels,
        }
    }

    /// Append `rows` (n × 784 bytes) with label `label`.
    pub fn push_rows(&mut self, label: i64, rows: &[u8]) {
        debug_assert_eq!(rows.len() % IMAGE_PIXELS, 0);
        self.pixels.extend_from_slice(rows);
        self.labels
            .extend(std::iter::repeat_n(label, rows.len() / IMAGE_PIXELS));
    }

    /// Stratified split: within every category, a seeded shuffle, then the first
    /// `round(n × val_fraction)` drawings (at least one when the category has two or more)
    /// go to validation. Returns `(train, validation)`.
    pub fn split(&self, val_fraction: f64, seed: u64) -> (Dataset, Dataset) {
        let (train, val) = self.split_indices(val_fraction, seed);
        (self.subset(&train), self.subset(&val))
    }

    /// The indices [`Dataset::split`] puts in each part: `(train, validation)`, each in the
    /// order `split` gathers them (category by category).
    pub fn split_indices(&self, val_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
        let mut rng = Rng::new(seed);
        let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); self.categories.len()];
        for (i, &l) in self.labels.iter().enumerate() {
            by_class[l as usize].push(i);
        }
        let (mut train, mut val) = (Vec::new(), Vec::new());
        for mut idx in by_class {
            rng.shuffle(&mut idx);
            let mut k = (idx.len() as f64 * val_fraction).round() as usize;
            if val_fraction > 0.0 && k == 0 && idx.len() >= 2 {
                k = 1;
            }
            val.extend_from_slice(&idx[..k]);
            train.extend_from_slice(&idx[k..]);
        }
        (train, val)
    }

    /// SHA-256 over the ordered categories, labels and pixels: the same drawings in the same
    /// order with the same labels give the same fingerprint.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for c in &self.categories {
            h.update(c.as_bytes());
            h.update([0]);
        }
        for l in &self.labels {
            h.update(l.to_le_bytes());
        }
        h.update(&self.pixels);
        let digest = h.finalize();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }

    /// Load `categories` (label order as given) from every source: directories holding
    /// `<c>.npy` and/or `<c>/*.png`, or `.npz` files with an array per category. Every category
    /// must have at least one drawing. `limit_per_class` keeps only the first N of each
    /// (in source order: npy rows, then PNGs sorted by name).
    pub fn load(
        sources: &[PathBuf],
        categories: &[String],
        limit_per_class: Option<usize>,
    ) -> Result<Dataset, ModelError> {
        if categories.is_empty() {
            return Err(ModelError::Options("no categories given".into()));
        }
        if sources.is_empty() {
            return Err(ModelError::Options("no data sources given".into()));
        }
        let mut ds = Dataset {
            categories: categories.to_vec(),
            ..Dataset::default()
        };
        // npz bundles are opened once, not once per category.
        let mut bundles = Vec::new();
        for s in sources {
            if s.is_file() {
                bundles.push((s.clone(), read_npz(s)?));
            } else if !s.is_dir() {
                return Err(ModelError::io(
                    s,
                    io::Error::new(io::ErrorKind::NotFound, "no such data directory or file"),
                ));
            }
        }
        for (label, cat) in categories.iter().enumerate() {
            let mut rows = Vec::new();
            for s in sources.iter().filter(|s| s.is_dir()) {
                let npy = s.join(format!("{cat}.npy"));
                if npy.is_file() {
                    rows.extend(read_npy(&npy)?);
                }
                let png_dir = s.join(cat);
                if png_dir.is_dir() {
                    rows.extend(read_png_dir(&png_dir)?);
                }
            }
            for (_, arrays) in &bundles {
                if let Some((_, a)) = arrays.iter().find(|(name, _)| name == cat) {
                    rows.extend_from_slice(a);
                }
            }
            if rows.is_empty() {
                let list: Vec<String> = sources.iter().map(|s| s.display().to_string()).collect();
                return Err(ModelError::Options(format!(
                    "no drawings of category `{cat}` in {} (expected {cat}.npy, {cat}/*.png or an \
                     array `{cat}` in an .npz)",
                    list.join(", ")
                )));
            }
            if let Some(limit) = limit_per_class {
                rows.truncate(limit * IMAGE_PIXELS);
            }
            ds.push_rows(label as i64, &rows);
        }
        Ok(ds)
    }
}

/// Read `categories.txt`: one name per line, in label order; blank lines and `#` comments are
/// skipped; names must be valid categories and unique.
pub fn read_categories(path: &Path) -> Result<Vec<String>, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    parse_categories(&text).map_err(|m| ModelError::bad_data(path, m))
}

/// The rules of [`read_categories`] on text.
pub fn parse_categories(text: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let name = line.trim();
        if name.is_empty() || name.starts_with('#') {
            continue;
        }
        doodle_core::category::Category::parse(name).map_err(|e| format!("line {}: {e}", n + 1))?;
        if out.iter().any(|c| c == name) {
            return Err(format!("line {}: category `{name}` appears twice", n + 1));
        }
        out.push(name.to_string());
    }
    if out.is_empty() {
        return Err("no categories listed".into());
    }
    Ok(out)
}

/// Read one `.npy` file of drawings → `N × 784` bytes.
pub fn read_npy(path: &Path) -> Result<Vec<u8>, ModelError> {
    let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
    read_npy_from(BufReader::new(file), None).map_err(|m| ModelError::bad_data(path, m))
}

/// Read drawings from an `.npy` stream. With `max_rows`, stop after that many rows (the rest of
/// the stream is not read: this is how the downloader takes the first N drawings).
pub fn read_npy_from(reader: impl Read, max_rows: Option<usize>) -> Result<Vec<u8>, String> {
    let npy = npyz::NpyFile::new(reader).map_err(|e| format!("not a valid .npy file: {e}"))?;
    rows_from_npy(npy, max_rows)
}

fn rows_from_npy<R: Read>(
    npy: npyz::NpyFile<R>,
    max_rows: Option<usize>,
) -> Result<Vec<u8>, String> {
    let shape = npy.shape().to_vec();
    let rows = match shape.as_slice() {
        [n, 784] | [n, 1, 784] | [n, 28, 28] => *n,
        _ => {
            return Err(format!(
                "shape {shape:?} is not (N,784), (N,1,784) or (N,28,28): not 28x28 drawings"
            ));
        }
    };
    if npy.order() == npyz::Order::Fortran && rows > 1 {
        return Err("Fortran-ordered arrays are not supported; save with C order".into());
    }
    let dtype = npy.dtype().descr();
    let data = npy
        .data::<u8>()
        .map_err(|_| format!("dtype {dtype} is not uint8 (|u1)"))?;
    let take = max_rows.map_or(rows, |m| (m as u64).min(rows)) as usize;
    let mut out = Vec::with_capacity(take * IMAGE_PIXELS);
    for value in data.take(take * IMAGE_PIXELS) {
        out.push(value.map_err(|e| {
            format!(
                "truncated or unreadable data after {} of {} bytes: {e}",
                out.len(),
                rows as usize * IMAGE_PIXELS
            )
        })?);
    }
    Ok(out)
}

/// Read every array of an `.npz` bundle as drawings: `(name, N × 784 bytes)`, sorted by name.
pub fn read_npz(path: &Path) -> Result<Vec<(String, Vec<u8>)>, ModelError> {
    let mut archive = npyz::npz::NpzArchive::open(path)
        .map_err(|e| ModelError::bad_data(path, format!("not a valid .npz bundle: {e}")))?;
    let mut names: Vec<String> = archive.array_names().map(str::to_string).collect();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let npy = archive
            .by_name(&name)
            .map_err(|e| ModelError::bad_data(path, format!("array `{name}`: {e}")))?
            .ok_or_else(|| ModelError::bad_data(path, format!("array `{name}` is missing")))?;
        let rows = rows_from_npy(npy, None)
            .map_err(|m| ModelError::bad_data(path, format!("array `{name}`: {m}")))?;
        out.push((name, rows));
    }
    Ok(out)
}

/// Every `*.png` in `dir` (sorted by file name) → `N × 784` bytes.
pub fn read_png_dir(dir: &Path) -> Result<Vec<u8>, ModelError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| ModelError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("png")) && p.is_file())
        .collect();
    files.sort();
    let mut out = Vec::with_capacity(files.len() * IMAGE_PIXELS);
    for f in files {
        out.extend_from_slice(&read_png(&f)?);
    }
    Ok(out)
}

/// One PNG file → its 784 bytes.
pub fn read_png(path: &Path) -> Result<[u8; IMAGE_PIXELS], ModelError> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
    doodle_core::image::pixels_from_png(&bytes)
        .map_err(|e| ModelError::bad_data(path, e.to_string()))
}

/// Write `N × 784` bytes as a `(N, 784)` uint8 `.npy` file (what the pipeline's convert stage
/// produces and what [`read_npy`] reads).
pub fn write_npy(path: &Path, pixels: &[u8]) -> Result<(), ModelError> {
    if !pixels.len().is_multiple_of(IMAGE_PIXELS) {
        return Err(ModelError::Input(format!(
            "{} bytes is not a whole number of 784-byte drawings",
            pixels.len()
        )));
    }
    let file = File::create(path).map_err(|e| ModelError::io(path, e))?;
    let mut w = io::BufWriter::new(file);
    write_npy_to(&mut w, pixels).map_err(|e| ModelError::io(path, e))?;
    w.flush().map_err(|e| ModelError::io(path, e))
}

fn write_npy_to(w: &mut impl Write, pixels: &[u8]) -> io::Result<()> {
    let rows = (pixels.len() / IMAGE_PIXELS) as u64;
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[rows, IMAGE_PIXELS as u64])
        .writer(w)
        .begin_nd()?;
    writer.extend(pixels.iter().copied())?;
    writer.finish()
}

/// Write a `.npz` bundle with one `(N, 784)` uint8 array per `(name, pixels)`.
pub fn write_npz(path: &Path, arrays: &[(String, Vec<u8>)]) -> Result<(), ModelError> {
    let mut npz = npyz::npz::NpzWriter::create(path).map_err(|e| ModelError::io(path, e))?;
    for (name, pixels) in arrays {
        if !pixels.len().is_multiple_of(IMAGE_PIXELS) {
            return Err(ModelError::Input(format!(
                "array `{name}`: {} bytes is not a whole number of drawings",
                pixels.len()
            )));
        }
        let rows = (pixels.len() / IMAGE_PIXELS) as u64;
        let mut writer = npz
            .array::<u8>(name, Default::default())
            .and_then(|b| {
                b.default_dtype()
                    .shape(&[rows, IMAGE_PIXELS as u64])
                    .begin_nd()
            })
            .map_err(|e| ModelError::io(path, e))?;
        writer
            .extend(pixels.iter().copied())
            .and_then(|()| writer.finish())
            .map_err(|e| ModelError::io(path, e))?;
    }
    Ok(())
}
