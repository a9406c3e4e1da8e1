//! An HTTPS (HTTP/1.1 and HTTP/2) test server with the PKI's server certificate,
//! optionally requiring client certificates: it keeps every request (path,
//! authorization header, body gunzipped) and also answers OTLP over gRPC.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use super::pki::Pki;

#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub authorization: Option<String>,
    pub body: Vec<u8>,
}

pub type Store = Arc<Mutex<Vec<Seen>>>;

struct Collector(Store);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let authorization =
            request.metadata().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
        let spans = request
            .into_inner()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum::<usize>();
        self.0.lock().expect("lock").push(Seen {
            path: "grpc".into(),
            authorization,
            body: spans.to_string().into_bytes(),
        });
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn keep(store: Store, uri: Uri, headers: HeaderMap, body: Bytes) -> (StatusCode, Vec<u8>) {
    let body = super::receiver::gunzip_if_encoded(&headers, &body);
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    let path = uri.path().to_string();
    store.lock().expect("lock").push(Seen { path: path.clone(), authorization, body });
    // InfluxDB answers 204; OTLP/HTTP an (empty) protobuf message; the rest 200.
    if path == "/write" {
        (StatusCode::NO_CONTENT, Vec::new())
    } else {
        (StatusCode::OK, Vec::new())
    }
}

pub struct TlsServer {
    pub addr: SocketAddr,
    pub seen: Store,
    _runtime: tokio::runtime::Runtime,
}

impl TlsServer {
    pub fn paths(&self, path: &str) -> Vec<Seen> {
        self.seen.lock().expect("lock").iter().filter(|s| s.path == path).cloned().collect()
    }
}

/// Starts the server on a loopback port.
pub fn start(pki: &Pki, mutual: bool) -> TlsServer {
    start_with(pki, mutual, &pki.server_cert, &pki.server_key)
}

/// Starts the server with another certificate of the PKI.
pub fn start_with(pki: &Pki, mutual: bool, cert: &std::path::Path, key: &std::path::Path) -> TlsServer {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let seen: Store = Arc::default();
    let store = seen.clone();
    let grpc = tonic::service::Routes::new(
        TraceServiceServer::new(Collector(seen.clone()))
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
    );
    let app = grpc
        .into_axum_router()
        .fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| keep(store.clone(), uri, headers, body));
    let certs: Vec<rustls::pki_types::CertificateDer<'static>> = {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::pem_file_iter(cert)
            .expect("cert")
            .map(|c| c.expect("cert"))
            .collect()
    };
    let key = {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::PrivateKeyDer::from_pem_file(key).expect("key")
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = if mutual {
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject;
        for cert in rustls::pki_types::CertificateDer::pem_file_iter(&pki.ca).expect("ca") {
            roots.add(cert.expect("ca cert")).expect("add ca");
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .expect("verifier");
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_single_cert(certs, key).expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    runtime.spawn(async move {
        listener.set_nonblocking(true).expect("nonblocking");
        let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else { return };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    TlsServer { addr, seen, _runtime: runtime }
}
