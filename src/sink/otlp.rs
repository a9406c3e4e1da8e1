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
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::Channel;

use super::{Encoded, SideInput, SinkError, SinkKind};
use crate::decode::{one_of, Diagnostics, MapReader};
use crate::step::traces::{ServiceIdentity, SpanBatch, SPANS};
use crate::tls::{describe_http_error, error_chain, HttpEndpoint};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
}

#[derive(Debug, Clone)]
pub struct OtlpSinkConfig {
    /// `http://host:4317` (gRPC) or `http://host:4318` (HTTP; `/v1/traces` is
    /// added), `https://` for TLS; with its timeout, TLS settings and headers
    /// (authentication; gRPC metadata for gRPC).
    pub(crate) endpoint: HttpEndpoint,
    pub(crate) protocol: OtlpProtocol,
    /// gzip the requests.
    pub(crate) compression: bool,
    /// The traces step whose spans this sink exports; absent: every traces step's.
    pub(crate) spans_from: Option<String>,
    /// Resource attributes `service.name`, `service.version`,
    /// `deployment.environment`; each one not set here is the traces step's.
    pub(crate) service: ServiceOverrides,
}

/// The sink's own resource attributes; `None` takes the spans' producer's.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServiceOverrides {
    service_name: Option<String>,
    service_version: Option<String>,
    environment: Option<String>,
}

impl SinkKind for OtlpSinkConfig {
    type Output = OtlpOutput;

    fn decode(map: &mut MapReader<'_>, cx: &mut Diagnostics) -> Option<Self> {
        let endpoint = HttpEndpoint::decode(map, "otlp sink", "endpoint", cx);
        let protocol = map
            .node("protocol")
            .and_then(|n| {
                one_of(n, &[("grpc", OtlpProtocol::Grpc), ("http/protobuf", OtlpProtocol::HttpProtobuf)], cx)
            })
            .unwrap_or(OtlpProtocol::Grpc);
        Some(OtlpSinkConfig {
            endpoint: endpoint?,
            protocol,
            compression: map
                .node("compression")
                .and_then(|n| one_of(n, &[("gzip", true), ("none", false)], cx))
                .unwrap_or(true),
            spans_from: map.optional("spans_from", cx),
            service: ServiceOverrides {
                service_name: map.optional("service_name", cx),
                service_version: map.optional("service_version", cx),
                environment: map.optional("environment", cx),
            },
        })
    }

    fn describe(&self) -> String {
        format!("spans over OTLP to {}", self.endpoint.shown_url())
    }

    fn side_input(&self) -> Option<SideInput> {
        Some(SideInput { kind: SPANS, from: self.spans_from.clone(), what: "the traces step's spans" })
    }

    async fn open(&self, _cx: &super::OpenContext<'_>) -> Result<OtlpOutput, SinkError> {
        OtlpOutput::open(self)
    }
}

impl super::Write for OtlpOutput {
    async fn write(&mut self, batch: &Encoded<'_>) -> Result<(), SinkError> {
        // Only the subscribed side output is routed here; anything else has no spans.
        match batch.side.and_then(|side| side.items.downcast_ref::<SpanBatch>()) {
            Some(spans) => self.write(spans).await,
            None => Ok(()),
        }
    }
}

/// The instrumentation scope the spec's OpenTelemetry Format names.
pub(crate) const SCOPE_NAME: &str = "codex-synaptic-telemetry";

pub(crate) struct OtlpOutput {
    endpoint: String,
    transport: Transport,
    /// Resource attributes set on the sink; the rest come with the spans.
    overrides: ServiceOverrides,
    compression: bool,
    headers: Vec<(String, String)>,
}

enum Transport {
    Grpc(TraceServiceClient<Channel>),
    Http { client: reqwest::Client, url: String },
}

