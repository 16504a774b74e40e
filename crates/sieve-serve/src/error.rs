//! The crate's error type and its mapping to HTTP and gRPC status codes.

use std::time::Duration;

/// Everything that can go wrong in sieve-serve, on the server and in the client.
///
/// Each variant names what it concerns (model, tensor, file, URL). [`ServeError::http_status`]
/// and [`ServeError::grpc_code`] give the status the server answers with.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The request is malformed: bad JSON, wrong datatype, shape, size, NaN, ... (HTTP 400,
    /// gRPC `INVALID_ARGUMENT`).
    #[error("{0}")]
    InvalidArgument(String),
    /// The request names a model (or version) the server does not serve (HTTP 400,
    /// gRPC `INVALID_ARGUMENT`).
    #[error("unknown model '{model}'{}", version.as_ref().map(|v| format!(" version '{v}'")).unwrap_or_default())]
    UnknownModel {
        /// The requested model name.
        model: String,
        /// The requested version, if any.
        version: Option<String>,
    },
    /// A request or tensor exceeds a configured limit (HTTP 413 for bodies, 400 for tensors;
    /// gRPC `INVALID_ARGUMENT`).
    #[error("{what} is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// What was too large ("request body", "tensor 'x'").
        what: String,
        /// Its size in bytes.
        size: u64,
        /// The configured limit in bytes.
        limit: u64,
    },
    /// The model's request queue is full (HTTP 503, gRPC `RESOURCE_EXHAUSTED`).
    #[error("model '{model}': request queue full ({capacity} requests waiting); retry later")]
    QueueFull {
        /// The model whose queue is full.
        model: String,
        /// The queue capacity.
        capacity: usize,
    },
    /// The request's deadline passed before it was answered (HTTP 504, gRPC `DEADLINE_EXCEEDED`).
    #[error("model '{model}': deadline of {after:?} exceeded before the request ran")]
    DeadlineExceeded {
        /// The model the request was for.
        model: String,
        /// The deadline the request had.
        after: Duration,
    },
    /// The server is shutting down and refuses new work (HTTP 503, gRPC `UNAVAILABLE`).
    #[error("server is shutting down")]
    ShuttingDown,
    /// Authentication failed (HTTP 401, gRPC `UNAUTHENTICATED`).
    #[error("missing or wrong bearer token")]
    Unauthenticated,
    /// The model failed while running (HTTP 500, gRPC `INTERNAL`).
    #[error("model '{model}' failed: {message}")]
    Backend {
        /// The model that failed.
        model: String,
        /// The engine's error message.
        message: String,
    },
    /// A model file could not be loaded.
    #[error("cannot load model '{name}' from {path}: {message}")]
    ModelLoad {
        /// The model name it was to be served under.
        name: String,
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// Server configuration is invalid (bad address, TLS files, options).
    #[error("configuration: {0}")]
    Config(String),
    /// An I/O error with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done (e.g. "binding 127.0.0.1:8000").
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Client: the server could not be reached or the connection broke.
    #[error("{url}: connection failed: {message}")]
    Connect {
        /// The URL or endpoint.
        url: String,
        /// Why.
        message: String,
    },
    /// Client: no answer within the timeout.
    #[error("{url}: no answer within {after:?}")]
    Timeout {
        /// The URL or endpoint.
        url: String,
        /// The timeout that passed.
        after: Duration,
    },
    /// Client: the server answered with an error status.
    #[error("{url}: server answered {status}: {message}")]
    Status {
        /// The URL or endpoint.
        url: String,
        /// HTTP status code, or for gRPC the gRPC code name (e.g. "InvalidArgument").
        status: String,
        /// The server's error message.
        message: String,
        /// Whether retrying the same request may succeed (overload, unavailable).
        retryable: bool,
    },
    /// Client: the server's answer does not follow the protocol.
    #[error("{url}: bad response: {message}")]
    BadResponse {
        /// The URL or endpoint.
        url: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ServeError {
    /// Shorthand for [`ServeError::InvalidArgument`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        ServeError::InvalidArgument(msg.into())
    }

    /// The HTTP status the server answers this error with.
    pub fn http_status(&self) -> u16 {
        match self {
            ServeError::InvalidArgument(_) | ServeError::UnknownModel { .. } => 400,
            ServeError::TooLarge { what, .. } if what == "request body" => 413,
            ServeError::TooLarge { .. } => 400,
            ServeError::QueueFull { .. } | ServeError::ShuttingDown => 503,
            ServeError::DeadlineExceeded { .. } | ServeError::Timeout { .. } => 504,
            ServeError::Unauthenticated => 401,
            _ => 500,
        }
    }

    /// The gRPC status code the server answers this error with.
    pub fn grpc_code(&self) -> tonic::Code {
        match self {
            ServeError::InvalidArgument(_)
            | ServeError::UnknownModel { .. }
            | ServeError::TooLarge { .. } => tonic::Code::InvalidArgument,
            ServeError::QueueFull { .. } => tonic::Code::ResourceExhausted,
            ServeError::ShuttingDown => tonic::Code::Unavailable,
            ServeError::DeadlineExceeded { .. } | ServeError::Timeout { .. } => {
                tonic::Code::DeadlineExceeded
            }
            ServeError::Unauthenticated => tonic::Code::Unauthenticated,
            _ => tonic::Code::Internal,
        }
    }

    /// Client side: whether the same request may succeed if sent again (connection refused or
    /// reset, overload, shutdown, timeouts are; malformed requests are not).
    pub fn is_retryable(&self) -> bool {
        match self {
            ServeError::Connect { .. } | ServeError::Timeout { .. } => true,
            ServeError::Status { retryable, .. } => *retryable,
            _ => false,
        }
    }
}

impl From<ServeError> for tonic::Status {
    fn from(e: ServeError) -> Self {
        tonic::Status::new(e.grpc_code(), e.to_string())
    }
}

/// Result alias for this crate.
pub type Result<T, E = ServeError> = std::result::Result<T, E>;
