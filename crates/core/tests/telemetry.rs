//! The log file gets timestamped, levelled lines. One test per binary: the subscriber is global.

use doodle_core::config::TelemetrySettings;

#[test]
fn init_writes_timestamped_levelled_lines_to_the_named_file() {
    let dir = tempfile::tempdir().unwrap();
    let settings = TelemetrySettings {
        log_dir: dir.path().join("logs"),
        level: "info".into(),
        json: false,
    };
    // RUST_LOG would override the level under test.
    assert!(std::env::var("RUST_LOG").unwrap_or_default().is_empty());
    let guard = doodle_core::telemetry::init("app.log", &settings).unwrap();
    let span = tracing::info_span!("request", request_id = "abc", route = "/save-image/");
    span.in_scope(|| tracing::info!("saved an image"));
    tracing::debug!("filtered out");
    let err = std::io::Error::other("disk full");
    tracing::error!(error = %doodle_core::ErrorChain(&err), "saving failed");
    drop(guard); // flushes the non-blocking writer

    let text = std::fs::read_to_string(dir.path().join("logs/app.log")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains(" INFO ")
            && lines[0].contains("saved an image")
            && lines[0].contains("request{request_id=\"abc\" route=\"/save-image/\"}"),
        "{text}"
    );
    assert!(
        lines[1].contains("ERROR") && lines[1].contains("disk full"),
        "{text}"
    );
    // An RFC 3339 timestamp starts each line: 2026-11-27T13:55:01.123456Z
    for line in lines {
        let ts = line.split_whitespace().next().unwrap();
        assert!(
            ts.len() >= 20 && ts.as_bytes()[4] == b'-' && ts.contains('T'),
            "{line}"
        );
    }
    assert!(!text.contains('\u{1b}'), "no ANSI colours in the file");
}
