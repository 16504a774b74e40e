//! A synchronous wrapper of [`Client`] for code outside an async runtime (the edge runtime).

use super::{Client, ClientConfig, InferResult};
use crate::backend::ModelMetadata;
use crate::error::{Result, ServeError};
use crate::tensor::InferTensor;

/// [`Client`] with blocking methods. Owns a small single-threaded tokio runtime; must not be
/// used from inside another async runtime's thread.
pub struct BlockingClient {
    rt: tokio::runtime::Runtime,
    inner: Client,
}

impl BlockingClient {
    /// A client for the server at `url`; see [`Client::new`].
    pub fn new(url: &str, config: ClientConfig) -> Result<BlockingClient> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ServeError::Io {
                context: "starting the client runtime".into(),
                source: e,
            })?;
        let inner = {
            let _guard = rt.enter();
            Client::new(url, config)?
        };
        Ok(BlockingClient { rt, inner })
    }

    /// See [`Client::live`].
    pub fn live(&self) -> Result<bool> {
        self.rt.block_on(self.inner.live())
    }

    /// See [`Client::ready`].
    pub fn ready(&self) -> Result<bool> {
        self.rt.block_on(self.inner.ready())
    }

    /// See [`Client::model_metadata`].
    pub fn model_metadata(&self, model: &str) -> Result<ModelMetadata> {
        self.rt.block_on(self.inner.model_metadata(model))
    }

    /// See [`Client::infer`].
    pub fn infer(&self, model: &str, inputs: &[InferTensor]) -> Result<InferResult> {
        self.rt.block_on(self.inner.infer(model, inputs))
    }
}
