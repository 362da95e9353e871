//! The pipeline's `.npy` files, streamed: a header, then `N × 784` bytes.
//!
//! Stages 2 and 3 append rows to files that only grow, so they never load a file: they read its
//! header, then copy its data bytes into the new file behind a new header. Memory stays one copy
//! buffer whatever the file's size. Accepted: NumPy format 1.0–3.0, dtype `u1`, C order, shape
//! `(N, 784)`, `(N, 1, 784)` or `(N, 28, 28)` (the layouts `doodle_model::data` reads); written:
//! format 1.0, `|u1`, `(N, 784)`.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use doodle_core::image::PIXELS;

use crate::fsx::TempFile;

const MAGIC: &[u8] = b"\x93NUMPY";

#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
}

impl NpyError {
    fn io(path: &Path, source: io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// An open `.npy` of drawings, positioned at its first data byte.
#[derive(Debug)]
pub struct NpyFile {
    path: PathBuf,
    reader: BufReader<File>,
    rows: u64,
}

impl NpyFile {
    /// Open and check the header; the file's length must match the shape exactly.
    pub fn open(path: &Path) -> Result<Self, NpyError> {
        let file = File::open(path).map_err(|e| NpyError::io(path, e))?;
        let len = file.metadata().map_err(|e| NpyError::io(path, e))?.len();
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let (rows, header_len) = read_header(&mut reader).map_err(|message| NpyError::Format {
            path: path.to_path_buf(),
            message,
        })?;
        let expected = header_len + rows * PIXELS as u64;
        if len != expected {
            return Err(NpyError::Format {
                path: path.to_path_buf(),
                message: format!(
                    "{len} bytes, but a header for {rows} drawings needs {expected}: truncated or padded"
                ),
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            rows,
        })
    }

    /// Number of drawings.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Copy every data byte to `out`.
    pub fn copy_data(mut self, out: &mut impl Write) -> Result<(), NpyError> {
        let copied = io::copy(&mut self.reader, out).map_err(|e| NpyError::io(&self.path, e))?;
        debug_assert_eq!(copied, self.rows * PIXELS as u64);
        Ok(())
    }

    /// Every drawing's bytes (for tests and small files).
    pub fn read_all(mut self) -> Result<Vec<u8>, NpyError> {
        let mut out = Vec::with_capacity((self.rows as usize) * PIXELS);
        self.reader
            .read_to_end(&mut out)
            .map_err(|e| NpyError::io(&self.path, e))?;
        Ok(out)
    }
}

/// Parse the header → (rows, bytes before the data).
fn read_header(r: &mut impl Read) -> Result<(u64, u64), String> {
    let mut lead = [0u8; 8];
    r.read_exact(&mut lead)
        .map_err(|_| "too short for a .npy header".to_string())?;
    if &lead[..6] != MAGIC {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let (len_bytes, prefix) = match lead[6] {
        1 => (2, 10),
        2 | 3 => (4, 12),
        v => return Err(format!(".npy format version {v} is not supported")),
    };
    let mut len = [0u8; 4];
    r.read_exact(&mut len[..len_bytes])
        .map_err(|_| "truncated .npy header".to_string())?;
    let header_len = u32::from_le_bytes(len) as usize;
    if header_len > 1 << 16 {
        return Err(format!("a {header_len}-byte .npy header is not plausible"));
    }
    let mut dict = vec![0u8; header_len];
    r.read_exact(&mut dict)
        .map_err(|_| "truncated .npy header".to_string())?;
    let dict = String::from_utf8(dict).map_err(|_| "the .npy header is not text".to_string())?;
    let rows = rows_from_dict(&dict)?;
    Ok((rows, (prefix + header_len) as u64))
}

/// The row count from a header dict, checking dtype, order and shape.
fn rows_from_dict(dict: &str) -> Result<u64, String> {
    let descr = value_of(dict, "descr").ok_or("the header has no 'descr'")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    if !matches!(descr, "|u1" | "<u1" | ">u1" | "u1" | "=u1") {
        return Err(format!("dtype {descr} is not uint8 (|u1)"));
    }
    let shape = value_of(dict, "shape").ok_or("the header has no 'shape'")?;
    let dims: Vec<u64> = shape
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<u64>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("shape {shape} is not a tuple of whole numbers"))?;
    let rows = match dims.as_slice() {
        [n, 784] | [n, 1, 784] | [n, 28, 28] => *n,
        _ => {
            return Err(format!(
                "shape {shape} is not (N,784), (N,1,784) or (N,28,28)"
            ));
        }
    };
    let fortran = value_of(dict, "fortran_order").ok_or("the header has no 'fortran_order'")?;
    if fortran.starts_with("True") && rows > 1 {
        return Err("Fortran-ordered arrays are not supported; save with C order".into());
    }
    Ok(rows)
}

/// The text of `'key': value` up to the next top-level comma (a tuple counts as one value).
fn value_of<'a>(dict: &'a str, key: &str) -> Option<&'a str> {
    let at = dict
        .find(&format!("'{key}':"))
        .or_else(|| dict.find(&format!("\"{key}\":")))?;
    let rest = dict[at + key.len() + 3..].trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Some(rest[..end].trim())
}

/// The format 1.0 header for `rows` drawings of 784 bytes, padded to 64 bytes.
pub fn header(rows: u64) -> Vec<u8> {
    let mut dict = format!("{{'descr': '|u1', 'fortran_order': False, 'shape': ({rows}, 784), }}");
    let unpadded = MAGIC.len() + 2 + 2 + dict.len() + 1;
    dict.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    dict.push('\n');
    let mut out = Vec::with_capacity(10 + dict.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// One piece of a stacked file: an existing file's rows, or rows in memory.
#[derive(Debug)]
pub enum Part<'a> {
    File(NpyFile),
    Rows(&'a [u8]),
}

impl Part<'_> {
    fn rows(&self) -> u64 {
        match self {
            Part::File(f) => f.rows(),
            Part::Rows(r) => (r.len() / PIXELS) as u64,
        }
    }
}

/// A written, fsynced temp file that is ready to be renamed over its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    pub tmp: PathBuf,
    pub sha256: String,
    pub rows: u64,
}

/// Write `parts` one after the other as one `.npy` in a temp file beside `target`.
pub fn write_stacked(target: &Path, parts: Vec<Part<'_>>) -> Result<Staged, NpyError> {
    let rows: u64 = parts.iter().map(Part::rows).sum();
    let mut tmp = TempFile::beside(target).map_err(|e| NpyError::io(target, e))?;
    let tmp_path = tmp.path().to_path_buf();
    let written = write_parts(&mut tmp, rows, parts)
        .and_then(|()| tmp.finish().map_err(|e| NpyError::io(&tmp_path, e)));
    match written {
        Ok((tmp, sha256)) => Ok(Staged { tmp, sha256, rows }),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp_path);
            Err(e)
        }
    }
}

