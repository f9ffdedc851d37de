//! The one client for Keyway's HTTP API that tests and the lab share: bound to one
//! server and one root key, with the calls every story makes (create an API, create a
//! key, verify, call a route, read the metrics).
//!
//! Two families of calls, because their callers want different failures:
//! - `send`, `data` and `metrics_text` return a `Result`: the lab reports a failed call
//!   as an error with the route and the answer in it.
//! - the rest panic with the route, the body and the answer: in a test, a call that does
//!   not answer as the story needs is the failure, and the message says which call.
//!
//! One server per client: [`Client::at`] gives a client for another node (a replica, the
//! edge in front of the origin) that shares the connection pool and the root key.
#![allow(clippy::panic)]

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    root_key: String,
}

/// A whole answer: status, JSON body (a string when the body is not JSON), and the two
/// headers that say who answered and from which cache.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub content_type: Option<String>,
    pub served_by: Option<String>,
    pub cache: Option<String>,
}

impl Client {
    /// `base` is `http://host:port`, without a trailing slash.
    pub fn new(base: &str, root_key: &str) -> Client {
        Client::with_http(reqwest::Client::new(), base, root_key)
    }

    /// A client that opens a connection per request. For stories that stop a server and
    /// start another that may get the same port back: a kept-alive connection to the old
    /// one can look reusable, take the next request, and end with `IncompleteMessage`.
    pub fn unpooled(base: &str, root_key: &str) -> Client {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap_or_default();
        Client::with_http(http, base, root_key)
    }

