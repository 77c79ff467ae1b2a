//! Certificates for the tests: a CA and a certificate for `localhost`/`127.0.0.1` signed by
//! it (usable by a server and, with mutual TLS, a client), written as PEM files.

#![allow(dead_code)]

use micro_quic::{QuicTransport, QuicTransportOptions};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use std::path::Path;
use std::time::Duration;

/// PEM files of one test PKI.
#[derive(Clone, Debug)]
pub struct Pki {
    /// The CA certificate.
    pub ca: String,
    /// A certificate signed by the CA, for localhost and 127.0.0.1.
    pub cert: String,
    /// Its key.
    pub key: String,
}

/// Writes a new CA named `name` and a certificate it signed into `dir`.
pub fn pki(dir: &Path, name: &str) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let write = |file: &str, text: String| {
        let path = dir.join(format!("{name}-{file}"));
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    };
    Pki {
        ca: write("ca.pem", ca.pem()),
        cert: write("cert.pem", cert.pem()),
        key: write("key.pem", key.serialize_pem()),
    }
}

/// Options presenting `identity`'s certificate and trusting the CA of `trust`.
pub fn options(identity: &Pki, trust: &Pki, mutual_tls: bool) -> QuicTransportOptions {
    QuicTransportOptions {
        cert_file: identity.cert.clone(),
        key_file: identity.key.clone(),
        ca_file: trust.ca.clone(),
        mutual_tls,
        dial_timeout: Duration::from_secs(3),
        ..Default::default()
    }
}

/// A transport with `options`.
pub fn transport(options: QuicTransportOptions) -> QuicTransport {
    QuicTransport::new(options).expect("a valid quic transport configuration")
}
