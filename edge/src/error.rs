//! Errors leave through `EdgeError::into_response`, the one place where failures become
//! HTTP, distinguishing who caused them: the client (4xx, same as the origin's), the
//! origin being unreachable (503), or us (500). The Worker never throws: an exception
//! page would break every client's JSON parsing.

use std::cell::RefCell;

use keyway_core::error::ApiError;
use keyway_core::wire::ServedBy;
use worker::{Headers, Response, console_log, web_sys};

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

pub fn bytes_response(
    status: u16,
    body: Vec<u8>,
    content_type: &str,
    served_by: ServedBy,
    cache: Option<&str>,
) -> Response {
    // `from_bytes` cannot fail for a byte vector; `fixed` is its infallible form.
    Response::builder()
        .with_status(status)
        .with_headers(response_headers(content_type, served_by, cache))
        .fixed(body)
}

/// Header lists kept per kind of response. `new Response(body, {headers})` copies the
/// list it is given, so one list built in JS serves every response of its kind. Building
/// a list takes a JS call per header, with both strings copied out of wasm memory each
/// time; on a hit at the edge that was three calls and six copies per request.
struct HeaderList {
    content_type: String,
    served_by: ServedBy,
    cache: Option<String>,
    headers: web_sys::Headers,
}

/// The kinds seen are few (two content types, two servers, four cache states); the bound
/// only keeps an origin that answers with ever-new content types from growing the list.
const MAX_HEADER_LISTS: usize = 32;

thread_local! {
    static HEADER_LISTS: RefCell<Vec<HeaderList>> = const { RefCell::new(Vec::new()) };
}

fn response_headers(content_type: &str, served_by: ServedBy, cache: Option<&str>) -> Headers {
    HEADER_LISTS.with(|lists| {
        let mut lists = lists.borrow_mut();
        let kept = lists.iter().find(|l| {
            l.content_type == content_type
                && l.served_by == served_by
                && l.cache.as_deref() == cache
        });
        if let Some(l) = kept {
            // A second handle on the same JS object, not a copy (`Headers::clone` copies).
            return Headers(l.headers.clone());
        }
        let headers = Headers::new();
        let _ = headers.set("content-type", content_type);
        let _ = headers.set("x-keyway-served-by", served_by.as_str());
        if let Some(c) = cache {
            let _ = headers.set("x-keyway-cache", c);
        }
        if lists.len() < MAX_HEADER_LISTS {
            lists.push(HeaderList {
                content_type: content_type.to_string(),
                served_by,
                cache: cache.map(str::to_string),
                headers: headers.0.clone(),
            });
        }
        headers
    })
}

/// The request's `Accept`, read only when an answer depends on it (errors, and calls the
/// origin answers): each header read is a JS call that copies the value into wasm.
pub struct Accept(web_sys::Headers);

impl Accept {
    pub fn of(headers: &Headers) -> Self {
        Accept(headers.0.clone())
    }

    pub fn get(&self) -> Option<String> {
        self.0.get("accept").ok().flatten()
    }
}
