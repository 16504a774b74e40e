//! REST handlers of the Open Inference Protocol (`/v2/...`) and `/metrics`.

use super::State;
use crate::backend::TensorSpec;
use crate::codec::{self, InferResponse, HEADER_LEN};
use crate::error::ServeError;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;

type Resp = Response<Full<Bytes>>;

fn respond(status: u16, content_type: &str, body: Vec<u8>) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

fn json_ok(v: Value) -> Resp {
    respond(200, "application/json", v.to_string().into_bytes())
}

fn error(status: u16, message: &str) -> Resp {
    respond(status, "application/json", codec::error_body(message))
}

fn serve_error(e: &ServeError) -> Resp {
    error(e.http_status(), &e.to_string())
}

fn spec_json(s: &TensorSpec) -> Value {
    json!({ "name": s.name, "datatype": s.datatype.name(), "shape": s.shape })
}

/// Route one request. Never fails: every problem is an HTTP answer with `{"error": ...}`.
pub(crate) async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    let is_health = matches!(segs.as_slice(), ["v2", "health", _]);
    if !is_health {
        let auth = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !state.authorized(auth) {
            let mut r = serve_error(&ServeError::Unauthenticated);
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return Ok(r);
        }
    }
    let get = method == Method::GET || method == Method::HEAD;
    let resp = match (segs.as_slice(), get) {
        (["v2", "health", "live"], true) => json_ok(json!({ "live": true })),
        (["v2", "health", "ready"], true) => {
            if state.ready.load(Ordering::SeqCst) {
                json_ok(json!({ "ready": true }))
            } else {
                respond(
                    503,
                    "application/json",
                    json!({ "ready": false }).to_string().into_bytes(),
                )
            }
        }
        (["v2"], true) => json_ok(json!({
            "name": "sieve",
            "version": env!("CARGO_PKG_VERSION"),
            "extensions": ["binary_tensor_data", "statistics_metrics"],
        })),
        (["metrics"], true) => {
            let text =
                crate::metrics::render(state.models.iter().map(|(n, s)| (n.as_str(), &*s.metrics)));
            respond(200, "text/plain; version=0.0.4", text.into_bytes())
        }
        (["v2", "models", m], true) => metadata(&state, m, None),
        (["v2", "models", m, "versions", v], true) => metadata(&state, m, Some(v)),
        (["v2", "models", m, "ready"], true) => model_ready(&state, m, None),
        (["v2", "models", m, "versions", v, "ready"], true) => model_ready(&state, m, Some(v)),
        (["v2", "models", m, "infer"], false) if method == Method::POST => {
            let m = m.to_string();
            infer(&state, &m, None, req).await
        }
        (["v2", "models", m, "versions", v, "infer"], false) if method == Method::POST => {
            let (m, v) = (m.to_string(), v.to_string());
            infer(&state, &m, Some(&v), req).await
        }
        _ => error(404, &format!("no route for {method} {path}")),
    };
    Ok(resp)
}

fn metadata(state: &State, model: &str, version: Option<&str>) -> Resp {
    match state.model(model, version) {
        Ok(s) => {
            let meta = s.backend.metadata();
            json_ok(json!({
                "name": model,
                "versions": meta.versions,
                "platform": meta.platform,
                "inputs": meta.inputs.iter().map(spec_json).collect::<Vec<_>>(),
                "outputs": meta.outputs.iter().map(spec_json).collect::<Vec<_>>(),
            }))
        }
        Err(e) => serve_error(&e),
    }
}

fn model_ready(state: &State, model: &str, version: Option<&str>) -> Resp {
    match state.model(model, version) {
        Ok(_) if state.ready.load(Ordering::SeqCst) => {
            json_ok(json!({ "name": model, "ready": true }))
        }
        Ok(_) => respond(
            503,
            "application/json",
            json!({ "name": model, "ready": false })
                .to_string()
                .into_bytes(),
        ),
        Err(e) => serve_error(&e),
    }
}

