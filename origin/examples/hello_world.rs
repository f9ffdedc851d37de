//! The baseline for throughput comparisons: the least an axum server can do per request.
//! Same runtime, same HTTP stack, same response shape size class as verifyKey, no work.

use axum::Router;
use axum::routing::post;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18081".into());
    let app = Router::new().route(
        "/v2/keys.verifyKey",
        post(|| async {
            (
                [("content-type", "application/json")],
                r#"{"meta":{"requestId":"req_x"},"data":{"valid":true,"code":"VALID"}}"#,
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await
}
