//! The throughput baseline: the least an axum server can do per request. Same runtime,
//! same HTTP stack, same allocator, and a response of the size class of verifyKey's.

use axum::Router;
use axum::routing::post;

/// Serves until killed; prints `listening on <addr>` once bound (`addr` may have port 0).
pub fn serve(addr: &str) -> anyhow::Result<()> {
    // As `#[tokio::main]` and the origin: one worker thread per core.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
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
            println!("listening on {}", listener.local_addr()?);
            axum::serve(listener, app).await?;
            Ok(())
        })
}
