//! TLS for the `quic` transport: the certificates and keys from the options (or a
//! self-signed development certificate), the rustls configs built with an explicitly passed
//! crypto provider (ring; never a process-wide default), and the handshake errors turned
//! into errors that say what is wrong and what to do.

use crate::ID;
use crate::options::QuicTransportOptions;
use micro_core::Error;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;

/// The ALPN protocol both sides speak: micro's frames on QUIC streams.
pub const ALPN: &[u8] = b"micro-quic/1";

/// TLS alert numbers (RFC 8446 §6) seen in QUIC CRYPTO_ERROR codes.
const ALERT_BAD_CERTIFICATE: u8 = 42;
const ALERT_UNSUPPORTED_CERTIFICATE: u8 = 43;
const ALERT_CERTIFICATE_EXPIRED: u8 = 45;
const ALERT_CERTIFICATE_UNKNOWN: u8 = 46;
const ALERT_UNKNOWN_CA: u8 = 48;
const ALERT_CERTIFICATE_REQUIRED: u8 = 116;

/// The certificate chain and key a side presents.
pub(crate) struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

/// Everything TLS needs, loaded once when the transport is made.
#[derive(Clone)]
pub(crate) struct Tls {
    provider: Arc<CryptoProvider>,
    identity: Identity,
    /// The identity is the generated development certificate.
    pub self_signed: bool,
    /// Trust anchors for the peer's certificate.
    roots: Arc<RootCertStore>,
    options: QuicTransportOptions,
}

fn config_error(key: &str, detail: impl std::fmt::Display) -> Error {
    Error::bad_request(ID, format!("transport.{key}: {detail}"))
}

/// Reads a PEM certificate file (one or more certificates).
fn read_certs(key: &str, path: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            config_error(
                key,
                format!("cannot read PEM certificates from {path}: {e}; give a readable PEM file"),
            )
        })?;
    if certs.is_empty() {
        return Err(config_error(
            key,
            format!("{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
        ));
    }
    Ok(certs)
}

impl Tls {
    /// Loads the files the options name, or generates the development certificate.
    pub fn load(options: &QuicTransportOptions) -> Result<Tls, Error> {
        // ring, passed to every builder below (no process-wide default). rustls 0.23.48
        // deprecates this function because ring has no post-quantum key exchange; aws-lc-rs
        // has it but needs a much heavier native build. See the README's "TLS".
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (identity, self_signed) = if options.cert_file.is_empty() {
            (self_signed()?, true)
        } else {
            let chain = read_certs("cert_file", &options.cert_file)?;
            let key = PrivateKeyDer::from_pem_file(&options.key_file).map_err(|e| {
                config_error(
                    "key_file",
                    format!(
                        "cannot read a PEM private key (PKCS#8, PKCS#1 or SEC1) from {}: {e}",
                        options.key_file
                    ),
                )
            })?;
            (Identity { chain, key }, false)
        };
        let mut roots = RootCertStore::empty();
        if options.ca_file.is_empty() {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        } else {
            for cert in read_certs("ca_file", &options.ca_file)? {
                roots.add(cert).map_err(|e| {
                    config_error(
                        "ca_file",
                        format!(
                            "{} holds a certificate rustls refuses as a CA: {e}",
                            options.ca_file
                        ),
                    )
                })?;
            }
        }
        if self_signed {
            // This transport's own development certificate: its key never leaves the
            // process, so trusting it lets one process talk to itself with no config.
            if let Some(cert) = identity.chain.first() {
                let _ = roots.add(cert.clone());
            }
        }
        Ok(Tls {
            provider,
            identity,
            self_signed,
            roots: Arc::new(roots),
            options: options.clone(),
        })
    }

    fn versions(
        &self,
    ) -> Result<rustls::ConfigBuilder<rustls::ServerConfig, rustls::WantsVerifier>, rustls::Error>
    {
        rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
    }

    /// The rustls server config (TLS 1.3, ALPN, client certificates when `mutual_tls`).
    pub fn server(&self) -> Result<rustls::ServerConfig, Error> {
        let tls_error = |e: rustls::Error| {
            Error::bad_request(ID, format!("the TLS server configuration is invalid: {e}"))
        };
        let builder = self.versions().map_err(tls_error)?;
        let builder = if self.options.mutual_tls {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                self.roots.clone(),
                self.provider.clone(),
            )
            .build()
            .map_err(|e| {
                config_error(
                    "ca_file",
                    format!("cannot verify client certificates with it: {e}"),
                )
            })?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let identity = self.identity.clone();
        let mut config = builder
            .with_single_cert(identity.chain, identity.key)
            .map_err(|e| {
                config_error(
                    "key_file",
                    format!("the key does not suit the certificate of cert_file: {e}"),
                )
            })?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        if self.options.zero_rtt {
            // QUIC allows only 0 or u32::MAX here.
            config.max_early_data_size = u32::MAX;
        }
        Ok(config)
    }

