//! Options of the `quic` transport plugin, in the `transport:` section.

use micro_core::config::ConfigError;
use micro_derive::Component;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Options of the `quic` transport (`transport: {plugin: quic, cert_file: ..., ...}`).
///
/// TLS: a server presents `cert_file`/`key_file`, or (both empty) a self-signed certificate
/// generated at start, for development only. A client verifies the server against `ca_file`
/// (PEM, one or more CA certificates), or the system's roots when `ca_file` is empty; a
/// transport also trusts the development certificate it generated itself (so one process
/// talks to itself with no configuration). `insecure_skip_verify` turns verification off
/// (development only; logged as a warning).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Component)]
#[serde(default)]
#[component(section = "transport", plugin = "quic")]
pub struct QuicTransportOptions {
    /// PEM certificate chain this side presents (server; client too with `mutual_tls`).
    /// Empty, with `key_file` empty too: a self-signed development certificate.
    pub cert_file: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `cert_file`.
    pub key_file: String,
    /// PEM CA certificates trusted for the peer's certificate (servers a client dials; with
    /// `mutual_tls`, clients a server accepts). Empty: the system's roots.
    pub ca_file: String,
    /// Mutual TLS: a server requires a client certificate signed by `ca_file`; a client
    /// presents `cert_file`. Needs `cert_file`, `key_file` and `ca_file`.
    pub mutual_tls: bool,
    /// Name checked against the server's certificate; empty = the host of the dialled
    /// address (an IP address is checked against the certificate's IP entries).
    pub server_name: String,
    /// Development only: accept any server certificate (no verification at all). Off by
    /// default; a warning is logged when on.
    pub insecure_skip_verify: bool,
    /// Send requests in 0-RTT data on resumed connections (replayable by an attacker: only
    /// for idempotent calls). Off by default.
    pub zero_rtt: bool,
    /// Close a connection after this long without any packet from the peer (QUIC's max idle
    /// timeout, also the lifetime of an unused pooled connection). 0 = never.
    #[serde(with = "micro_core::config::duration")]
    #[component(default = Duration::from_secs(30))]
    pub idle_timeout: Duration,
    /// Time limit for the QUIC handshake when dialling (a call's own deadline applies on top).
    #[serde(with = "micro_core::config::duration")]
    #[component(default = Duration::from_secs(5))]
    pub dial_timeout: Duration,
    /// Streams a peer may have open at once on one connection (more wait for a slot).
    #[component(default = 1024)]
    pub max_streams: u32,
    /// Largest frame sent or accepted, in bytes (after the 4-byte length); larger is a 413.
    #[component(default = 4_194_304)]
    pub max_frame_size: usize,
}

impl QuicTransportOptions {
    /// Checks values that make no sense; the error names the key (`transport.KEY`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: &str| {
            Err(ConfigError::Invalid {
                key: format!("transport.{key}"),
                reason: reason.to_string(),
            })
        };
        if self.cert_file.is_empty() != self.key_file.is_empty() {
            let key = if self.cert_file.is_empty() {
                "cert_file"
            } else {
                "key_file"
            };
            return invalid(
                key,
                "cert_file and key_file go together: give both (the PEM certificate chain \
                 and its private key), or neither for a self-signed development certificate",
            );
        }
        if self.mutual_tls && (self.cert_file.is_empty() || self.ca_file.is_empty()) {
            let key = if self.cert_file.is_empty() {
                "cert_file"
            } else {
                "ca_file"
            };
            return invalid(
                key,
                "mutual_tls needs cert_file and key_file (this side's certificate) and \
                 ca_file (the CA that signs the peers' certificates)",
            );
        }
        if self.max_streams == 0 {
            return invalid(
                "max_streams",
                "0 would refuse every stream: give the number of streams a connection may \
                 have open at once (default 1024)",
            );
        }
        if self.max_frame_size < 1024 {
            return invalid(
                "max_frame_size",
                "too small: frames need at least 1024 bytes; leave the key out for 4 MiB",
            );
        }
        Ok(())
    }
}
