//! The end of a stage's log, read from the path [`doodle_runs::stage_log_path`] builds from a
//! run id and a stage number (the orchestrator writes with the same function).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use doodle_runs::{RunId, stage_log_path};

/// The last bytes of a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    /// Whole lines (invalid UTF-8 replaced).
    pub text: String,
    /// The file's size in bytes.
    pub size: u64,
    /// Whether the start of the file was left out.
    pub truncated: bool,
}

impl Tail {
    pub fn lines(&self) -> usize {
        self.text.lines().count()
    }
}

/// The log of `stage` in `run` under `log_dir`.
pub fn path(log_dir: &Path, run: RunId, stage: usize) -> PathBuf {
    stage_log_path(log_dir, run, stage)
}

/// The last `max_bytes` of `path`, from the first whole line in them (a line longer than
/// `max_bytes` is kept cut); `None` when there is no such file.
pub fn tail(path: &Path, max_bytes: u64) -> io::Result<Option<Tail>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(None);
    }
    let size = meta.len();
    let truncated = size > max_bytes;
    let from = size.saturating_sub(max_bytes);
    file.seek(SeekFrom::Start(from))?;
    let mut bytes = Vec::with_capacity(usize::try_from(size - from).unwrap_or(0));
    file.take(max_bytes).read_to_end(&mut bytes)?;
    let mut text = &bytes[..];
    if truncated && let Some(newline) = text.iter().position(|&b| b == b'\n') {
        // The first line is most likely cut: start at the next one.
        if newline + 1 < text.len() {
            text = &text[newline + 1..];
        }
    }
    Ok(Some(Tail {
        text: String::from_utf8_lossy(text).into_owned(),
        size,
        truncated,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_log_is_answered_whole() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stage1.log");
        std::fs::write(&file, "one\ntwo\n").unwrap();
        let tail = tail(&file, 1024).unwrap().unwrap();
        assert_eq!(tail.text, "one\ntwo\n");
        assert_eq!((tail.size, tail.truncated, tail.lines()), (8, false, 2));
    }

    #[test]
    fn a_long_log_is_cut_to_whole_lines_at_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stage1.log");
        let text: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&file, &text).unwrap();
        let tail = tail(&file, 100).unwrap().unwrap();
        assert!(tail.truncated);
        assert!(tail.text.ends_with("line 999\n"), "{}", tail.text);
        assert!(
            tail.text.starts_with("line "),
            "starts at a whole line: {}",
            tail.text
        );
        assert!(tail.text.len() <= 100);
        assert_eq!(tail.size, text.len() as u64);
    }

    #[test]
    fn a_missing_log_or_a_folder_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(tail(&dir.path().join("nope.log"), 10).unwrap(), None);
        assert_eq!(tail(dir.path(), 10).unwrap(), None);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stage1.log");
        std::fs::write(&file, b"ok \xff\n").unwrap();
        assert_eq!(tail(&file, 100).unwrap().unwrap().text, "ok \u{fffd}\n");
    }
}