fn write_parts(tmp: &mut TempFile, rows: u64, parts: Vec<Part<'_>>) -> Result<(), NpyError> {
    let tmp_path = tmp.path().to_path_buf();
    let io_err = |e| NpyError::io(&tmp_path, e);
    tmp.write_all(&header(rows)).map_err(io_err)?;
    for part in parts {
        match part {
            Part::File(f) => f.copy_data(tmp)?,
            Part::Rows(r) => tmp.write_all(r).map_err(io_err)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_64_byte_aligned_and_read_back() {
        for rows in [0, 1, 9, 123_456_789] {
            let h = header(rows);
            assert_eq!(h.len() % 64, 0, "{rows}");
            let (n, len) = read_header(&mut &h[..]).unwrap();
            assert_eq!((n, len), (rows, h.len() as u64));
        }
    }

    #[test]
    fn header_checks_name_the_problem() {
        let bad = |dict: &str| rows_from_dict(dict).unwrap_err();
        assert!(
            bad("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 784), }").contains("uint8")
        );
        assert!(
            bad("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 785), }").contains("shape")
        );
        assert!(
            bad("{'descr': '|u1', 'fortran_order': True, 'shape': (2, 28, 28), }")
                .contains("Fortran")
        );
        assert_eq!(
            rows_from_dict("{'descr': '|u1', 'fortran_order': False, 'shape': (5, 1, 784), }"),
            Ok(5)
        );
        assert!(
            read_header(&mut &b"PK\x03\x04 not npy"[..])
                .unwrap_err()
                .contains("magic")
        );
    }

    #[test]
    fn stacking_a_file_and_rows_keeps_every_byte_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let a: Vec<u8> = (0..2 * PIXELS).map(|i| (i % 251) as u8).collect();
        let b: Vec<u8> = (0..3 * PIXELS).map(|i| (i % 7) as u8).collect();
        let first = dir.path().join("a.npy");
        let staged = write_stacked(&first, vec![Part::Rows(&a)]).unwrap();
        std::fs::rename(&staged.tmp, &first).unwrap();
        let target = dir.path().join("b.npy");
        let parts = vec![Part::File(NpyFile::open(&first).unwrap()), Part::Rows(&b)];
        let staged = write_stacked(&target, parts).unwrap();
        assert_eq!(staged.rows, 5);
        assert_eq!(crate::fsx::sha256_file(&staged.tmp).unwrap(), staged.sha256);
        let back = NpyFile::open(&staged.tmp).unwrap();
        assert_eq!(back.rows(), 5);
        assert_eq!(back.read_all().unwrap(), [a, b].concat());
    }

    #[test]
    fn a_truncated_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.npy");
        let mut bytes = header(2);
        bytes.extend_from_slice(&[0; PIXELS + 5]);
        std::fs::write(&path, bytes).unwrap();
        let err = NpyFile::open(&path).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
    }
}