async fn read_body(
    state: &State,
    req: Request<Incoming>,
) -> Result<(http::request::Parts, Bytes), Resp> {
    let limit = state.limits.max_body_bytes;
    let (parts, body) = req.into_parts();
    if let Some(len) = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit as u64 {
            let e = ServeError::TooLarge {
                what: "request body".into(),
                size: len,
                limit: limit as u64,
            };
            return Err(serve_error(&e));
        }
    }
    if let Some(enc) = parts.headers.get(header::CONTENT_ENCODING) {
        if enc.as_bytes() != b"identity" {
            let enc = String::from_utf8_lossy(enc.as_bytes()).into_owned();
            return Err(error(
                400,
                &format!("Content-Encoding '{enc}' is not supported; send uncompressed"),
            ));
        }
    }
    let collected = tokio::time::timeout(
        state.limits.body_timeout,
        Limited::new(body, limit).collect(),
    )
    .await;
    match collected {
        Err(_) => Err(error(
            408,
            &format!(
                "request body not received within {:?}",
                state.limits.body_timeout
            ),
        )),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            let e = ServeError::TooLarge {
                what: "request body".into(),
                size: limit as u64 + 1,
                limit: limit as u64,
            };
            Err(serve_error(&e))
        }
        Ok(Err(e)) => Err(error(400, &format!("reading the request body: {e}"))),
        Ok(Ok(c)) => Ok((parts, c.to_bytes())),
    }
}

async fn infer(state: &State, model: &str, version: Option<&str>, req: Request<Incoming>) -> Resp {
    // Unknown model: answer before reading a possibly large body.
    if let Err(e) = state.model(model, version) {
        return serve_error(&e);
    }
    let (parts, body) = match read_body(state, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let header_len = match parts.headers.get(HEADER_LEN).map(|v| v.to_str()) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => return error(400, "Inference-Header-Content-Length is not ASCII"),
    };
    let request = match codec::parse_infer_request(&body, header_len) {
        Ok(r) => r,
        Err(e) => return serve_error(&e),
    };
    let served = match state.model(model, version) {
        Ok(s) => s,
        Err(e) => return serve_error(&e),
    };
    let meta = served.backend.metadata();
    // Resolve requested outputs before running, so a bad name costs no compute.
    let default_binary = request.binary_output_default;
    let mut wanted: Vec<(usize, bool)> = Vec::new();
    if request.outputs.is_empty() {
        wanted.extend((0..meta.outputs.len()).map(|i| (i, default_binary)));
    } else {
        for o in &request.outputs {
            let Some(i) = meta.outputs.iter().position(|s| s.name == o.name) else {
                let names: Vec<&str> = meta.outputs.iter().map(|s| s.name.as_str()).collect();
                return error(
                    400,
                    &format!(
                        "model '{model}' has no output '{}' (outputs: {names:?})",
                        o.name
                    ),
                );
            };
            wanted.push((i, o.binary.unwrap_or(default_binary)));
        }
    }
    let outputs = match state
        .infer(model, version, request.inputs, request.timeout)
        .await
    {
        Ok(o) => o,
        Err(e) => return serve_error(&e),
    };
    let mut selected = Vec::with_capacity(wanted.len());
    let mut binary = Vec::with_capacity(wanted.len());
    for (i, b) in &wanted {
        let Some(t) = outputs.get(*i) else {
            return error(
                500,
                &format!("model '{model}' returned {} outputs", outputs.len()),
            );
        };
        selected.push(t.clone());
        binary.push(*b);
    }
    let resp = InferResponse {
        model_name: model.to_string(),
        model_version: version
            .map(str::to_string)
            .or_else(|| meta.versions.first().cloned()),
        id: request.id,
        outputs: selected,
    };
    let (body, header_len) = codec::encode_infer_response(&resp, |i| binary[i]);
    match header_len {
        None => respond(200, "application/json", body),
        Some(n) => {
            let mut r = respond(200, "application/octet-stream", body);
            if let Ok(v) = header::HeaderValue::from_str(&n.to_string()) {
                r.headers_mut().insert(HEADER_LEN, v);
            }
            r
        }
    }
}
