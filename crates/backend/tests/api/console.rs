use std::io::{BufRead, BufReader, Lines, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdout, Command, Stdio};

/// The backend binary with its stdout piped, and the port it logged.
struct Backend {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    port: u16,
    /// What the log said about the start.
    ready: String,
    _dir: tempfile::TempDir,
}

impl Backend {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_backend"))
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
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines
            .by_ref()
            .map(Result::unwrap)
            .find(|l| l.contains("backend ready"))
            .expect("the backend logs that it is ready");
        let port = ready
            .split_whitespace()
            .find_map(|field| field.strip_prefix("port="))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {ready:?}"));
        Self {
            child,
            lines,
            port,
            ready,
            _dir: dir,
        }
    }

    /// One request on its own connection; the status line of the answer.
    fn request(&self, method: &str, path: &str, request_id: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nx-request-id: {request_id}\r\n\
             content-length: 0\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer.lines().next().unwrap_or_default().to_owned()
    }

    /// The log lines up to and including the first that contains `marker`.
    fn lines_until(&mut self, marker: &str) -> Vec<String> {
        let mut seen = Vec::new();
        for line in self.lines.by_ref() {
            let line = line.unwrap();
            let done = line.contains(marker);
            seen.push(line);
            if done {
                return seen;
            }
        }
        panic!("the log ended before {marker:?}: {seen:#?}");
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Piped to a file, `docker logs` or another program, the console gets plain text: colour codes
/// are for a terminal only.
#[test]
fn the_console_log_is_plain_text_when_stdout_is_not_a_terminal() {
    let backend = Backend::start();
    let ready = &backend.ready;
    assert!(ready.contains("INFO"), "{ready:?}");
    assert!(!ready.contains('\u{1b}'), "escape codes in {ready:?}");
}

/// One line per request, with its id, route, status and latency; an error is that one line,
/// with its type and cause, not an access line plus an error line.
#[test]
fn each_request_is_logged_once_with_its_id() {
    let mut backend = Backend::start();
    assert!(
        backend
            .request("GET", "/health", "log-ok")
            .contains(" 200 ")
    );
    assert!(backend.request("GET", "/nope", "log-404").contains(" 404 "));
    assert!(
        backend
            .request("GET", "/health", "log-last")
            .contains(" 200 ")
    );
    let lines = backend.lines_until("request_id=log-last");

    assert_one_line_with(
        &lines,
        "request_id=log-ok",
        &[
            " INFO ",
            "method=GET",
            "route=/health",
            "status=200",
            "latency=",
        ],
    );
    assert_one_line_with(
        &lines,
        "request_id=log-404",
        &[
            " WARN ",
            "status=404",
            "error_type=not_found",
            "endpoint=unmatched",
            "Not Found",
        ],
    );
}

/// Exactly one of `lines` carries `id`, and it holds every one of `fields`.
fn assert_one_line_with(lines: &[String], id: &str, fields: &[&str]) {
    let found: Vec<&String> = lines.iter().filter(|l| l.contains(id)).collect();
    assert_eq!(found.len(), 1, "{id}: {lines:#?}");
    for field in fields {
        assert!(found[0].contains(field), "no {field:?} in {:?}", found[0]);
    }
}
