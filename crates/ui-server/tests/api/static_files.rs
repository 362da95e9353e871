use axum::body::Body;
use axum::http::{Request, StatusCode};

use crate::helpers::spawn_app;

#[tokio::test]
async fn root_serves_index_html_revalidated_with_a_csp_naming_the_backend() {
    let app = spawn_app();
    let res = app.get("/").await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.header("content-type").starts_with("text/html"));
    assert!(res.text().contains("<title>doodle</title>"));
    assert_eq!(res.header("cache-control"), "no-cache");
    assert!(res.headers.contains_key("last-modified"));
    let csp = res.header("content-security-policy");
    assert!(
        csp.contains("connect-src 'self' http://backend.test:8000;"),
        "{csp}"
    );
    assert_eq!(res.header("x-content-type-options"), "nosniff");
}

#[tokio::test]
async fn scripts_are_served_as_javascript_and_revalidated() {
    let app = spawn_app();
    let res = app.get("/js/main.js").await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.header("content-type").contains("javascript"));
    assert_eq!(res.header("cache-control"), "no-cache");
    assert_eq!(res.text(), "export const x = 1;\n".repeat(200));
}

#[tokio::test]
async fn images_may_be_kept_for_a_day() {
    let app = spawn_app();
    let res = app.get("/favicon.svg").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("content-type"), "image/svg+xml");
    assert_eq!(res.header("cache-control"), "public, max-age=86400");
}

#[tokio::test]
async fn an_unchanged_file_is_answered_304() {
    let app = spawn_app();
    let first = app.get("/style.css").await;
    let since = first.header("last-modified").to_owned();
    let res = app
        .get_with("/style.css", &[("if-modified-since", &since)])
        .await;
    assert_eq!(res.status, StatusCode::NOT_MODIFIED);
    assert!(res.body.is_empty());
    assert_eq!(res.header("cache-control"), "no-cache");
}

#[tokio::test]
async fn files_are_gzipped_when_the_browser_accepts_it() {
    let app = spawn_app();
    let res = app
        .get_with("/js/main.js", &[("accept-encoding", "gzip")])
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("content-encoding"), "gzip");
    assert!(res.body.len() < 200, "{} bytes", res.body.len());

    let plain = app.get("/js/main.js").await;
    assert!(!plain.headers.contains_key("content-encoding"));
}

#[tokio::test]
async fn unknown_paths_are_404_and_not_cached() {
    let app = spawn_app();
    for path in ["/nope.html", "/js/missing.js", "/nope/"] {
        let res = app.get(path).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(res.header("cache-control"), "no-store", "{path}");
        assert_eq!(res.text(), "not found\n");
    }
}

#[tokio::test]
async fn paths_cannot_leave_the_page_folder() {
    let app = spawn_app();
    for path in [
        "/../Cargo.toml",
        "/js/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2fetc%2fpasswd",
    ] {
        let res = app.get(path).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn other_methods_are_refused() {
    let app = spawn_app();
    let res = app
        .send(Request::post("/index.html").body(Body::from("x")).unwrap())
        .await;
    assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);
    let res = app
        .send(Request::post("/config.json").body(Body::empty()).unwrap())
        .await;
    assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);
}
