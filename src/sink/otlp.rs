//! The `otlp` output: spans from the traces step, exported over OTLP/gRPC or
//! OTLP/HTTP (protobuf), gzip-compressed by default. Jaeger, Tempo and the
//! OpenTelemetry Collector all take OTLP (Jaeger's own exporter is deprecated).

use std::str::FromStr;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::Channel;

use super::SinkError;
use crate::config::{OtlpProtocol, OtlpSinkConfig, TracesConfig};

/// The instrumentation scope the spec's OpenTelemetry Format names.
pub const SCOPE_NAME: &str = "codex-synaptic-telemetry";

pub struct OtlpOutput {
    endpoint: String,
    transport: Transport,
    resource: Resource,
    compression: bool,
    headers: Vec<(String, String)>,
}

enum Transport {
    Grpc(TraceServiceClient<Channel>),
    Http { client: reqwest::Client, url: String },
}

impl OtlpOutput {
    /// `resource` describes the service the spans are about (from the traces step).
    pub fn open(config: &OtlpSinkConfig, resource: &TracesConfig) -> Result<OtlpOutput, SinkError> {
        let error = |message: String| SinkError::Otlp { endpoint: config.endpoint.clone(), message };
        let transport = match config.protocol {
            OtlpProtocol::Grpc => {
                // Connects on first use, and reconnects after failures by itself.
                let channel = Channel::from_shared(config.endpoint.clone())
                    .map_err(|e| error(format!("invalid endpoint: {e}")))?
                    .timeout(config.timeout)
                    .connect_lazy();
                let mut client = TraceServiceClient::new(channel);
                if config.compression {
                    client = client
                        .send_compressed(CompressionEncoding::Gzip)
                        .accept_compressed(CompressionEncoding::Gzip);
                }
                Transport::Grpc(client)
            }
            OtlpProtocol::HttpProtobuf => {
                let client = reqwest::Client::builder()
                    .timeout(config.timeout)
                    .build()
                    .map_err(|e| error(format!("cannot build the HTTP client: {e}")))?;
                let base = config.endpoint.trim_end_matches('/');
                let url =
                    if base.ends_with("/v1/traces") { base.to_string() } else { format!("{base}/v1/traces") };
                Transport::Http { client, url }
            }
        };
        let attribute = |key: &str, value: &str| KeyValue {
            key: key.to_string(),
            value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_string())) }),
        };
        let resource = Resource {
            attributes: vec![
                attribute("service.name", &resource.service_name),
                attribute("service.version", &resource.service_version),
                attribute("deployment.environment", &resource.environment),
            ],
            ..Resource::default()
        };
        Ok(OtlpOutput {
            endpoint: config.endpoint.clone(),
            transport,
            resource,
            compression: config.compression,
            headers: config.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        })
    }

    fn request(&self, spans: &[Span]) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(self.resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: SCOPE_NAME.to_string(),
                        version: env!("CARGO_PKG_VERSION").to_string(),
                        ..InstrumentationScope::default()
                    }),
                    spans: spans.to_vec(),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    /// Exports the spans; an error means "try again". A receiver that rejects
    /// spans as malformed (HTTP 400, `partial_success`) would reject them again,
    /// so that is logged and counted as written.
    pub async fn write(&mut self, spans: &[Span]) -> Result<(), SinkError> {
        if spans.is_empty() {
            return Ok(());
        }
        let request = self.request(spans);
        let error = |message: String| SinkError::Otlp { endpoint: self.endpoint.clone(), message };
        let response = match &mut self.transport {
            Transport::Grpc(client) => {
                let mut request = tonic::Request::new(request);
                for (k, v) in &self.headers {
                    if let (Ok(key), Ok(value)) =
                        (MetadataKey::from_str(k), MetadataValue::try_from(v.as_str()))
                    {
                        request.metadata_mut().insert(key, value);
                    }
                }
                match client.export(request).await {
                    Ok(response) => response.into_inner(),
                    Err(status) if status.code() == tonic::Code::InvalidArgument => {
                        tracing::error!(endpoint = %self.endpoint, error = %status, spans = spans.len(), "OTLP receiver rejected spans as invalid; not retried");
                        return Ok(());
                    }
                    Err(status) => return Err(error(format!("gRPC export failed: {status}"))),
                }
            }
            Transport::Http { client, url } => {
                let body = request.encode_to_vec();
                let mut builder = client.post(url.as_str()).header("content-type", "application/x-protobuf");
                let body = if self.compression {
                    builder = builder.header("content-encoding", "gzip");
                    super::gzip(&body).map_err(|e| error(format!("gzip: {e}")))?
                } else {
                    body
                };
                for (k, v) in &self.headers {
                    builder = builder.header(k, v);
                }
                let response =
                    builder.body(body).send().await.map_err(|e| error(format!("POST {url}: {e}")))?;
                let status = response.status();
                // A success answer is a small protobuf message; nothing more is read.
                let (bytes, _) = super::read_body_capped(response, 1 << 20).await;
                if status.is_success() {
                    ExportTraceServiceResponse::decode(bytes.as_ref()).unwrap_or_default()
                } else if status.as_u16() == 400 {
                    tracing::error!(endpoint = %self.endpoint, %status, spans = spans.len(), "OTLP receiver rejected spans as invalid; not retried");
                    return Ok(());
                } else {
                    return Err(error(format!("POST {url}: HTTP {status}")));
                }
            }
        };
        if let Some(partial) = response.partial_success.filter(|p| p.rejected_spans > 0) {
            tracing::warn!(endpoint = %self.endpoint, rejected = partial.rejected_spans, message = %partial.error_message, "OTLP receiver rejected some spans");
        }
        Ok(())
    }
}