    pub fn with_http(http: reqwest::Client, base: &str, root_key: &str) -> Client {
        Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            root_key: root_key.to_string(),
        }
    }

    /// The same root key and connection pool, against another server.
    pub fn at(&self, base: &str) -> Client {
        Client::with_http(self.http.clone(), base, &self.root_key)
    }

    /// The same server, as another root key.
    pub fn as_root(&self, root_key: &str) -> Client {
        Client::with_http(self.http.clone(), &self.base, root_key)
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn root_key(&self) -> &str {
        &self.root_key
    }

    /// The underlying HTTP client, for the requests no helper here makes (odd headers,
    /// GETs, methods the API does not serve).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs `body` as JSON to `path` with `bearer` (none: no `Authorization` header).
    pub async fn send(
        &self,
        path: &str,
        bearer: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Result<Reply> {
        let mut request = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        Reply::read(response).await
    }

    /// The `data` of a 200 answer to `path`, or an error naming the route and the answer.
    pub async fn data(&self, path: &str, body: Value) -> Result<Value> {
        let reply = self
            .send(path, Some(&self.root_key), body.to_string())
            .await?;
        if reply.status != 200 {
            bail!("{path} {body} answered {}: {}", reply.status, reply.body);
        }
        Ok(reply.body["data"].clone())
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics_text(&self) -> Result<String> {
        let response = self.http.get(self.url("/metrics")).send().await?;
        Ok(response.text().await?)
    }

    /// POST with the root key: the whole reply.
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.post_raw(path, body.to_string()).await
    }

    /// POST a body that need not be JSON, with the root key.
    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Reply {
        self.try_post_raw(path, body)
            .await
            .unwrap_or_else(|e| panic!("POST {}: {e:#}", self.url(path)))
    }

    /// A POST that may get no answer (a node killed mid-request).
    pub async fn try_post(&self, path: &str, body: Value) -> Option<Reply> {
        self.try_post_raw(path, body.to_string()).await.ok()
    }

    async fn try_post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Result<Reply> {
        self.send(path, Some(&self.root_key), body).await
    }

    /// POST with the root key: status and body.
    pub async fn call(&self, path: &str, body: Value) -> (u16, Value) {
        self.post(path, body).await.into_pair()
    }

    /// POST with the root key: only the status, for a test that expects a refusal.
    pub async fn status(&self, path: &str, body: Value) -> u16 {
        self.call(path, body).await.0
    }

    /// POST as `bearer`: only the status.
    pub async fn status_as(&self, path: &str, bearer: Option<&str>, body: Value) -> u16 {
        self.call_as(path, bearer, body).await.0
    }

    /// POST as `bearer` (none: no `Authorization` header): status and body.
    pub async fn call_as(&self, path: &str, bearer: Option<&str>, body: Value) -> (u16, Value) {
        self.send(path, bearer, body.to_string())
            .await
            .unwrap_or_else(|e| panic!("POST {}: {e:#}", self.url(path)))
            .into_pair()
    }

    /// POST a raw body with the root key: status and body.
    pub async fn raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        self.post_raw(path, body).await.into_pair()
    }

    /// GET `path` with `bearer`.
    pub async fn get(&self, path: &str, bearer: &str) -> Reply {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {}: {e}", self.url(path)));
        Reply::read(response)
            .await
            .unwrap_or_else(|e| panic!("GET {}: {e:#}", self.url(path)))
    }

    /// The `data` of a call that must answer 200.
    pub async fn ok(&self, path: &str, body: Value) -> Value {
        self.data(path, body)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// A new API; its id.
    pub async fn create_api(&self) -> String {
        let d = self
            .ok("/v2/apis.createApi", json!({"name": "test-api"}))
            .await;
        text(&d, "apiId")
    }

    /// A key in a new API, with `extra` merged into the `createKey` body: (API id, key
    /// id, key).
    pub async fn create_key(&self, extra: Value) -> (String, String, String) {
        let api = self.create_api().await;
        let (id, key) = self.create_key_in(&api, extra).await;
        (api, id, key)
    }

    /// A key in `api`, with `extra` merged into the `createKey` body: (key id, key).
    pub async fn create_key_in(&self, api: &str, extra: Value) -> (String, String) {
        let d = self.ok("/v2/keys.createKey", key_body(api, extra)).await;
        (text(&d, "keyId"), text(&d, "key"))
    }

    /// As [`Client::create_key_in`], for callers that report errors (the lab).
    pub async fn try_create_key_in(&self, api: &str, extra: Value) -> Result<(String, String)> {
        let d = self
            .data("/v2/keys.createKey", key_body(api, extra))
            .await?;
        let field = |name: &str| {
            d[name]
                .as_str()
                .map(str::to_string)
                .with_context(|| format!("createKey gave no {name}: {d}"))
        };
        Ok((field("keyId")?, field("key")?))
    }

    /// A `keys.verifyKey` call: the whole reply, whatever its status.
    pub async fn verify_reply(&self, body: Value) -> Reply {
        self.post("/v2/keys.verifyKey", body).await
    }

    /// The `data` of a `keys.verifyKey` call that must answer 200.
    pub async fn verify(&self, body: Value) -> Value {
        self.ok("/v2/keys.verifyKey", body).await
    }

    pub async fn metrics(&self) -> String {
        self.metrics_text()
            .await
            .unwrap_or_else(|e| panic!("GET /metrics: {e:#}"))
    }

    /// The value of the first metric line that starts with `line_prefix`, or 0 when no
    /// line does (a counter not yet incremented is not exported).
    pub async fn metric(&self, line_prefix: &str) -> f64 {
        self.metrics()
            .await
            .lines()
            .find(|l| l.starts_with(line_prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

impl Reply {
    async fn read(response: reqwest::Response) -> Result<Reply> {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header("content-type");
        let served_by = header("x-keyway-served-by");
        let cache = header("x-keyway-cache");
        let status = response.status().as_u16();
        let text = response.text().await.context("reading the body")?;
        Ok(Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
            content_type,
            served_by,
            cache,
        })
    }

    /// Who answered and from which cache: `x-keyway-served-by` and `x-keyway-cache`.
    pub fn served_from(&self) -> (Option<&str>, Option<&str>) {
        (self.served_by.as_deref(), self.cache.as_deref())
    }

    pub fn into_pair(self) -> (u16, Value) {
        (self.status, self.body)
    }
}

fn key_body(api: &str, extra: Value) -> Value {
    let mut body = json!({"apiId": api});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

fn text(data: &Value, field: &str) -> String {
    data[field]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no {field} in {data}"))
}
