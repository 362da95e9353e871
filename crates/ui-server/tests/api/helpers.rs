use std::path::PathBuf;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use doodle_core::config::UiSettings;
use doodle_ui_server::startup::{AppState, router};
use http_body_util::BodyExt;
use tempfile::TempDir;
use tower::ServiceExt;

pub const BACKEND: &str = "http://backend.test:8000/";

/// A page folder like `ui/`, in a temp dir.
pub fn page_dir() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(
        root.join("index.html"),
        "<!doctype html><title>doodle</title>",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("js")).unwrap();
    // Long enough to be worth compressing.
    std::fs::write(root.join("js/main.js"), "export const x = 1;\n".repeat(200)).unwrap();
    std::fs::write(root.join("style.css"), "body { color: #111; }\n").unwrap();
    std::fs::write(
        root.join("favicon.svg"),
        "<svg xmlns='http://www.w3.org/2000/svg'/>",
    )
    .unwrap();
    dir
}

pub fn settings(dir: &std::path::Path) -> UiSettings {
    UiSettings {
        host: [127, 0, 0, 1].into(),
        port: 0,
        static_dir: PathBuf::from(dir),
        backend_url: BACKEND.into(),
    }
}

#[derive(Debug)]
pub struct TestApp {
    pub router: Router,
    pub _dir: TempDir,
}

#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .to_str()
            .unwrap()
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).unwrap()
    }
}

pub fn spawn_app() -> TestApp {
    doodle_core::telemetry::init_for_tests();
    let dir = page_dir();
    let state = AppState::new(&settings(dir.path())).expect("valid settings");
    TestApp {
        router: router(state),
        _dir: dir,
    }
}

impl TestApp {
    pub async fn get(&self, uri: &str) -> TestResponse {
        self.get_with(uri, &[]).await
    }

    pub async fn get_with(&self, uri: &str, headers: &[(&str, &str)]) -> TestResponse {
        let mut req = Request::get(uri);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    pub async fn send(&self, req: Request<Body>) -> TestResponse {
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        TestResponse {
            status,
            headers,
            body,
        }
    }
}
