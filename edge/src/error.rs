//! Errors leave through `EdgeError::into_response`, the one place where failures become
//! HTTP, distinguishing who caused them: the client (4xx, same as the origin's), the
//! origin being unreachable (503), or us (500). The Worker never throws: an exception
//! page would break every client's JSON parsing.

use keyway_core::error::ApiError;
use keyway_core::wire::ServedBy;
use worker::{Headers, Response, console_log};

use crate::runtime::request_id;

pub enum EdgeError {
    /// The client's mistake: the same 4xx the origin would give.
    Client(ApiError),
    /// The origin could not be reached in time or answered garbage.
    Origin(String),
    /// The runtime failed us.
    Runtime(String),
}

impl From<ApiError> for EdgeError {
    fn from(e: ApiError) -> Self {
        EdgeError::Client(e)
    }
}

impl From<worker::Error> for EdgeError {
    fn from(e: worker::Error) -> Self {
        EdgeError::Runtime(e.to_string())
    }
}

impl std::fmt::Display for EdgeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EdgeError::Client(e) => write!(f, "client error {}", e.status),
            EdgeError::Origin(why) | EdgeError::Runtime(why) => f.write_str(why),
        }
    }
}

impl EdgeError {
    pub fn into_response(self, accept: Option<&str>, served_by: ServedBy) -> Response {
        let e = match self {
            EdgeError::Client(e) => e,
            EdgeError::Origin(why) => {
                console_log!("origin unavailable: {why}");
                ApiError::unavailable(
                    "The Keyway origin is unavailable; this request needs it. Try again shortly.",
                )
            }
            EdgeError::Runtime(why) => {
                console_log!("edge runtime error: {why}");
                ApiError::internal("The edge failed to complete the request.")
            }
        };
        bytes_response(
            e.status,
            e.to_json(&request_id()),
            e.content_type(accept),
            served_by,
            None,
        )
    }
}

pub fn bytes_response(
    status: u16,
    body: Vec<u8>,
    content_type: &str,
    served_by: ServedBy,
    cache: Option<&str>,
) -> Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", content_type);
    let _ = headers.set("x-keyway-served-by", served_by.as_str());
    if let Some(c) = cache {
        let _ = headers.set("x-keyway-cache", c);
    }
    // `from_bytes` cannot fail for a byte vector; `fixed` is its infallible form.
    Response::builder()
        .with_status(status)
        .with_headers(headers)
        .fixed(body)
}
