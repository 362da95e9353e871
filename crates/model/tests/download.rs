//! The downloader against a tiny local HTTP server (the real bucket is unreachable here):
//! it asks for a byte range, reads only the first N rows, and names the URL when it fails.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use common::{drawings, names};
use doodle_model::{ModelError, data, download};

/// Every request's path and `Range` header, in order.
type RequestLog = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// Serve `files` (name → bytes) over HTTP/1.1, honouring `Range: bytes=a-b` when `ranges`;
/// records each request's path and Range header.
fn serve(files: Vec<(String, Vec<u8>)>, ranges: bool) -> (String, RequestLog) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut range = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("range:") {
                    range = Some(v.trim().to_string());
                }
            }
            log.lock().unwrap().push((path.clone(), range.clone()));
            let file = files.iter().find(|(name, _)| format!("/qd/{name}") == path);
            let response = match (file, range) {
                (None, _) => {
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        .to_vec()
                }
                (Some((_, body)), Some(r)) if ranges => {
                    let (a, b) = r.trim_start_matches("bytes=").split_once('-').unwrap();
                    let a: usize = a.parse().unwrap();
                    let b: usize = b.parse::<usize>().unwrap().min(body.len() - 1);
                    let part = &body[a..=b];
                    let mut resp = format!(
                        "HTTP/1.1 206 Partial Content\r\ncontent-length: {}\r\ncontent-range: bytes {a}-{b}/{}\r\nconnection: close\r\n\r\n",
                        part.len(),
                        body.len()
                    )
                    .into_bytes();
                    resp.extend_from_slice(part);
                    resp
                }
                (Some((_, body)), _) => {
                    let mut resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    resp.extend_from_slice(body);
                    resp
                }
            };
            let _ = stream.write_all(&response);
            let _ = stream.flush();
            let mut rest = Vec::new();
            let _ = stream.shutdown(std::net::Shutdown::Write);
            let _ = stream.read_to_end(&mut rest);
        }
    });
    (format!("http://{addr}/qd"), seen)
}

fn npy_bytes(px: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.npy");
    data::write_npy(&p, px).unwrap();
    std::fs::read(p).unwrap()
}

#[test]
fn remote_names_use_quickdraws_spelling() {
    assert_eq!(download::remote_name("alarm_clock"), "alarm%20clock.npy");
    assert_eq!(download::remote_name("cat"), "cat.npy");
}

#[test]
fn downloads_only_the_first_rows_with_a_range_request() {
    let (cat, clock) = (drawings(40, 1), drawings(30, 2));
    let (url, seen) = serve(
        vec![
            ("cat.npy".into(), npy_bytes(&cat)),
            ("alarm%20clock.npy".into(), npy_bytes(&clock)),
        ],
        true,
    );
    let out = tempfile::tempdir().unwrap();
    let files =
        download::download_categories(&url, &names(&["cat", "alarm_clock"]), 5, out.path(), false)
            .unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(
        data::read_npy(&out.path().join("cat.npy")).unwrap(),
        &cat[..5 * 784]
    );
    assert_eq!(
        data::read_npy(&out.path().join("alarm_clock.npy")).unwrap(),
        &clock[..5 * 784]
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    for (_, range) in &seen {
        let range = range.as_deref().expect("a Range header");
        assert_eq!(range, format!("bytes=0-{}", 4096 + 5 * 784 - 1));
    }

    // A second run keeps the files it already has.
    download::download_categories(&url, &names(&["cat", "alarm_clock"]), 5, out.path(), false)
        .unwrap();
    assert_eq!(seen.len(), 2);
}

#[test]
fn a_server_that_ignores_range_still_works() {
    let cat = drawings(20, 3);
    let (url, _) = serve(vec![("cat.npy".into(), npy_bytes(&cat))], false);
    let out = tempfile::tempdir().unwrap();
    download::download_categories(&url, &names(&["cat"]), 4, out.path(), false).unwrap();
    assert_eq!(
        data::read_npy(&out.path().join("cat.npy")).unwrap(),
        &cat[..4 * 784]
    );
}

#[test]
fn a_missing_category_is_an_error_naming_the_url() {
    let (url, _) = serve(vec![], true);
    let out = tempfile::tempdir().unwrap();
    let err =
        download::download_categories(&url, &names(&["owl"]), 4, out.path(), false).unwrap_err();
    assert!(matches!(err, ModelError::Download { .. }));
    let msg = err.to_string();
    assert!(msg.contains("/qd/owl.npy") && msg.contains("404"), "{msg}");
    assert!(!out.path().join("owl.npy").exists());
}

#[test]
fn an_unreachable_server_is_an_error_not_a_panic() {
    // Bind then drop: nothing listens on this port any more.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = tempfile::tempdir().unwrap();
    let err = download::download_categories(
        &format!("http://127.0.0.1:{port}"),
        &names(&["cat"]),
        4,
        out.path(),
        false,
    )
    .unwrap_err();
    assert!(matches!(err, ModelError::Download { .. }), "{err}");
}
