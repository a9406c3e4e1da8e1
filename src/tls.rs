//! TLS for every HTTP and gRPC client (InfluxDB, the http sink, OTLP, Alertmanager,
//! webhooks) and for the HTTP server, from one config shape:
//! `tls: {ca_file, cert_file, key_file, server_name, insecure_skip_verify}`.
//!
//! Verification is always on: the server's certificate must chain to the public
//! roots or to `ca_file`, and name the host of the URL (or `server_name`). Only
//! `insecure_skip_verify: true` turns it off, with a warning at start. An
//! `https://` URL always means TLS; a `tls` section on an `http://` URL is refused
//! at config load rather than silently sent in the clear. Files are read and
//! parsed when the config is loaded, so `validate` reports a bad CA or key.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::decode::{Diagnostics, MapReader};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} `{path}`: {message}")]
    Read { what: &'static str, path: String, message: String },
    #[error("{what} `{path}` holds no PEM certificate")]
    NoCertificate { what: &'static str, path: String },
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// A client's (or the server's) TLS settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TlsConfig {
    /// PEM file of the CA certificates to trust besides the public roots.
    pub(crate) ca_file: Option<PathBuf>,
    /// PEM client certificate chain and its key (mutual TLS); both or neither.
    pub(crate) cert_file: Option<PathBuf>,
    pub(crate) key_file: Option<PathBuf>,
    /// The name the server's certificate must carry, when not the URL's host.
    pub(crate) server_name: Option<String>,
    /// Accept any server certificate. Never in production; warned at start.
    pub(crate) insecure_skip_verify: bool,
}

impl TlsConfig {
    /// The optional `tls` key of `map` (`what` names the section in messages).
    pub(crate) fn decode_key(map: &mut MapReader<'_>, what: &str, cx: &mut Diagnostics) -> Option<TlsConfig> {
        let node = map.node("tls")?;
        let label = format!("{what} tls");
        let mut tls_map = MapReader::new(node, &label, cx)?;
        let config = TlsConfig {
            ca_file: tls_map.optional::<String>("ca_file", cx).map(PathBuf::from),
            cert_file: tls_map.optional::<String>("cert_file", cx).map(PathBuf::from),
            key_file: tls_map.optional::<String>("key_file", cx).map(PathBuf::from),
            server_name: tls_map.optional("server_name", cx),
            insecure_skip_verify: tls_map.or("insecure_skip_verify", false, cx),
        };
        let pos = tls_map.pos();
        tls_map.finish(cx);
        if config.cert_file.is_some() != config.key_file.is_some() {
            cx.error(pos, format!("{label}: cert_file and key_file go together"));
        }
        if let Some(name) = &config.server_name {
            if ServerName::try_from(name.clone()).is_err() {
                cx.error(pos, format!("{label}: server_name `{name}` is not a host name"));
            }
        }
        // Read the files now: `validate` and a start report a missing or bad file.
        if let Err(e) = config.client_config() {
            cx.error(pos, format!("{label}: {e}"));
        }
        Some(config)
    }

    /// Refuses a `tls` section on a cleartext URL: the operator asked for TLS.
    pub(crate) fn check_scheme(
        tls: Option<&TlsConfig>,
        url: &str,
        pos: crate::decode::yaml::Pos,
        cx: &mut Diagnostics,
    ) {
        if tls.is_some() && url.starts_with("http://") {
            cx.error(
                pos,
                format!(
                    "`tls` is set but the URL {} is http://; use https://",
                    crate::decode::secret::display_url(url)
                ),
            );
        }
    }

    fn roots(&self) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        if let Some(path) = &self.ca_file {
            for cert in read_certificates(path, "ca_file")? {
                roots.add(cert).map_err(|e| TlsError::Setup(format!("ca_file `{}`: {e}", path.display())))?;
            }
        }
        Ok(roots)
    }

    /// The rustls client configuration these settings describe.
    pub(crate) fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?;
        let verifier: Arc<dyn ServerCertVerifier> = if self.insecure_skip_verify {
            Arc::new(AcceptAnyCertificate { provider: provider.clone() })
        } else {
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(self.roots()?), provider.clone())
                    .build()
                    .map_err(|e| TlsError::Setup(e.to_string()))?;
            match &self.server_name {
                Some(name) => Arc::new(ExpectName {
                    inner: webpki,
                    name: ServerName::try_from(name.clone())
                        .map_err(|e| TlsError::Setup(format!("server_name `{name}`: {e}")))?,
                }),
                None => webpki,
            }
        };
        let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                let chain = read_certificates(cert, "cert_file")?;
                let key = read_key(key)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| TlsError::Setup(format!("client certificate `{}`: {e}", cert.display())))
            }
            _ => Ok(builder.with_no_client_auth()),
        }
    }

    /// Logs the one setting that weakens TLS, once per client at start.
    pub(crate) fn warn_if_insecure(&self, what: &str) {
        if self.insecure_skip_verify {
            tracing::warn!("{what}: tls.insecure_skip_verify is on: the server's certificate is NOT checked");
        }
    }
}

