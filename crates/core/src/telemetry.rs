//! Logging: `tracing` to stdout and to the service's own log file.
//!
//! Each service names its file after the design (`app.log` for the backend,
//! `dashboard_backend.log`, `pipeline_orchestrator.log`, `stage1.log` … `stage7.log`);
//! the folder is `telemetry.log_dir`. Both sinks carry timestamps and levels.

use std::io::{self, IsTerminal};
use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::TelemetrySettings;

/// Keeps the background log writer alive; drop it last (at the end of `main`) to flush.
#[derive(Debug)]
#[must_use = "dropping the guard stops the log file writer"]
pub struct TelemetryGuard {
    _file: WorkerGuard,
    _console: WorkerGuard,
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
pub fn init(
    log_file: &str,
    settings: &TelemetrySettings,
) -> Result<TelemetryGuard, TelemetryError> {
    let dir = &settings.log_dir;
    std::fs::create_dir_all(dir).map_err(|source| TelemetryError::LogDir {
        path: dir.display().to_string(),
        source,
    })?;
    let appender = tracing_appender::rolling::never(dir, Path::new(log_file));
    let (file_writer, file_guard) = tracing_appender::non_blocking(appender);
    // The console too is written by a background thread: a request never waits on a slow
    // terminal or a full pipe (past 128 000 pending lines, lines are dropped, not waited for).
    // Colours only for a terminal: a pipe, a file or `docker logs` would get escape codes.
    let console_ansi = io::stdout().is_terminal();
    let (console_writer, console_guard) = tracing_appender::non_blocking(io::stdout());
    init_with(settings, console_writer, console_ansi, file_writer)?;
    Ok(TelemetryGuard {
        _file: file_guard,
        _console: console_guard,
    })
}

/// Install the global subscriber writing to two arbitrary sinks, the console's text lines in
/// colour when `console_ansi` (the file's never).
pub fn init_with<A, B>(
    settings: &TelemetrySettings,
    console: A,
    console_ansi: bool,
    file: B,
) -> Result<(), TelemetryError>
where
    A: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    B: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = filter(settings)?;
    let registry = tracing_subscriber::registry().with(filter);
    let result = if settings.json {
        registry
            .with(tracing_subscriber::fmt::layer().json().with_writer(console))
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_ansi(false)
                    .with_writer(file),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(console_ansi)
                    .with_writer(console),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .fmt_fields(PlainFields::default())
                    .with_writer(file),
            )
            .try_init()
    };
    result.map_err(|_| TelemetryError::AlreadyInstalled)
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
