//! Certificates made by the tests: a CA, a server certificate for `localhost` and
//! 127.0.0.1, a client certificate (mutual TLS), and a second CA that signed
//! nothing (the "wrong CA").

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

pub struct Pki {
    pub ca: PathBuf,
    pub other_ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A server certificate that names only `internal.test` (for `server_name`).
    pub named_cert: PathBuf,
    pub named_key: PathBuf,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params
}

/// Writes the PKI's PEM files into `dir`.
pub fn make(dir: &Path) -> Pki {
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write pem");
        path
    };
    let ca_key = KeyPair::generate().expect("ca key");
    let ca_cert = ca_params("synaptic test CA").self_signed(&ca_key).expect("ca");
    let ca_pem = write("ca.pem", ca_cert.pem());
    let issuer = Issuer::new(ca_params("synaptic test CA"), ca_key);

    let other_key = KeyPair::generate().expect("other ca key");
    let other = ca_params("some other CA").self_signed(&other_key).expect("other ca");
    let other_pem = write("other-ca.pem", other.pem());

    let server_key = KeyPair::generate().expect("server key");
    let mut server =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).expect("params");
    server.distinguished_name.push(DnType::CommonName, "localhost");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &issuer).expect("server cert");

    let client_key = KeyPair::generate().expect("client key");
    let mut client = CertificateParams::new(Vec::<String>::new()).expect("params");
    client.distinguished_name.push(DnType::CommonName, "synaptic-telemetry");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client.signed_by(&client_key, &issuer).expect("client cert");

    let named_key = KeyPair::generate().expect("named key");
    let mut named = CertificateParams::new(vec!["internal.test".to_string()]).expect("params");
    named.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let named_cert = named.signed_by(&named_key, &issuer).expect("named cert");

    Pki {
        ca: ca_pem,
        other_ca: other_pem,
        server_cert: write("server.pem", server_cert.pem()),
        server_key: write("server.key", server_key.serialize_pem()),
        client_cert: write("client.pem", client_cert.pem()),
        client_key: write("client.key", client_key.serialize_pem()),
        named_cert: write("named.pem", named_cert.pem()),
        named_key: write("named.key", named_key.serialize_pem()),
    }
}