pub(crate) fn read_certificates(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = std::fs::read(path).map_err(|e| TlsError::Read {
        what,
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Read { what, path: path.display().to_string(), message: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { what, path: path.display().to_string() });
    }
    Ok(certs)
}

pub(crate) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let text = std::fs::read(path).map_err(|e| TlsError::Read {
        what: "key_file",
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|e| TlsError::Read {
        what: "key_file",
        path: path.display().to_string(),
        message: format!("no PEM private key ({e})"),
    })
}

/// An HTTP client for `url`: TLS per `tls` (the public roots alone when absent),
/// HTTPS only for an `https://` URL, the given request timeout.
pub(crate) fn http_client(
    url: &str,
    timeout: Duration,
    tls: Option<&TlsConfig>,
) -> Result<reqwest::Client, TlsError> {
    let default = TlsConfig::default();
    let tls = tls.unwrap_or(&default);
    let mut config = tls.client_config()?;
    // HTTP/1.1: one request per batch gains nothing from HTTP/2, and an HTTP/1.1
    // client reads the server's answer to its request, so a TLS 1.3 server's
    // refusal that comes after the handshake (a missing client certificate) is
    // read and named instead of showing as a broken pipe.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut builder = reqwest::Client::builder().timeout(timeout).use_preconfigured_tls(config);
    if url.starts_with("https://") {
        builder = builder.https_only(true);
    }
    builder.build().map_err(|e| TlsError::Setup(format!("cannot build the HTTP client: {}", error_chain(&e))))
}

/// An error and its causes on one line, without the URL (which may carry
/// credentials): "error sending request: … invalid peer certificate: UnknownIssuer".
pub(crate) fn describe_http_error(error: reqwest::Error) -> String {
    error_chain(&error.without_url())
}

/// `error: cause: cause…`, each distinct message once.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    crate::decode::secret::mask(&parts.join(": ")).into_owned()
}

