//! The server: configuration, model registry, the shared inference path, listeners (plain
//! TCP or rustls TLS) with timeouts and graceful shutdown. REST handlers are in `rest`,
//! gRPC in `grpc_svc`.

mod grpc_svc;
mod rest;

use crate::backend::{validate_inputs, InferenceBackend};
use crate::batcher::{BatchConfig, Batcher};
use crate::error::{Result, ServeError};
use crate::metrics::ModelMetrics;
use crate::tensor::InferTensor;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

/// A model to serve: the name clients use and the file it is loaded from.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSource {
    /// Name in URLs and requests (`/v2/models/{name}`).
    pub name: String,
    /// Model file (`.onnx`; `.sieve` packages: see [`crate::engine::load_model`]).
    pub path: PathBuf,
}

/// Request limits and timeouts. The defaults suit CNN inference on one machine.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Largest request body (REST) or message (gRPC), bytes.
    pub max_body_bytes: usize,
    /// Most elements in one input tensor.
    pub max_tensor_elements: usize,
    /// Time a client has to send the request headers (HTTP/1) or finish the TLS handshake.
    pub header_timeout: Duration,
    /// Time a client has to send the request body.
    pub body_timeout: Duration,
    /// Default per-request deadline (queueing + execution); a request may ask for less
    /// (REST parameter `timeout` in µs, gRPC `grpc-timeout`).
    pub request_timeout: Duration,
    /// Most connections open at once per listener; further clients wait to be accepted.
    pub max_connections: usize,
    /// Longest wait for in-flight requests at shutdown.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 << 20,
            max_tensor_elements: 16 << 20,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
            drain_timeout: Duration::from_secs(60),
        }
    }
}

/// TLS certificate chain and private key, PEM files.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsPaths {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Everything `sieve serve` needs.
#[derive(Clone, Debug, PartialEq)]
pub struct ServeConfig {
    /// Models to load and serve.
    pub models: Vec<ModelSource>,
    /// REST listen address (port 0 picks a free port); `None` disables REST.
    pub rest_bind: Option<SocketAddr>,
    /// gRPC listen address; `None` disables gRPC.
    pub grpc_bind: Option<SocketAddr>,
    /// Dynamic batching and queue settings, applied to every model.
    pub batch: BatchConfig,
    /// Size limits and timeouts.
    pub limits: Limits,
    /// If set, every request except health checks must carry `Authorization: Bearer <token>`.
    pub auth_token: Option<String>,
    /// If set, both listeners speak TLS (rustls) with this certificate.
    pub tls: Option<TlsPaths>,
    /// Allow a non-loopback bind without TLS and a token (refused by default).
    pub allow_insecure_public: bool,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            models: Vec::new(),
            rest_bind: Some(SocketAddr::from(([127, 0, 0, 1], 8000))),
            grpc_bind: Some(SocketAddr::from(([127, 0, 0, 1], 8001))),
            batch: BatchConfig::default(),
            limits: Limits::default(),
            auth_token: None,
            tls: None,
            allow_insecure_public: false,
        }
    }
}

/// One served model.
pub(crate) struct Served {
    pub backend: Arc<dyn InferenceBackend>,
    pub batcher: Batcher,
    pub metrics: Arc<ModelMetrics>,
}

/// State shared by all handlers.
pub(crate) struct State {
    pub models: BTreeMap<String, Served>,
    pub limits: Limits,
    pub token: Option<String>,
    pub ready: AtomicBool,
}

impl State {
    pub fn model(&self, name: &str, version: Option<&str>) -> Result<&Served> {
        let unknown = || ServeError::UnknownModel {
            model: name.to_string(),
            version: version.map(str::to_string),
        };
        let served = self.models.get(name).ok_or_else(unknown)?;
        let versions = &served.backend.metadata().versions;
        match version {
            Some(v)
                if !v.is_empty() && !versions.is_empty() && !versions.iter().any(|x| x == v) =>
            {
                Err(unknown())
            }
            _ => Ok(served),
        }
    }

    /// True if `header` (the `Authorization` value) satisfies the configured token.
    pub fn authorized(&self, header: Option<&str>) -> bool {
        match &self.token {
            None => true,
            Some(t) => header
                .and_then(|h| h.strip_prefix("Bearer "))
                .is_some_and(|given| constant_time_eq(given.trim().as_bytes(), t.as_bytes())),
        }
    }

