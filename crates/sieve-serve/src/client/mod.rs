//! Client for any Open Inference Protocol server (ours, Triton, KServe, MLServer, OVMS):
//! REST with the binary tensor extension (falling back to JSON where a server refuses it),
//! REST JSON, or gRPC; connection reuse, per-request timeout, retry with exponential
//! back-off for failures where a retry can help, and the round-trip time of every call.
//!
//! [`Client`] is async (tokio); [`BlockingClient`] wraps it for synchronous callers.

mod blocking;
mod grpc_client;

pub use blocking::BlockingClient;

use crate::backend::{ModelMetadata, TensorSpec};
use crate::codec;
use crate::error::{Result, ServeError};
use crate::tensor::{DataType, InferTensor};
use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// Wire protocol a [`Client`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// REST with the binary tensor data extension; JSON if the server refuses binary.
    Rest,
    /// REST with JSON tensors only.
    RestJson,
    /// gRPC `inference.GRPCInferenceService`.
    Grpc,
}

impl std::str::FromStr for Protocol {
    type Err = ServeError;
    fn from_str(s: &str) -> Result<Protocol> {
        match s {
            "rest" => Ok(Protocol::Rest),
            "rest-json" => Ok(Protocol::RestJson),
            "grpc" => Ok(Protocol::Grpc),
            other => Err(ServeError::Config(format!(
                "protocol '{other}': expected rest, rest-json or grpc"
            ))),
        }
    }
}

/// Client settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientConfig {
    /// Wire protocol.
    pub protocol: Protocol,
    /// Time limit of one attempt (connect + request + response).
    pub timeout: Duration,
    /// Extra attempts after a retryable failure (connection refused/reset, timeout, HTTP 503,
    /// gRPC `UNAVAILABLE`/`RESOURCE_EXHAUSTED`). Inference is a pure function, so retrying it
    /// is safe.
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub backoff: Duration,
    /// Bearer token sent as `Authorization: Bearer <token>`.
    pub token: Option<String>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            protocol: Protocol::Rest,
            timeout: Duration::from_secs(10),
            retries: 2,
            backoff: Duration::from_millis(50),
            token: None,
        }
    }
}

/// The outcome of an inference call.
#[derive(Clone, Debug, PartialEq)]
pub struct InferResult {
    /// Output tensors, in the server's order.
    pub outputs: Vec<InferTensor>,
    /// Round-trip time of the attempt that succeeded (request sent to response decoded).
    pub rtt: Duration,
    /// Time of the whole call, including failed attempts and back-off.
    pub total: Duration,
    /// Attempts made (1 = no retry).
    pub attempts: u32,
    /// The protocol that carried the successful attempt ([`Protocol::RestJson`] after a
    /// fallback from binary).
    pub protocol: Protocol,
}

const BINARY_UNKNOWN: u8 = 0;
const BINARY_YES: u8 = 1;
const BINARY_NO: u8 = 2;

type HttpClient = hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>;

/// An Open Inference Protocol client bound to one server. Cheap to share (`&self` methods);
/// connections are pooled and reused.
pub struct Client {
    base: String,
    config: ClientConfig,
    http: HttpClient,
    grpc: Option<grpc_client::GrpcClient>,
    binary: AtomicU8,
    next_id: AtomicU64,
}

