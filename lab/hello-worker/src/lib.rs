//! The least a Rust Worker can do through the `worker` crate's `#[event(fetch)]` entry
//! point: read the request body and answer JSON the size of a verification answer. The
//! lab measures the edge Worker against it, so what the runtime glue costs any Rust
//! Worker is separated from what Keyway's own code costs.

#[cfg(target_arch = "wasm32")]
mod worker_main {
    use worker::{Context, Env, Headers, Request, Response, Result, event};

    /// Byte for byte the body of the lab's JS hello-world.
    const BODY: &str =
        r#"{"meta":{"requestId":"req_0"},"data":{"valid":true,"code":"VALID","keyId":"key_0"}}"#;

    #[event(fetch)]
    async fn fetch(mut req: Request, _env: Env, _ctx: Context) -> Result<Response> {
        // Like the edge, consume the body before answering.
        let _ = req.bytes().await?;
        // The edge's response path: a header list and a fixed byte body.
        let headers = Headers::new();
        headers.set("content-type", "application/json")?;
        Ok(Response::builder()
            .with_status(200)
            .with_headers(headers)
            .fixed(BODY.as_bytes().to_vec()))
    }
}
