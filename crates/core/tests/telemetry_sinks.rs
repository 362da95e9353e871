//! What each sink gets. The subscriber is scoped with `with_default`, so both cases run in one
//! binary.

use std::io;
use std::sync::{Arc, Mutex};

use doodle_core::config::TelemetrySettings;
use doodle_core::telemetry::{self, Both, Sinks};

/// An in-memory sink.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Sink {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn log_through(coloured: bool, json: bool) -> (String, String) {
    let settings = TelemetrySettings {
        level: "info".into(),
        json,
        ..TelemetrySettings::default()
    };
    // RUST_LOG would override the level under test.
    assert!(std::env::var("RUST_LOG").unwrap_or_default().is_empty());
    let (console, file) = (Sink::default(), Sink::default());
    let subscriber = if coloured {
        let sinks = Sinks::Coloured {
            console: Mutex::new(console.clone()),
            file: Mutex::new(file.clone()),
        };
        telemetry::subscriber(&settings, sinks)
    } else {
        let sinks = Sinks::Same(Mutex::new(Both(console.clone(), file.clone())));
        telemetry::subscriber::<_, fn() -> io::Sink>(&settings, sinks)
    }
    .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(request_id = "abc", status = 200, "answered");
        tracing::debug!("filtered out");
        tracing::warn!(request_id = "def", "refused");
    });
    (console.text(), file.text())
}

#[test]
fn without_colour_both_sinks_get_the_same_lines() {
    let (console, file) = log_through(false, false);
    assert_eq!(console, file);
    let lines: Vec<&str> = file.lines().collect();
    assert_eq!(lines.len(), 2, "{file}");
    assert!(
        lines[0].contains(" INFO ")
            && lines[0].contains("answered")
            && lines[0].contains("request_id=\"abc\"")
            && lines[0].contains("status=200"),
        "{file}"
    );
    assert!(
        lines[1].contains(" WARN ") && lines[1].contains("refused"),
        "{file}"
    );
    assert!(!file.contains('\u{1b}'), "no escape codes: {file:?}");
}

#[test]
fn json_lines_go_to_both_sinks() {
    let (console, file) = log_through(false, true);
    assert_eq!(console, file);
    let lines: Vec<serde_json::Value> = file
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{file}");
    assert_eq!(lines[0]["fields"]["request_id"], "abc");
    assert_eq!(lines[0]["level"], "INFO");
}

#[test]
fn json_is_never_coloured() {
    let (console, file) = log_through(true, true);
    assert!(!console.contains('\u{1b}'), "{console:?}");
    // Two layers here, each stamping its own time: the lines agree on everything else.
    let without_time = |text: &str| -> Vec<serde_json::Value> {
        text.lines()
            .map(|l| {
                let mut line: serde_json::Value = serde_json::from_str(l).unwrap();
                line.as_object_mut().unwrap().remove("timestamp");
                line
            })
            .collect()
    };
    assert_eq!(without_time(&console), without_time(&file));
    assert_eq!(without_time(&console).len(), 2, "{console}");
}

#[test]
fn a_coloured_console_leaves_the_file_plain() {
    let (console, file) = log_through(true, false);
    assert!(
        console.contains('\u{1b}'),
        "the console is coloured: {console:?}"
    );
    assert!(!file.contains('\u{1b}'), "the file is not: {file:?}");
    assert_eq!(console.lines().count(), 2, "{console}");
    assert_eq!(file.lines().count(), 2, "{file}");
    assert!(file.contains("request_id=\"abc\""), "{file}");
}
