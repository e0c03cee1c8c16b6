//! Sending requests against a real local server: bodies are capped, redirects are followed only
//! to http(s).

#![allow(clippy::unwrap_used)]

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use hookgate_engine::request::{BODY_LIMIT, HttpRequest, HttpSender, Timeouts};

async fn server() -> String {
    let app = axum::Router::new()
        .route("/big", get(|| async { "x".repeat(BODY_LIMIT * 2) }))
        .route(
            "/to-file",
            get(|| async {
                (
                    StatusCode::FOUND,
                    [(header::LOCATION, "file:///etc/passwd")],
                )
                    .into_response()
            }),
        )
        .route(
            "/to-big",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/big")]).into_response() }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn get_request(url: String) -> HttpRequest {
    HttpRequest {
        method: reqwest::Method::GET,
        url,
        headers: Vec::new(),
        body: None,
    }
}

#[tokio::test]
async fn bodies_are_capped_and_http_redirects_followed() {
    let url = server().await;
    let sender = HttpSender::new(Timeouts::default()).unwrap();
    let response = sender
        .send_once(&get_request(format!("{url}/to-big")))
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert!(response.url.ends_with("/big"), "{}", response.url);
    assert_eq!(response.body.len(), BODY_LIMIT);
    assert!(response.truncated);
}

#[tokio::test]
async fn a_redirect_to_another_scheme_is_not_followed() {
    let url = server().await;
    let sender = HttpSender::new(Timeouts::default()).unwrap();
    let request = get_request(format!("{url}/to-file"));
    let response = sender.send_once(&request).await.unwrap();
    // The 302 itself comes back (and, not being a 2xx, fails the step); nothing is read.
    assert_eq!(response.status, 302);
    assert_eq!(response.url, request.url);
    assert!(!response.is_success());
}
