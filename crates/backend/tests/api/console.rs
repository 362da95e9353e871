use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Piped to a file, `docker logs` or another program, the console gets plain text: colour codes
/// are for a terminal only.
#[test]
fn the_console_log_is_plain_text_when_stdout_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let mut backend = Command::new(env!("CARGO_BIN_EXE_backend"))
        .env_remove("DOODLE_CONFIG")
        .env_remove("RUST_LOG")
        .env("DOODLE_BACKEND__PORT", "0")
        .env("DOODLE_TELEMETRY__LOG_DIR", dir.path().join("logs"))
        .env("IMG_DATA_LOCATION", dir.path().join("img"))
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(backend.stdout.take().unwrap()).lines();
    let ready = lines
        .by_ref()
        .map(Result::unwrap)
        .find(|l| l.contains("backend ready"));
    backend.kill().unwrap();
    backend.wait().unwrap();
    let ready = ready.expect("the backend logs that it is ready");
    assert!(ready.contains("INFO"), "{ready:?}");
    assert!(!ready.contains('\u{1b}'), "escape codes in {ready:?}");
}