    /// The inference path shared by REST and gRPC: validate, queue, wait (bounded by the
    /// request's deadline), record metrics. Outputs are in model order.
    pub async fn infer(
        &self,
        model: &str,
        version: Option<&str>,
        inputs: Vec<InferTensor>,
        timeout: Option<Duration>,
    ) -> Result<Vec<InferTensor>> {
        let served = self.model(model, version)?;
        let start = Instant::now();
        served.metrics.requests.fetch_add(1, Ordering::Relaxed);
        let result = self.infer_inner(model, served, inputs, timeout).await;
        served.metrics.record(result.is_ok(), start.elapsed());
        result
    }

    async fn infer_inner(
        &self,
        model: &str,
        served: &Served,
        inputs: Vec<InferTensor>,
        timeout: Option<Duration>,
    ) -> Result<Vec<InferTensor>> {
        if !self.ready.load(Ordering::SeqCst) {
            return Err(ServeError::ShuttingDown);
        }
        let meta = served.backend.metadata();
        let inputs = validate_inputs(model, meta, inputs, self.limits.max_tensor_elements)?;
        let timeout = timeout.map_or(self.limits.request_timeout, |t| {
            t.min(self.limits.request_timeout)
        });
        let rx = served.batcher.submit(inputs, timeout)?;
        let deadline = || ServeError::DeadlineExceeded {
            model: model.to_string(),
            after: timeout,
        };
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ServeError::ShuttingDown),
            Err(_) => Err(deadline()),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A bound, not yet running server. [`Server::bind`] loads the models and binds the
/// listeners (so the addresses are known, also with port 0); [`Server::run`] serves until a
/// shutdown future completes.
pub struct Server {
    state: Arc<State>,
    rest: Option<(TcpListener, SocketAddr)>,
    grpc: Option<(TcpListener, SocketAddr)>,
    tls: Option<TlsAcceptor>,
}

fn is_loopback(addr: &Option<SocketAddr>) -> bool {
    addr.is_none_or(|a| a.ip().is_loopback())
}

async fn bind(addr: Option<SocketAddr>) -> Result<Option<(TcpListener, SocketAddr)>> {
    let Some(addr) = addr else { return Ok(None) };
    let l = TcpListener::bind(addr).await.map_err(|e| ServeError::Io {
        context: format!("binding {addr}"),
        source: e,
    })?;
    let local = l.local_addr().map_err(|e| ServeError::Io {
        context: format!("address of {addr}"),
        source: e,
    })?;
    Ok(Some((l, local)))
}

impl Server {
    /// Load every model of `config.models` and bind. Errors name the model file or address.
    pub async fn bind(config: ServeConfig) -> Result<Server> {
        let mut backends = Vec::new();
        for m in &config.models {
            let (name, path) = (m.name.clone(), m.path.clone());
            let backend =
                tokio::task::spawn_blocking(move || crate::engine::load_model(&name, &path))
                    .await
                    .map_err(|e| ServeError::Config(format!("model loader failed: {e}")))??;
            backends.push((m.name.clone(), backend));
        }
        Server::bind_backends(config, backends).await
    }

    /// Bind serving the given backends (`config.models` is ignored). For tests and for
    /// embedding other engines.
    pub async fn bind_backends(
        config: ServeConfig,
        backends: Vec<(String, Arc<dyn InferenceBackend>)>,
    ) -> Result<Server> {
        if backends.is_empty() {
            return Err(ServeError::Config("no models to serve".into()));
        }
        let public = !is_loopback(&config.rest_bind) || !is_loopback(&config.grpc_bind);
        if public
            && !config.allow_insecure_public
            && (config.tls.is_none() || config.auth_token.is_none())
        {
            return Err(ServeError::Config(
                "a non-loopback bind needs TLS (--tls-cert/--tls-key) and a token (--token), \
                 or an explicit opt-out"
                    .into(),
            ));
        }
        let tls = match &config.tls {
            Some(paths) => Some(load_tls(paths)?),
            None => None,
        };
        let mut models = BTreeMap::new();
        for (name, backend) in backends {
            if models.contains_key(&name) {
                return Err(ServeError::Config(format!(
                    "model name '{name}' given twice"
                )));
            }
            let metrics = Arc::new(ModelMetrics::default());
            let batcher = Batcher::start(
                name.clone(),
                backend.clone(),
                metrics.clone(),
                config.batch.clone(),
            )?;
            models.insert(
                name,
                Served {
                    backend,
                    batcher,
                    metrics,
                },
            );
        }
        let state = Arc::new(State {
            models,
            limits: config.limits.clone(),
            token: config.auth_token.clone(),
            ready: AtomicBool::new(true),
        });
        let rest = bind(config.rest_bind).await?;
        let grpc = bind(config.grpc_bind).await?;
        Ok(Server {
            state,
            rest,
            grpc,
            tls,
        })
    }

