use std::time::Duration;

use serde_json::json;

use crate::helpers::{FakeModelServer, Fault, PREDICTIONS, b64, drawing, spawn_app};

#[tokio::test]
async fn shutdown_finishes_requests_in_flight() {
    let upstream = FakeModelServer::start(Fault::Slow(Duration::from_millis(500))).await;
    let mut app = spawn_app(&upstream.url).await;
    let request = app
        .client
        .post(format!("{}/invocations/", app.address))
        .json(&json!({ "inputs": b64(&drawing(1)) }))
        .send();
    let in_flight = tokio::spawn(request);
    // Let the request reach the fake model server, then ask the backend to stop.
    while upstream.received().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stopped = app.begin_stop();

    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), PREDICTIONS);
    tokio::time::timeout(Duration::from_secs(5), stopped)
        .await
        .expect("the server stops once the request is answered")
        .unwrap()
        .unwrap();
    // And it no longer accepts connections.
    assert!(
        app.client
            .get(format!("{}/health", app.address))
            .send()
            .await
            .is_err()
    );
}
