use std::path::Path;

use doodle_ui_server::error::StartupError;
use doodle_ui_server::startup::{AppState, Application};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{page_dir, settings};

#[test]
fn a_folder_without_index_html_stops_start_up_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let err = AppState::new(&settings(dir.path())).unwrap_err();
    assert!(matches!(err, StartupError::NoIndexHtml(_)), "{err:?}");
    assert!(err.to_string().contains("DOODLE_UI__STATIC_DIR"), "{err}");
}

#[test]
fn a_backend_url_that_is_not_http_stops_start_up() {
    let dir = page_dir();
    let mut s = settings(dir.path());
    s.backend_url = "ftp://example.com".into();
    let err = AppState::new(&s).unwrap_err();
    assert!(matches!(err, StartupError::BackendUrl { .. }), "{err:?}");
}

#[tokio::test]
async fn application_serves_the_page_on_a_free_port_and_stops_on_signal() {
    let dir = page_dir();
    let app = Application::build(&settings(dir.path())).await.unwrap();
    let addr = app.local_addr();
    assert_ne!(addr.port(), 0);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));

    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /config.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(
        reply.contains(r#""backend_url":"http://backend.test:8000""#),
        "{reply}"
    );

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

/// The page in the repository: index.html exists and every file it links to is there.
#[test]
fn the_repository_page_links_only_files_that_exist() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui");
    let html = std::fs::read_to_string(ui.join("index.html")).expect("ui/index.html exists");
    let mut linked = 0;
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let target = part.split('"').next().unwrap();
            if target.starts_with("http") || target.starts_with('#') {
                continue;
            }
            let file = ui.join(target.trim_start_matches("./").trim_start_matches('/'));
            assert!(
                file.is_file(),
                "index.html links {target}, which is missing"
            );
            linked += 1;
        }
    }
    assert!(linked >= 2, "index.html should link its script and style");
    // Modules imported by the entry script exist too.
    for entry in std::fs::read_dir(ui.join("js")).unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap();
        for part in source.split("from './").skip(1) {
            let target = part.split('\'').next().unwrap();
            assert!(
                ui.join("js").join(target).is_file(),
                "{} imports ./{target}, which is missing",
                path.display()
            );
        }
    }
}
