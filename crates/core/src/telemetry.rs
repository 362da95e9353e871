//! Logging: `tracing` to stdout and to the service's own log file.
//!
//! Each service names its file after the design (`app.log` for the backend,
//! `dashboard_backend.log`, `pipeline_orchestrator.log`, `stage1.log` … `stage7.log`);
//! the folder is `telemetry.log_dir`. Both sinks carry timestamps and levels.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::Path;

use tracing::Subscriber;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::TelemetrySettings;

/// Keeps the background log writers alive; drop it last (at the end of `main`) to flush.
#[derive(Debug)]
#[must_use = "dropping the guard stops the log writers"]
pub struct TelemetryGuard {
    _writers: Vec<WorkerGuard>,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot create log folder {path}: {source}")]
    LogDir { path: String, source: io::Error },
    #[error("invalid log filter `{filter}`: {message}")]
    Filter { filter: String, message: String },
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// The filter: `RUST_LOG` when set, otherwise the configured level.
fn filter(settings: &TelemetrySettings) -> Result<EnvFilter, TelemetryError> {
    let spec = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| settings.level.clone());
    EnvFilter::try_new(&spec).map_err(|err| TelemetryError::Filter {
        filter: spec,
        message: err.to_string(),
    })
}

/// Install the global subscriber: stdout plus `<log_dir>/<log_file>`.
///
/// Both are written by a background thread: a request never waits on a slow terminal, a full
/// pipe or the disk (past 128 000 pending lines, lines are dropped, not waited for). That thread
/// writes through a buffer it flushes whenever it has caught up, so a burst of lines costs one
/// write per sink, and a quiet service's lines still appear at once.
pub fn init(
    log_file: &str,
    settings: &TelemetrySettings,
) -> Result<TelemetryGuard, TelemetryError> {
    let dir = &settings.log_dir;
    std::fs::create_dir_all(dir).map_err(|source| TelemetryError::LogDir {
        path: dir.display().to_string(),
        source,
    })?;
    let file = BufWriter::new(tracing_appender::rolling::never(dir, Path::new(log_file)));
    let console = BufWriter::new(io::stdout());
    // Colours only for a terminal: a pipe, a file or `docker logs` would get escape codes.
    if settings.json || !io::stdout().is_terminal() {
        let (both, guard) = tracing_appender::non_blocking(Both(console, file));
        subscriber::<_, fn() -> io::Sink>(settings, Sinks::Same(both))?
            .try_init()
            .map_err(|_| TelemetryError::AlreadyInstalled)?;
        Ok(TelemetryGuard {
            _writers: vec![guard],
        })
    } else {
        let (console, console_guard) = tracing_appender::non_blocking(console);
        let (file, file_guard) = tracing_appender::non_blocking(file);
        subscriber(settings, Sinks::Coloured { console, file })?
            .try_init()
            .map_err(|_| TelemetryError::AlreadyInstalled)?;
        Ok(TelemetryGuard {
            _writers: vec![console_guard, file_guard],
        })
    }
}

/// Where the log lines go.
#[derive(Debug)]
pub enum Sinks<A, B> {
    /// The same lines, plain text or JSON, to one writer (which may write them to several
    /// places: [`Both`]). Each line is formatted once.
    Same(A),
    /// A terminal gets coloured text; the file gets the same lines plain.
    Coloured { console: A, file: B },
}

/// The subscriber `init` installs: the configured filter, then one text or JSON layer per
/// format the sinks need.
pub fn subscriber<A, B>(
    settings: &TelemetrySettings,
    sinks: Sinks<A, B>,
) -> Result<Box<dyn Subscriber + Send + Sync>, TelemetryError>
where
    A: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    B: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let registry = tracing_subscriber::registry().with(filter(settings)?);
    Ok(match sinks {
        Sinks::Same(writer) if settings.json => Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_ansi(false)
                    .with_writer(writer),
            ),
        ),
        Sinks::Same(writer) => Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(writer),
            ),
        ),
        // JSON is never coloured.
        Sinks::Coloured { console, file } if settings.json => Box::new(
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .json()
                        .with_ansi(false)
                        .with_writer(console),
                )
                .with(
                    tracing_subscriber::fmt::layer()
                        .json()
                        .with_ansi(false)
                        .with_writer(file),
                ),
        ),
        Sinks::Coloured { console, file } => Box::new(
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_ansi(true)
                        .with_writer(console),
                )
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_ansi(false)
                        .fmt_fields(PlainFields::default())
                        .with_writer(file),
                ),
        ),
    })
}

/// Two writers as one: every write goes to both, and a failure of one does not keep the bytes
/// from the other.
#[derive(Debug)]
pub struct Both<A, B>(pub A, pub B);

impl<A: Write, B: Write> Write for Both<A, B> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let first = self.0.write_all(buf);
        let second = self.1.write_all(buf);
        first.and(second).map(|()| buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let first = self.0.flush();
        let second = self.1.flush();
        first.and(second)
    }
}

/// The file layer's field formatter. `tracing-subscriber` caches a span's formatted fields per
/// formatter *type*; with the same type on both layers the file would get the console's
/// ANSI-coloured span fields. A type of its own keeps the file plain.
#[derive(Debug, Default)]
struct PlainFields(tracing_subscriber::fmt::format::DefaultFields);

impl<'writer> tracing_subscriber::fmt::FormatFields<'writer> for PlainFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        writer: tracing_subscriber::fmt::format::Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        self.0.format_fields(writer, fields)
    }
}

/// For tests: logs to the test harness's captured output, once per process.
/// `TEST_LOG=1` shows them; otherwise only warnings and errors are kept.
pub fn init_for_tests() {
    use std::sync::Once;
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let level = if std::env::var_os("TEST_LOG").is_some() {
            "debug"
        } else {
            "warn"
        };
        let _ = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new(level))
            .with_test_writer()
            .try_init();
    });
}
