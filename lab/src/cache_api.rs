//! The Cache API's backing store for workerd, which has none of its own.
//!
//! Run directly, workerd sends `caches.default` operations to the service named by the
//! Worker's `cacheApiOutbound` (without one, `put` is a silent no-op and `match` always
//! misses). This is that service: `PUT url` with a serialised HTTP response as the body
//! stores it, `GET url` answers it with `cf-cache-status: HIT` (or `MISS`), `PURGE url`
//! deletes it. `max-age` is honoured. It stands in for Cloudflare's colo cache, which
//! cannot run here, so its latency is modelled: each read waits a delay drawn from the
//! profile's distribution before answering.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::body::{Body, Bytes};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use rand_distr::{Distribution, LogNormal};
use tokio::task::JoinHandle;

/// How long a cache read takes before it answers.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum ReadDelay {
    None,
    /// Log-normal with this median and 99th percentile, in milliseconds.
    LogNormal {
        p50_ms: f64,
        p99_ms: f64,
    },
}

impl ReadDelay {
    fn sample(self) -> Duration {
        match self {
            ReadDelay::None => Duration::ZERO,
            ReadDelay::LogNormal { p50_ms, p99_ms } => {
                // ln X ~ N(mu, sigma): the median is e^mu and p99 is e^(mu + 2.326 sigma).
                let mu = p50_ms.ln();
                let sigma = ((p99_ms / p50_ms).ln() / 2.326_348).max(1e-9);
                let ms = LogNormal::new(mu, sigma)
                    .map(|d| d.sample(&mut rand::rng()))
                    .unwrap_or(p50_ms);
                Duration::from_secs_f64(ms.max(0.0) / 1000.0)
            }
        }
    }
}

#[derive(Clone)]
struct Stored {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
    expires: Instant,
}

#[derive(Default)]
struct Shared {
    entries: Mutex<HashMap<String, Stored>>,
    delay: Mutex<Option<ReadDelay>>,
}

pub struct CacheService {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for CacheService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CacheService {
    pub async fn start() -> Result<CacheService> {
        let shared = Arc::new(Shared::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the cache service")?;
        let addr = listener.local_addr()?;
        let state = shared.clone();
        let app = axum::Router::new()
            .fallback(move |method, uri, body| handle(state.clone(), method, uri, body));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(CacheService { addr, shared, task })
    }

    /// Sets the modelled read latency for the next runs.
    pub fn set_read_delay(&self, delay: ReadDelay) {
        if let Ok(mut d) = self.shared.delay.lock() {
            *d = Some(delay);
        }
    }

    pub fn clear(&self) {
        if let Ok(mut e) = self.shared.entries.lock() {
            e.clear();
        }
    }
}

async fn handle(shared: Arc<Shared>, method: Method, uri: Uri, body: Bytes) -> Response {
    let key = uri.to_string();
    match method.as_str() {
        "PUT" => {
            let Some(stored) = parse_serialised(&body) else {
                return status(StatusCode::PAYLOAD_TOO_LARGE);
            };
            if let Ok(mut e) = shared.entries.lock() {
                e.insert(key, stored);
            }
            status(StatusCode::NO_CONTENT)
        }
        "GET" => {
            let delay = shared
                .delay
                .lock()
                .ok()
                .and_then(|d| *d)
                .unwrap_or(ReadDelay::None)
                .sample();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let found = shared.entries.lock().ok().and_then(|mut e| {
                let hit = e.get(&key).filter(|s| s.expires > Instant::now()).cloned();
                if hit.is_none() {
                    e.remove(&key);
                }
                hit
            });
            match found {
                Some(s) => {
                    let mut resp = Response::new(Body::from(s.body));
                    *resp.status_mut() = s.status;
                    for (name, value) in s.headers {
                        resp.headers_mut().append(name, value);
                    }
                    resp.headers_mut()
                        .insert("cf-cache-status", HeaderValue::from_static("HIT"));
                    resp
                }
                None => {
                    let mut resp = status(StatusCode::GATEWAY_TIMEOUT);
                    resp.headers_mut()
                        .insert("cf-cache-status", HeaderValue::from_static("MISS"));
                    resp
                }
            }
        }
        "PURGE" => {
            let removed = shared
                .entries
                .lock()
                .ok()
                .and_then(|mut e| e.remove(&key))
                .is_some();
            status(if removed {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            })
        }
        _ => status(StatusCode::METHOD_NOT_ALLOWED),
    }
}

fn status(code: StatusCode) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = code;
    resp
}

/// Parses `HTTP/1.1 200 OK\r\nheaders\r\n\r\nbody`, the form workerd stores a response in.
fn parse_serialised(raw: &[u8]) -> Option<Stored> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head_len) = parsed.parse(raw).ok()? else {
        return None;
    };
    let code = StatusCode::from_u16(parsed.code?).ok()?;
    let mut max_age = None;
    let mut chunked = false;
    let mut kept = Vec::new();
    for h in parsed.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let value = std::str::from_utf8(h.value).ok()?.trim();
        if name == "cache-control" {
            max_age = value
                .split(',')
                .filter_map(|d| d.trim().strip_prefix("max-age="))
                .find_map(|s| s.parse::<u64>().ok());
        }
        if name == "transfer-encoding" {
            chunked = value.eq_ignore_ascii_case("chunked");
            continue;
        }
        if name == "content-length" {
            continue;
        }
        kept.push((
            HeaderName::from_bytes(name.as_bytes()).ok()?,
            HeaderValue::from_str(value).ok()?,
        ));
    }
    let rest = &raw[head_len..];
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Some(Stored {
        status: code,
        headers: kept,
        body: Bytes::from(body),
        // Without max-age, Cloudflare's cache keeps a response for a while too; a minute
        // is enough for the lab.
        expires: Instant::now() + Duration::from_secs(max_age.unwrap_or(60)),
    })
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let httparse::Status::Complete((used, size)) = httparse::parse_chunk_size(rest).ok()?
        else {
            return None;
        };
        let size = usize::try_from(size).ok()?;
        rest = &rest[used..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_plain_serialised_response() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nCache-Control: max-age=30\r\nX-Keyway-Stored-Ms: 12\r\n\r\nbody";
        let s = parse_serialised(raw).unwrap();
        assert_eq!(s.status, StatusCode::OK);
        assert_eq!(&s.body[..], b"body");
        assert!(
            s.headers
                .iter()
                .any(|(n, v)| n == "x-keyway-stored-ms" && v == "12")
        );
        assert!(s.expires > Instant::now() + Duration::from_secs(25));
    }

    #[test]
    fn parses_a_chunked_one() {
        let raw =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n3\r\n!!!\r\n0\r\n\r\n";
        let s = parse_serialised(raw).unwrap();
        assert_eq!(&s.body[..], b"body!!!");
        assert!(!s.headers.iter().any(|(n, _)| n == "transfer-encoding"));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_serialised(b"not http").is_none());
        assert!(
            parse_serialised(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
                .is_none()
        );
    }

    #[test]
    fn lognormal_delay_has_the_asked_median_and_tail() {
        let d = ReadDelay::LogNormal {
            p50_ms: 4.0,
            p99_ms: 30.0,
        };
        let mut v: Vec<f64> = (0..20_000)
            .map(|_| d.sample().as_secs_f64() * 1e3)
            .collect();
        v.sort_by(|a, b| a.total_cmp(b));
        let p50 = v[10_000];
        let p99 = v[19_800];
        assert!((3.5..4.5).contains(&p50), "p50 {p50}");
        assert!((24.0..37.0).contains(&p99), "p99 {p99}");
    }
}
