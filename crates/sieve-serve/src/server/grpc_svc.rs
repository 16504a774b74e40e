//! gRPC `inference.GRPCInferenceService` on top of the shared inference path. Responses fill
//! `raw_output_contents` (tritonclient reads outputs only from there).

use super::State;
use crate::error::ServeError;
use crate::grpc::grpc_inference_service_server::{
    GrpcInferenceService, GrpcInferenceServiceServer,
};
use crate::grpc::model_infer_response::InferOutputTensor;
use crate::grpc::model_metadata_response::TensorMetadata;
use crate::grpc::*;
use crate::grpc_conv::{parse_grpc_timeout, tensor_from_grpc};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub(crate) struct Svc {
    state: Arc<State>,
}

/// The tonic service with message limits taken from the server's limits.
pub(crate) fn service(state: Arc<State>) -> GrpcInferenceServiceServer<Svc> {
    let max = state.limits.max_body_bytes;
    GrpcInferenceServiceServer::new(Svc { state })
        .max_decoding_message_size(max)
        .max_encoding_message_size(usize::MAX)
}

impl Svc {
    fn auth<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let h = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if self.state.authorized(h) {
            Ok(())
        } else {
            Err(ServeError::Unauthenticated.into())
        }
    }
}

fn opt(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

#[tonic::async_trait]
impl GrpcInferenceService for Svc {
    async fn server_live(
        &self,
        _req: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _req: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        Ok(Response::new(ServerReadyResponse {
            ready: self.state.ready.load(Ordering::SeqCst),
        }))
    }

    async fn model_ready(
        &self,
        req: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        self.auth(&req)?;
        let r = req.get_ref();
        self.state.model(&r.name, opt(&r.version))?;
        Ok(Response::new(ModelReadyResponse {
            ready: self.state.ready.load(Ordering::SeqCst),
        }))
    }

    async fn server_metadata(
        &self,
        req: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        self.auth(&req)?;
        Ok(Response::new(ServerMetadataResponse {
            name: "sieve".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: vec!["binary_tensor_data".into(), "statistics_metrics".into()],
        }))
    }

    async fn model_metadata(
        &self,
        req: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        self.auth(&req)?;
        let r = req.get_ref();
        let served = self.state.model(&r.name, opt(&r.version))?;
        let meta = served.backend.metadata();
        let conv = |s: &crate::backend::TensorSpec| TensorMetadata {
            name: s.name.clone(),
            datatype: s.datatype.name().into(),
            shape: s.shape.clone(),
        };
        Ok(Response::new(ModelMetadataResponse {
            name: r.name.clone(),
            versions: meta.versions.clone(),
            platform: meta.platform.clone(),
            inputs: meta.inputs.iter().map(conv).collect(),
            outputs: meta.outputs.iter().map(conv).collect(),
        }))
    }

    async fn model_infer(
        &self,
        req: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        self.auth(&req)?;
        let timeout = req
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        let r = req.into_inner();
        let model = r.model_name.clone();
        let version = opt(&r.model_version).map(str::to_string);
        let served = self.state.model(&model, version.as_deref())?;
        if !r.raw_input_contents.is_empty() && r.raw_input_contents.len() != r.inputs.len() {
            return Err(ServeError::invalid(format!(
                "{} raw_input_contents for {} inputs",
                r.raw_input_contents.len(),
                r.inputs.len()
            ))
            .into());
        }
        let mut inputs = Vec::with_capacity(r.inputs.len());
        for (i, t) in r.inputs.iter().enumerate() {
            let raw = r.raw_input_contents.get(i).map(|b| b.as_slice());
            if raw.is_some() && t.contents.is_some() {
                return Err(ServeError::invalid(format!(
                    "input '{}' has both contents and raw_input_contents",
                    t.name
                ))
                .into());
            }
            inputs.push(tensor_from_grpc(
                &t.name,
                &t.datatype,
                &t.shape,
                t.contents.as_ref(),
                raw,
            )?);
        }
        let meta = served.backend.metadata();
        let mut wanted = Vec::new();
        if r.outputs.is_empty() {
            wanted.extend(0..meta.outputs.len());
        } else {
            for o in &r.outputs {
                let i = meta
                    .outputs
                    .iter()
                    .position(|s| s.name == o.name)
                    .ok_or_else(|| {
                        ServeError::invalid(format!("model '{model}' has no output '{}'", o.name))
                    })?;
                wanted.push(i);
            }
        }
        let outputs = self
            .state
            .infer(&model, version.as_deref(), inputs, timeout)
            .await?;
        let mut resp = ModelInferResponse {
            model_name: model.clone(),
            model_version: version
                .or_else(|| meta.versions.first().cloned())
                .unwrap_or_default(),
            id: r.id,
            ..Default::default()
        };
        for i in wanted {
            let t = outputs.get(i).ok_or_else(|| {
                Status::internal(format!(
                    "model '{model}' returned {} outputs",
                    outputs.len()
                ))
            })?;
            resp.outputs.push(InferOutputTensor {
                name: t.name.clone(),
                datatype: t.datatype.name().into(),
                shape: t.shape.iter().map(|&d| d as i64).collect(),
                ..Default::default()
            });
            resp.raw_output_contents.push(t.data.to_vec());
        }
        Ok(Response::new(resp))
    }
}
