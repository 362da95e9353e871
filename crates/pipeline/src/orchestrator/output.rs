//! A stage's output: every line of stdout and stderr appended to the run's `stage<N>.log`,
//! the last lines kept for the orchestrator's log, and the protocol lines read.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::oneshot;

use crate::protocol::{FAILURE_PREFIX, StageOutput};

/// How many of a stage's last lines the orchestrator's log shows.
pub(crate) const LAST_LINES: usize = 20;
/// Longer lines are cut to this many characters in the kept last lines (not in the stage log).
const KEPT_LINE_CHARS: usize = 500;

/// What a stage printed, as far as the orchestrator cares.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    /// Its last [`LAST_LINES`] lines, oldest first.
    pub last_lines: Vec<String>,
    /// Its (last) `result:` line, parsed; `Err` with the reason when it could not be read.
    pub result: Option<Result<StageOutput, String>>,
    /// The reason of its (last) `failure:` line.
    pub failure: Option<String>,
    /// From just before the spawn to its first line (either stream).
    pub first_line: Option<Duration>,
    /// How many lines it printed.
    pub lines: u64,
}

/// The run's log file of one stage (`<log_dir>/runs/<run_id>/stage<N>.log`).
#[derive(Debug)]
pub(crate) struct StageLog {
    file: BufWriter<File>,
    path: PathBuf,
    broken: bool,
}

impl StageLog {
    /// Create the file (and its folders); a file left by an earlier database's run of the
    /// same id is replaced.
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)?;
        Ok(Self {
            file: BufWriter::new(file),
            path: path.to_path_buf(),
            broken: false,
        })
    }

    fn write_line(&mut self, line: &str) {
        let written = self
            .file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.write_all(b"\n"));
        self.check(written);
    }

    fn flush(&mut self) {
        let flushed = self.file.flush();
        self.check(flushed);
    }

    /// A write error is logged once; the stage goes on (its outcome is its exit status).
    fn check(&mut self, result: io::Result<()>) {
        if let Err(err) = result
            && !self.broken
        {
            self.broken = true;
            tracing::warn!(path = %self.path.display(), error = %err, "cannot write the stage log");
        }
    }
}

/// Reads both streams to their end (or until `cancel` fires) and returns what they said.
pub(crate) async fn collect(
    stdout: impl AsyncRead + Unpin,
    stderr: impl AsyncRead + Unpin,
    mut lines: Lines,
    mut cancel: oneshot::Receiver<()>,
) -> Collected {
    let (mut out, mut err) = (BufReader::new(stdout), BufReader::new(stderr));
    let (mut out_buf, mut err_buf) = (Vec::new(), Vec::new());
    let (mut out_open, mut err_open) = (true, true);
    while out_open || err_open {
        // read_until keeps a partly read line in its buffer when the other branch wins.
        tokio::select! {
            read = out.read_until(b'\n', &mut out_buf), if out_open => {
                out_open = lines.take(read, &mut out_buf);
            }
            read = err.read_until(b'\n', &mut err_buf), if err_open => {
                err_open = lines.take(read, &mut err_buf);
            }
            _ = &mut cancel => break,
        }
        if out.buffer().is_empty() && err.buffer().is_empty() {
            lines.log.flush();
        }
    }
    lines.finish()
}

/// The line handler [`collect`] feeds.
#[derive(Debug)]
pub(crate) struct Lines {
    log: StageLog,
    started: Instant,
    run: i64,
    stage: usize,
    last: VecDeque<String>,
    collected: Collected,
}

impl Lines {
    /// Lines of stage `stage` of `run`, started at `started`, into `log`.
    pub(crate) fn new(log: StageLog, started: Instant, run: i64, stage: usize) -> Self {
        Self {
            log,
            started,
            run,
            stage,
            last: VecDeque::with_capacity(LAST_LINES),
            collected: Collected::default(),
        }
    }

    /// Handle one `read_until` result; false once the stream is done.
    fn take(&mut self, read: io::Result<usize>, buf: &mut Vec<u8>) -> bool {
        match read {
            Ok(0) => false,
            Ok(_) => {
                let text = String::from_utf8_lossy(buf);
                let line = text.trim_end_matches(['\n', '\r']).to_string();
                buf.clear();
                self.line(&line);
                true
            }
            Err(err) => {
                tracing::warn!(stage = self.stage, error = %err, "cannot read the stage's output");
                false
            }
        }
    }

    fn line(&mut self, line: &str) {
        if self.collected.first_line.is_none() {
            let elapsed = self.started.elapsed();
            self.collected.first_line = Some(elapsed);
            tracing::info!(
                run = self.run,
                stage = self.stage,
                first_line_ms = millis(elapsed),
                "stage {}: first output line",
                self.stage
            );
        }
        self.collected.lines += 1;
        self.log.write_line(line);
        if let Some(parsed) = StageOutput::parse_line(line) {
            self.collected.result = Some(parsed.map_err(|e| e.to_string()));
        } else if let Some(reason) = line.strip_prefix(FAILURE_PREFIX) {
            self.collected.failure = Some(reason.trim().to_string());
        }
        if self.last.len() == LAST_LINES {
            self.last.pop_front();
        }
        self.last
            .push_back(line.chars().take(KEPT_LINE_CHARS).collect());
    }

    fn finish(mut self) -> Collected {
        self.log.flush();
        self.collected.last_lines = self.last.into();
        self.collected
    }
}

/// A duration in milliseconds, to the microsecond (the log's `*_ms` fields).
pub(crate) fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn both_streams_reach_the_log_and_the_protocol_lines_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs/1/stage1.log");
        let lines = Lines::new(StageLog::open(&path).unwrap(), Instant::now(), 1, 1);
        let stdout: &[u8] = b"hello\nresult: {\"new_images\": 5}\r\nsuccess";
        let stderr: &[u8] = b"warn\xff\nfailure: disk full\n";
        let (_keep, cancel) = oneshot::channel();
        let got = collect(stdout, stderr, lines, cancel).await;
        assert_eq!(got.lines, 5);
        assert!(got.first_line.is_some());
        let out = got.result.unwrap().unwrap();
        assert_eq!(out.new_images, Some(5));
        assert_eq!(got.failure.as_deref(), Some("disk full"));
        let log = std::fs::read_to_string(&path).unwrap();
        for line in [
            "hello",
            "success",
            "warn\u{fffd}",
            "result: {\"new_images\": 5}",
        ] {
            assert!(log.lines().any(|l| l == line), "{line:?} not in {log:?}");
        }
    }

    #[tokio::test]
    async fn only_the_last_lines_are_kept_and_a_bad_result_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let lines = Lines::new(
            StageLog::open(&dir.path().join("s.log")).unwrap(),
            Instant::now(),
            1,
            2,
        );
        let text: String =
            (0..50).map(|i| format!("line {i}\n")).collect::<String>() + "result: {nope\n";
        let (_keep, cancel) = oneshot::channel();
        let got = collect(text.as_bytes(), &b""[..], lines, cancel).await;
        assert_eq!(got.last_lines.len(), LAST_LINES);
        assert_eq!(got.last_lines[0], "line 31");
        assert!(got.result.unwrap().is_err());
    }
}
