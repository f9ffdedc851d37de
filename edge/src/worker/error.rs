//! Errors leave through `EdgeError::into_response`, the one place where failures become
//! HTTP, distinguishing who caused them: the client (4xx, same as the origin's), the
//! origin being unreachable (503), or us (500). The Worker never throws: an exception
//! page would break every client's JSON parsing.

use keyway_core::error::ApiError;
use keyway_core::wire::ServedBy;
use worker::{Response, console_log};

use super::isolate::request_id;
use super::respond::{Accept, bytes_response};

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
    pub fn into_response(self, accept: &Accept, served_by: ServedBy) -> Response {
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
            e.content_type(accept.get().as_deref()),
            served_by,
            None,
        )
    }
}
