//! Responses: the header lists kept per kind of answer, and the caller's `Accept`.

use std::cell::RefCell;

use keyway_core::wire::ServedBy;
use worker::{Headers, Response, web_sys};

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