impl Client {
    /// A client for the server at `url` (`http://host:port`; for gRPC the gRPC port). Does
    /// not connect yet. Must be called inside a tokio runtime.
    pub fn new(url: &str, config: ClientConfig) -> Result<Client> {
        let base = url.trim_end_matches('/').to_string();
        let uri: http::Uri = base
            .parse()
            .map_err(|e| ServeError::Config(format!("URL '{url}': {e}")))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(ServeError::Config(format!(
                    "URL '{url}': scheme '{other}' not supported by the client (use http://)"
                )))
            }
            None => {
                return Err(ServeError::Config(format!(
                    "URL '{url}' has no http:// scheme"
                )))
            }
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.timeout));
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        let grpc = match config.protocol {
            Protocol::Grpc => Some(grpc_client::GrpcClient::new(&base, &config)?),
            _ => None,
        };
        Ok(Client {
            base,
            config,
            http,
            grpc,
            binary: AtomicU8::new(BINARY_UNKNOWN),
            next_id: AtomicU64::new(1),
        })
    }

    /// The settings this client was made with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    async fn with_retries<T, F, Fut>(&self, mut attempt: F) -> Result<(T, u32)>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut n = 0u32;
        loop {
            n += 1;
            match attempt().await {
                Ok(v) => return Ok((v, n)),
                Err(e) if e.is_retryable() && n <= self.config.retries => {
                    let wait = self.config.backoff.saturating_mul(1 << (n - 1).min(10));
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `GET /v2/health/live` (gRPC `ServerLive`).
    pub async fn live(&self) -> Result<bool> {
        if let Some(g) = &self.grpc {
            return self.with_retries(|| g.live()).await.map(|r| r.0);
        }
        let (r, _) = self.with_retries(|| self.get("/v2/health/live")).await?;
        Ok(r.0 == StatusCode::OK)
    }

    /// `GET /v2/health/ready` (gRPC `ServerReady`).
    pub async fn ready(&self) -> Result<bool> {
        if let Some(g) = &self.grpc {
            return self.with_retries(|| g.ready()).await.map(|r| r.0);
        }
        let (r, _) = self.with_retries(|| self.get("/v2/health/ready")).await?;
        Ok(r.0 == StatusCode::OK)
    }

    /// `GET /v2/models/{model}` (gRPC `ModelMetadata`).
    pub async fn model_metadata(&self, model: &str) -> Result<ModelMetadata> {
        if let Some(g) = &self.grpc {
            return self
                .with_retries(|| g.model_metadata(model))
                .await
                .map(|r| r.0);
        }
        let path = format!("/v2/models/{model}");
        let ((status, body), _) = self.with_retries(|| self.get(&path)).await?;
        let url = format!("{}{path}", self.base);
        if status != StatusCode::OK {
            return Err(status_error(&url, status, &body));
        }
        let v: Value = serde_json::from_slice(&body).map_err(|e| ServeError::BadResponse {
            url: url.clone(),
            message: e.to_string(),
        })?;
        metadata_from_json(&url, &v)
    }

    /// Run `model` on `inputs`; all outputs are returned.
    pub async fn infer(&self, model: &str, inputs: &[InferTensor]) -> Result<InferResult> {
        let start = Instant::now();
        if let Some(g) = &self.grpc {
            let ((outputs, rtt), attempts) = self.with_retries(|| g.infer(model, inputs)).await?;
            return Ok(InferResult {
                outputs,
                rtt,
                total: start.elapsed(),
                attempts,
                protocol: Protocol::Grpc,
            });
        }
        let ((outputs, rtt, protocol), attempts) =
            self.with_retries(|| self.rest_infer(model, inputs)).await?;
        Ok(InferResult {
            outputs,
            rtt,
            total: start.elapsed(),
            attempts,
            protocol,
        })
    }

    async fn rest_infer(
        &self,
        model: &str,
        inputs: &[InferTensor],
    ) -> Result<(Vec<InferTensor>, Duration, Protocol)> {
        let try_binary = self.config.protocol == Protocol::Rest
            && self.binary.load(Ordering::Relaxed) != BINARY_NO;
        if try_binary {
            match self.rest_infer_once(model, inputs, true).await {
                Ok((o, rtt)) => {
                    self.binary.store(BINARY_YES, Ordering::Relaxed);
                    return Ok((o, rtt, Protocol::Rest));
                }
                // Servers without the extension (MLServer: 422) refuse binary bodies.
                Err(ServeError::Status {
                    status, message, ..
                }) if self.binary.load(Ordering::Relaxed) == BINARY_UNKNOWN
                    && refuses_binary(&status, &message) =>
                {
                    self.binary.store(BINARY_NO, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        let (o, rtt) = self.rest_infer_once(model, inputs, false).await?;
        Ok((o, rtt, Protocol::RestJson))
    }

    async fn rest_infer_once(
        &self,
        model: &str,
        inputs: &[InferTensor],
        binary: bool,
    ) -> Result<(Vec<InferTensor>, Duration)> {
        // Some servers (KServe) fail on responses without an id: always send one.
        let id = format!("sieve-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let (body, header_len) = codec::encode_infer_request(Some(&id), inputs, &[], binary);
        let path = format!("/v2/models/{model}/infer");
        let url = format!("{}{path}", self.base);
        let mut req = Request::builder().method(Method::POST).uri(&url).header(
            header::CONTENT_TYPE,
            if binary {
                "application/octet-stream"
            } else {
                "application/json"
            },
        );
        if let Some(n) = header_len {
            req = req.header(codec::HEADER_LEN, n);
        }
        if let Some(t) = &self.config.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ServeError::Config(format!("{url}: {e}")))?;
        let start = Instant::now();
        let (parts, body) = self.send(&url, req).await?;
        let rtt = start.elapsed();
        if parts.status != StatusCode::OK {
            return Err(status_error(&url, parts.status, &body));
        }
        let header_len = parts
            .headers
            .get(codec::HEADER_LEN)
            .and_then(|v| v.to_str().ok());
        let resp = codec::parse_infer_response(&body, header_len).map_err(|e| {
            ServeError::BadResponse {
                url: url.clone(),
                message: e.to_string(),
            }
        })?;
        Ok((resp.outputs, rtt))
    }

    async fn get(&self, path: &str) -> Result<(StatusCode, Bytes)> {
        let url = format!("{}{path}", self.base);
        let mut req = Request::builder().method(Method::GET).uri(&url);
        if let Some(t) = &self.config.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| ServeError::Config(format!("{url}: {e}")))?;
        let (parts, body) = self.send(&url, req).await?;
        if parts.status == StatusCode::SERVICE_UNAVAILABLE && !path.ends_with("ready") {
            return Err(status_error(&url, parts.status, &body));
        }
        Ok((parts.status, body))
    }

    /// Send and read the whole answer within the timeout.
    async fn send(
        &self,
        url: &str,
        req: Request<Full<Bytes>>,
    ) -> Result<(http::response::Parts, Bytes)> {
        let fut = async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| ServeError::Connect {
                    url: url.to_string(),
                    message: error_chain(&e),
                })?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.map_err(|e| ServeError::Connect {
                url: url.to_string(),
                message: format!("reading the response: {}", error_chain(&e)),
            })?;
            Ok((parts, body.to_bytes()))
        };
        tokio::time::timeout(self.config.timeout, fut)
            .await
            .map_err(|_| ServeError::Timeout {
                url: url.to_string(),
                after: self.config.timeout,
            })?
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn refuses_binary(status: &str, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    status == "422"
        || status == "415"
        || (status == "400"
            && (m.contains("binary") || m.contains("inference-header") || m.contains("json")))
}

fn status_error(url: &str, status: StatusCode, body: &[u8]) -> ServeError {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("error").or_else(|| v.get("detail")).map(|e| match e {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        })
        .unwrap_or_else(|| foreign_body(body));
    ServeError::Status {
        url: url.to_string(),
        status: status.as_u16().to_string(),
        message,
        retryable: matches!(status.as_u16(), 502..=504 | 429),
    }
}

/// Most characters of a non-protocol error body quoted in an error message.
const FOREIGN_BODY_CHARS: usize = 160;

/// An error body that is not the protocol's JSON (a proxy's or another web server's
/// HTML page, plain text): on one line, whitespace collapsed, cut to
/// [`FOREIGN_BODY_CHARS`] characters, with its length.
fn foreign_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(4 * FOREIGN_BODY_CHARS)]);
    let words: Vec<&str> = text.split_whitespace().collect();
    let line = words.join(" ");
    let cut: String = line.chars().take(FOREIGN_BODY_CHARS).collect();
    let more = if cut.len() < line.len() || body.len() > 4 * FOREIGN_BODY_CHARS {
        "..."
    } else {
        ""
    };
    format!(
        "not an Open Inference Protocol error ({} bytes): {cut}{more}",
        body.len()
    )
}

fn metadata_from_json(url: &str, v: &Value) -> Result<ModelMetadata> {
    let bad = |m: String| ServeError::BadResponse {
        url: url.to_string(),
        message: m,
    };
    let specs = |key: &str| -> Result<Vec<TensorSpec>> {
        let list = v
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        list.iter()
            .map(|t| {
                let name = t
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let dt = t
                    .get("datatype")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let datatype = DataType::from_name(dt)
                    .ok_or_else(|| bad(format!("{key} '{name}': unknown datatype '{dt}'")))?;
                let shape = t
                    .get("shape")
                    .and_then(Value::as_array)
                    .map(|s| s.iter().map(|d| d.as_i64().unwrap_or(-1)).collect())
                    .unwrap_or_default();
                Ok(TensorSpec {
                    name,
                    datatype,
                    shape,
                })
            })
            .collect()
    };
    Ok(ModelMetadata {
        platform: v
            .get("platform")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        versions: v
            .get("versions")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        inputs: specs("inputs")?,
        outputs: specs("outputs")?,
        finite_inputs_only: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_foreign_error_page_is_one_short_line() {
        let page = format!(
            "<!DOCTYPE HTML>\n<html>\n  <head>\n    <title>Error response</title>\n{}</html>\n",
            "  <p>filler</p>\n".repeat(100)
        );
        let e = status_error(
            "http://h/v2/models/m",
            StatusCode::NOT_FOUND,
            page.as_bytes(),
        );
        let msg = e.to_string();
        assert!(!msg.contains('\n'), "{msg}");
        assert!(
            msg.starts_with(
                "http://h/v2/models/m: server answered 404: not an Open Inference Protocol error ("
            ),
            "{msg}"
        );
        assert!(
            msg.contains("<!DOCTYPE HTML> <html> <head> <title>Error response</title>"),
            "{msg}"
        );
        assert!(msg.ends_with("..."), "{msg}");
        assert!(msg.len() < 300, "{} chars: {msg}", msg.len());
        // The protocol's own error body is quoted as it is.
        let e = status_error(
            "u",
            StatusCode::BAD_REQUEST,
            br#"{"error": "input 'x' is missing"}"#,
        );
        assert_eq!(
            e.to_string(),
            "u: server answered 400: input 'x' is missing"
        );
        // A short foreign body is whole, without an ellipsis.
        let e = status_error("u", StatusCode::BAD_GATEWAY, b"Bad Gateway\n");
        assert_eq!(
            e.to_string(),
            "u: server answered 502: not an Open Inference Protocol error (12 bytes): Bad Gateway"
        );
    }
}
