//! The gRPC side of [`super::Client`].

use super::ClientConfig;
use crate::backend::{ModelMetadata, TensorSpec};
use crate::error::{Result, ServeError};
use crate::grpc::grpc_inference_service_client::GrpcInferenceServiceClient;
use crate::grpc::model_infer_request::InferInputTensor;
use crate::grpc::*;
use crate::grpc_conv::tensor_from_grpc;
use crate::tensor::{DataType, InferTensor};
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};

pub(crate) struct GrpcClient {
    url: String,
    channel: Channel,
    timeout: Duration,
    token: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl GrpcClient {
    pub fn new(url: &str, config: &ClientConfig) -> Result<GrpcClient> {
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| ServeError::Config(format!("gRPC URL '{url}': {e}")))?
            .connect_timeout(config.timeout)
            .tcp_nodelay(true);
        let token = match &config.token {
            Some(t) => Some(
                format!("Bearer {t}")
                    .parse()
                    .map_err(|_| ServeError::Config("token is not valid ASCII".into()))?,
            ),
            None => None,
        };
        Ok(GrpcClient {
            url: url.to_string(),
            channel: endpoint.connect_lazy(),
            timeout: config.timeout,
            token,
        })
    }

    fn client(&self) -> GrpcInferenceServiceClient<Channel> {
        GrpcInferenceServiceClient::new(self.channel.clone())
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX)
    }

    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.set_timeout(self.timeout);
        if let Some(t) = &self.token {
            r.metadata_mut().insert("authorization", t.clone());
        }
        r
    }

    fn map_status(&self, s: tonic::Status) -> ServeError {
        use tonic::Code;
        match s.code() {
            Code::DeadlineExceeded => ServeError::Timeout {
                url: self.url.clone(),
                after: self.timeout,
            },
            Code::Cancelled if s.message().contains("Timeout") => ServeError::Timeout {
                url: self.url.clone(),
                after: self.timeout,
            },
            Code::Unavailable
                if s.message().contains("transport") || s.message().contains("connect") =>
            {
                ServeError::Connect {
                    url: self.url.clone(),
                    message: s.message().to_string(),
                }
            }
            code => ServeError::Status {
                url: self.url.clone(),
                status: format!("{code:?}"),
                message: s.message().to_string(),
                retryable: matches!(code, Code::Unavailable | Code::ResourceExhausted),
            },
        }
    }

    /// Wraps a call so a hung server cannot outlast the timeout even while connecting.
    async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = std::result::Result<T, tonic::Status>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r.map_err(|s| self.map_status(s)),
            Err(_) => Err(ServeError::Timeout {
                url: self.url.clone(),
                after: self.timeout,
            }),
        }
    }

    pub async fn live(&self) -> Result<bool> {
        let mut c = self.client();
        let r = self
            .bounded(c.server_live(self.request(ServerLiveRequest {})))
            .await?;
        Ok(r.into_inner().live)
    }

    pub async fn ready(&self) -> Result<bool> {
        let mut c = self.client();
        let r = self
            .bounded(c.server_ready(self.request(ServerReadyRequest {})))
            .await?;
        Ok(r.into_inner().ready)
    }

    pub async fn model_metadata(&self, model: &str) -> Result<ModelMetadata> {
        let mut c = self.client();
        let req = self.request(ModelMetadataRequest {
            name: model.to_string(),
            version: String::new(),
        });
        let m = self.bounded(c.model_metadata(req)).await?.into_inner();
        let conv = |list: Vec<model_metadata_response::TensorMetadata>| -> Result<Vec<TensorSpec>> {
            list.into_iter()
                .map(|t| {
                    let datatype = DataType::from_name(&t.datatype).ok_or_else(|| {
                        ServeError::BadResponse {
                            url: self.url.clone(),
                            message: format!(
                                "tensor '{}': unknown datatype '{}'",
                                t.name, t.datatype
                            ),
                        }
                    })?;
                    Ok(TensorSpec {
                        name: t.name,
                        datatype,
                        shape: t.shape,
                    })
                })
                .collect()
        };
        Ok(ModelMetadata {
            platform: m.platform,
            versions: m.versions,
            inputs: conv(m.inputs)?,
            outputs: conv(m.outputs)?,
            finite_inputs_only: false,
        })
    }

    pub async fn infer(
        &self,
        model: &str,
        inputs: &[InferTensor],
    ) -> Result<(Vec<InferTensor>, Duration)> {
        let msg = ModelInferRequest {
            model_name: model.to_string(),
            inputs: inputs
                .iter()
                .map(|t| InferInputTensor {
                    name: t.name.clone(),
                    datatype: t.datatype.name().to_string(),
                    shape: t.shape.iter().map(|&d| d as i64).collect(),
                    ..Default::default()
                })
                .collect(),
            raw_input_contents: inputs.iter().map(|t| t.data.to_vec()).collect(),
            ..Default::default()
        };
        let mut c = self.client();
        let start = Instant::now();
        let r = self
            .bounded(c.model_infer(self.request(msg)))
            .await?
            .into_inner();
        let rtt = start.elapsed();
        let bad = |m: String| ServeError::BadResponse {
            url: self.url.clone(),
            message: m,
        };
        if !r.raw_output_contents.is_empty() && r.raw_output_contents.len() != r.outputs.len() {
            return Err(bad(format!(
                "{} raw_output_contents for {} outputs",
                r.raw_output_contents.len(),
                r.outputs.len()
            )));
        }
        let outputs = r
            .outputs
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let raw = r.raw_output_contents.get(i).map(|b| b.as_slice());
                tensor_from_grpc(&t.name, &t.datatype, &t.shape, t.contents.as_ref(), raw)
                    .map_err(|e| bad(e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((outputs, rtt))
    }
}