/// Verifies the certificate against a configured name instead of the URL's host.
#[derive(Debug)]
struct ExpectName {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for ExpectName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(end_entity, intermediates, &self.name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `insecure_skip_verify`: any certificate is accepted; the handshake's
/// signatures are still checked, so the connection is at least to the holder of
/// the key it presented.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// The server's TLS: its certificate chain and key, and optionally the CA that
/// client certificates must chain to (then every client must present one).
pub(crate) fn server_config(
    cert_file: &Path,
    key_file: &Path,
    client_ca: Option<&Path>,
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    let builder = match client_ca {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certificates(path, "client_ca_file")? {
                roots.add(cert).map_err(|e| TlsError::Setup(format!("client_ca_file: {e}")))?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| TlsError::Setup(format!("client_ca_file: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(read_certificates(cert_file, "cert_file")?, read_key(key_file)?)
        .map_err(|e| TlsError::Setup(format!("cert_file `{}`: {e}", cert_file.display())))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Where an HTTP client sends: the URL, its timeout, TLS, and the request headers
/// (authentication among them). Shared by the InfluxDB, http and OTLP sinks and
/// the Alertmanager and webhook receivers.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpEndpoint {
    pub(crate) url: String,
    pub(crate) timeout: Duration,
    pub(crate) tls: Option<TlsConfig>,
    /// Configured headers, then `Authorization` from `auth`; values are secrets
    /// when they carry credentials (see `decode::is_sensitive_name`).
    pub(crate) headers: Vec<(String, String)>,
}

impl HttpEndpoint {
    /// An endpoint without TLS settings or headers.
    pub fn new(url: &str, timeout: Duration) -> HttpEndpoint {
        HttpEndpoint { url: url.to_string(), timeout, tls: None, headers: Vec::new() }
    }

    /// Reads `url_key` (an `http://` or `https://` URL), `timeout`, `tls`,
    /// `headers` and `auth: {bearer: TOKEN}` or `auth: {username, password}`.
    pub(crate) fn decode(
        map: &mut MapReader<'_>,
        what: &str,
        url_key: &'static str,
        cx: &mut Diagnostics,
    ) -> Option<HttpEndpoint> {
        let url: Option<String> = map.required(url_key, cx);
        let url_pos = map.key_pos(url_key);
        if let Some(u) = &url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                cx.error(
                    url_pos,
                    format!(
                        "{url_key} must start with http:// or https://, got `{}`",
                        crate::decode::secret::display_url(u)
                    ),
                );
            }
        }
        let timeout = map.or("timeout", Duration::from_secs(10), cx);
        let tls = TlsConfig::decode_key(map, what, cx);
        let configured: std::collections::BTreeMap<String, String> =
            map.or("headers", Default::default(), cx);
        let mut headers: Vec<(String, String)> = configured.into_iter().collect();
        if let Some(value) = map.node("auth").and_then(|n| decode_auth(n, what, cx)) {
            headers.push(("authorization".to_string(), value));
        }
        for (name, value) in &headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                || reqwest::header::HeaderValue::from_str(value).is_err()
            {
                cx.error(map.key_pos("headers"), format!("header `{name}` is not a valid HTTP header"));
            }
        }
        let url = url?;
        TlsConfig::check_scheme(tls.as_ref(), &url, url_pos, cx);
        Some(HttpEndpoint { url, timeout, tls, headers })
    }

    /// The URL as logs show it: credentials stripped.
    pub(crate) fn shown_url(&self) -> String {
        crate::decode::secret::display_url(&self.url)
    }

    /// A client for this endpoint (warns once if verification is off).
    pub(crate) fn client(&self, what: &str) -> Result<reqwest::Client, TlsError> {
        if let Some(tls) = &self.tls {
            tls.warn_if_insecure(what);
        }
        http_client(&self.url, self.timeout, self.tls.as_ref())
    }

    /// `request` with this endpoint's headers.
    pub(crate) fn with_headers(&self, mut request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        request
    }
}

/// `auth: {bearer: TOKEN}` or `auth: {username: U, password: P}` as an
/// `Authorization` header value, registered as a secret.
fn decode_auth(node: &crate::decode::yaml::Node, what: &str, cx: &mut Diagnostics) -> Option<String> {
    use crate::decode::secret::{self, Secret};
    use base64::Engine;
    let label = format!("{what} auth");
    let mut map = MapReader::new(node, &label, cx)?;
    let bearer: Option<Secret> = map.optional("bearer", cx);
    let username: Option<String> = map.optional("username", cx);
    let password: Option<Secret> = map.optional("password", cx);
    let api_key: Option<Secret> = map.optional("api_key", cx);
    let pos = map.pos();
    map.finish(cx);
    let value = match (bearer, username, password, api_key) {
        (Some(token), None, None, None) => format!("Bearer {}", token.expose()),
        // Elasticsearch's API keys: the encoded `id:api_key` it hands out.
        (None, None, None, Some(key)) => format!("ApiKey {}", key.expose()),
        (None, Some(user), Some(password), None) => {
            let raw = format!("{user}:{}", password.expose());
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
        }
        _ => {
            cx.error(
                pos,
                format!("{label} takes one of `bearer`, `api_key`, or both `username` and `password`"),
            );
            return None;
        }
    };
    secret::register(&value);
    Some(value)
}