    /// The bound REST address, if REST is enabled.
    pub fn rest_addr(&self) -> Option<SocketAddr> {
        self.rest.as_ref().map(|(_, a)| *a)
    }

    /// The bound gRPC address, if gRPC is enabled.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc.as_ref().map(|(_, a)| *a)
    }

    /// Serve until `shutdown` completes; then refuse new connections and requests, let
    /// in-flight requests finish (up to `limits.drain_timeout`), stop the workers, return.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let limits = self.state.limits.clone();
        if let Some((listener, _)) = self.rest {
            let state = self.state.clone();
            let svc = hyper::service::service_fn(move |req| rest::handle(state.clone(), req));
            tasks.push(tokio::spawn(accept_loop(
                listener,
                self.tls.clone(),
                svc,
                stop_rx.clone(),
                limits.clone(),
            )));
        }
        if let Some((listener, _)) = self.grpc {
            let svc = grpc_svc::service(self.state.clone());
            let svc = hyper_util::service::TowerToHyperService::new(svc);
            tasks.push(tokio::spawn(accept_loop(
                listener,
                self.tls.clone(),
                svc,
                stop_rx.clone(),
                limits.clone(),
            )));
        }
        shutdown.await;
        self.state.ready.store(false, Ordering::SeqCst);
        let _ = stop_tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
        let state = self.state.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for served in state.models.values() {
                served.batcher.close();
            }
        })
        .await;
        Ok(())
    }
}

fn load_tls(paths: &TlsPaths) -> Result<TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let tls_err = |path: &PathBuf, e: &dyn std::fmt::Display| {
        ServeError::Config(format!("TLS {}: {e}", path.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&paths.cert)
        .map_err(|e| tls_err(&paths.cert, &e))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| tls_err(&paths.cert, &e))?;
    if certs.is_empty() {
        return Err(tls_err(&paths.cert, &"no certificate in file"));
    }
    let key = PrivateKeyDer::from_pem_file(&paths.key).map_err(|e| tls_err(&paths.key, &e))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut cfg = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(&paths.cert, &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| tls_err(&paths.cert, &e))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Accept connections until `stop` turns true, then shut the open ones down gracefully
/// (in-flight requests are answered; idle keep-alive connections are closed).
async fn accept_loop<S, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    service: S,
    mut stop: watch::Receiver<bool>,
    limits: Limits,
) where
    S: hyper::service::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.changed() => break,
        };
        let (stream, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(_) => {
                    // e.g. out of file descriptors: back off instead of spinning
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let service = service.clone();
        let tls = tls.clone();
        let handshake_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => {
                    let conn = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .into_owned();
                    let _ = watcher.watch(conn).await;
                }
                Some(acceptor) => {
                    let Ok(Ok(tls_stream)) =
                        tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await
                    else {
                        return;
                    };
                    let conn = builder
                        .serve_connection(TokioIo::new(tls_stream), service)
                        .into_owned();
                    let _ = watcher.watch(conn).await;
                }
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(limits.drain_timeout, graceful.shutdown()).await;
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM: the shutdown future `sieve serve` uses.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = async {
            match signal(SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Load the models, bind, print the bound addresses on stdout, and serve until `shutdown`
/// completes (graceful: see [`Server::run`]). What `sieve serve` calls.
pub async fn serve(config: ServeConfig, shutdown: impl Future<Output = ()>) -> Result<()> {
    let names: Vec<String> = config.models.iter().map(|m| m.name.clone()).collect();
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let server = Server::bind(config).await?;
    if let Some(a) = server.rest_addr() {
        println!("sieve-serve: REST on {scheme}://{a}");
    }
    if let Some(a) = server.grpc_addr() {
        println!("sieve-serve: gRPC on {a}");
    }
    println!("sieve-serve: serving models {}", names.join(", "));
    server.run(shutdown).await
}