    /// The rustls client config (TLS 1.3, ALPN, server verification, client certificate
    /// when `mutual_tls`).
    pub fn client(&self) -> Result<rustls::ClientConfig, Error> {
        let tls_error = |e: rustls::Error| {
            Error::bad_request(ID, format!("the TLS client configuration is invalid: {e}"))
        };
        let builder = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_error)?;
        let builder = if self.options.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(self.provider.clone())))
        } else {
            builder.with_root_certificates(self.roots.clone())
        };
        let mut config = if self.options.mutual_tls {
            let identity = self.identity.clone();
            builder
                .with_client_auth_cert(identity.chain, identity.key)
                .map_err(|e| {
                    config_error(
                        "key_file",
                        format!("the key does not suit the certificate of cert_file: {e}"),
                    )
                })?
        } else {
            builder.with_no_client_auth()
        };
        config.alpn_protocols = vec![ALPN.to_vec()];
        config.enable_early_data = self.options.zero_rtt;
        Ok(config)
    }
}

/// A self-signed certificate for `localhost`, `127.0.0.1` and `::1`, its subject made
/// unique (process id and time) so that another process's development certificate is
/// an unknown issuer, not a look-alike.
fn self_signed() -> Result<Identity, Error> {
    let failed = |e: rcgen::Error| {
        Error::internal(
            ID,
            format!("generating the self-signed development certificate failed: {e}"),
        )
    };
    let names = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    let mut params = rcgen::CertificateParams::new(names).map_err(failed)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!(
            "micro quic development certificate {}-{nanos:x}",
            std::process::id()
        ),
    );
    let signing_key = rcgen::KeyPair::generate().map_err(failed)?;
    let cert = params.self_signed(&signing_key).map_err(failed)?;
    let key = PrivateKeyDer::try_from(signing_key.serialize_der()).map_err(|e| {
        Error::internal(
            ID,
            format!("the generated development key is unusable: {e}"),
        )
    })?;
    Ok(Identity {
        chain: vec![cert.der().clone()],
        key,
    })
}

/// `insecure_skip_verify`: accepts any server certificate, still checking the handshake
/// signatures (so the connection is encrypted, but to whoever answered).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Whether a QUIC error code is one of the TLS alerts about certificates.
fn certificate_alert(code: quinn::TransportErrorCode) -> Option<u8> {
    [
        ALERT_BAD_CERTIFICATE,
        ALERT_UNSUPPORTED_CERTIFICATE,
        ALERT_CERTIFICATE_EXPIRED,
        ALERT_CERTIFICATE_UNKNOWN,
        ALERT_UNKNOWN_CA,
        ALERT_CERTIFICATE_REQUIRED,
    ]
    .into_iter()
    .find(|alert| code == quinn::TransportErrorCode::crypto(*alert))
}

/// The error of a connection to `address` that failed (during or after the handshake):
/// certificate problems say which side refused which certificate and what to configure.
pub(crate) fn connection_error(address: &str, error: &quinn::ConnectionError) -> Error {
    use quinn::ConnectionError as E;
    let detail = match error {
        E::TransportError(e)
            if certificate_alert(e.code).is_some()
                || e.reason.starts_with("invalid peer certificate") =>
        {
            format!(
                "TLS handshake with {address} failed: the server's certificate is not trusted \
             ({}); set transport.ca_file to the CA that signed it, or transport.server_name to \
             a name the certificate holds (for development only: \
             transport.insecure_skip_verify: true)",
                e.reason
            )
        }
        E::ConnectionClosed(close)
            if close.error_code
                == quinn::TransportErrorCode::crypto(ALERT_CERTIFICATE_REQUIRED) =>
        {
            format!(
                "TLS handshake with {address} failed: the server requires a client certificate \
                 (mutual TLS); set transport.mutual_tls: true with cert_file and key_file"
            )
        }
        E::ConnectionClosed(close) if certificate_alert(close.error_code).is_some() => format!(
            "TLS handshake with {address} failed: the server refused our client certificate \
             as not trusted ({close}); the server's ca_file must hold the CA that signed this \
             side's transport.cert_file"
        ),
        E::TransportError(e) if e.code == quinn::TransportErrorCode::crypto(120) => {
            format!(
                "TLS handshake with {address} failed: no common application protocol (ALPN \
                 {:?}): the peer is not a micro quic transport",
                String::from_utf8_lossy(ALPN)
            )
        }
        E::TimedOut => format!("connection to {address} timed out: the peer stopped answering"),
        E::ApplicationClosed(close) if close.error_code == crate::CLOSE_STOPPING => {
            format!("{address} closed the connection: the server stopped")
        }
        E::ConnectionClosed(close)
            if close.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED =>
        {
            format!("{address} refused the connection: the server is stopping")
        }
        E::LocallyClosed => format!(
            "connection to {address} was closed by this side: no QUIC handshake answer within \
             transport.dial_timeout (0-RTT: nobody listening, or UDP blocked), or the \
             transport was dropped"
        ),
        other => format!("connection to {address} failed: {other}"),
    };
    Error::transport(ID, detail)
}