impl OtlpOutput {
    pub(crate) fn open(config: &OtlpSinkConfig) -> Result<OtlpOutput, SinkError> {
        let shown = config.endpoint.shown_url();
        let error = |message: String| SinkError::Otlp { endpoint: shown.clone(), message };
        let endpoint = &config.endpoint;
        let transport = match config.protocol {
            OtlpProtocol::Grpc => {
                let channel = Channel::from_shared(endpoint.url.clone())
                    .map_err(|e| error(format!("invalid endpoint: {e}")))?
                    .timeout(endpoint.timeout);
                // Connects on first use, and reconnects after failures by itself;
                // `https://` over our rustls client configuration (CA, client
                // certificate, server name), cleartext HTTP/2 only for `http://`.
                let channel = if endpoint.url.starts_with("https://") {
                    let tls = endpoint.tls.clone().unwrap_or_default();
                    tls.warn_if_insecure("otlp sink");
                    // hyper-rustls offers h2 by ALPN itself.
                    let client = tls.client_config().map_err(|e| error(e.to_string()))?;
                    let connector = hyper_rustls::HttpsConnectorBuilder::new()
                        .with_tls_config(client)
                        .https_only()
                        .enable_http2()
                        .build();
                    channel.connect_with_connector_lazy(connector)
                } else {
                    channel.connect_lazy()
                };
                let mut client = TraceServiceClient::new(channel);
                if config.compression {
                    client = client
                        .send_compressed(CompressionEncoding::Gzip)
                        .accept_compressed(CompressionEncoding::Gzip);
                }
                Transport::Grpc(client)
            }
            OtlpProtocol::HttpProtobuf => {
                let client = endpoint.client("otlp sink").map_err(|e| error(e.to_string()))?;
                let base = endpoint.url.trim_end_matches('/');
                let url =
                    if base.ends_with("/v1/traces") { base.to_string() } else { format!("{base}/v1/traces") };
                Transport::Http { client, url }
            }
        };
        Ok(OtlpOutput {
            endpoint: shown.clone(),
            transport,
            overrides: config.service.clone(),
            compression: config.compression,
            headers: endpoint.headers.clone(),
        })
    }

    /// The resource: the sink's own attributes, else those the spans came with.
    fn resource(&self, from_spans: &ServiceIdentity) -> Resource {
        let attribute = |key: &str, own: &Option<String>, default: &str| KeyValue {
            key: key.to_string(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(own.as_deref().unwrap_or(default).to_string())),
            }),
        };
        let own = &self.overrides;
        Resource {
            attributes: vec![
                attribute("service.name", &own.service_name, &from_spans.service_name),
                attribute("service.version", &own.service_version, &from_spans.service_version),
                attribute("deployment.environment", &own.environment, &from_spans.environment),
            ],
            ..Resource::default()
        }
    }

    fn request(&self, batch: &SpanBatch) -> ExportTraceServiceRequest {
        let spans = &batch.spans;
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(self.resource(&batch.service)),
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
    pub(crate) async fn write(&mut self, batch: &SpanBatch) -> Result<(), SinkError> {
        let spans = &batch.spans;
        if spans.is_empty() {
            return Ok(());
        }
        let request = self.request(batch);
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
                    Err(status) => {
                        return Err(error(format!("gRPC export failed: {}", error_chain(&status))))
                    }
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
                let response = builder
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| error(format!("POST: {}", describe_http_error(e))))?;
                let status = response.status();
                // A success answer is a small protobuf message; nothing more is read.
                let (bytes, _) = super::read_body_capped(response, 1 << 20).await;
                if status.is_success() {
                    ExportTraceServiceResponse::decode(bytes.as_ref()).unwrap_or_default()
                } else if status.as_u16() == 400 {
                    tracing::error!(endpoint = %self.endpoint, %status, spans = spans.len(), "OTLP receiver rejected spans as invalid; not retried");
                    return Ok(());
                } else {
                    return Err(error(format!("POST: HTTP {status}")));
                }
            }
        };
        if let Some(partial) = response.partial_success.filter(|p| p.rejected_spans > 0) {
            tracing::warn!(endpoint = %self.endpoint, rejected = partial.rejected_spans, message = %partial.error_message, "OTLP receiver rejected some spans");
        }
        Ok(())
    }
}
