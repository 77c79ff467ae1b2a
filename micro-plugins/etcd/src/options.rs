//! The options of the etcd plugins, each read from its component's section with flags and
//! env like every other component option (`--registry_timeout`, `MICRO_SYNC_USERNAME`, ...).
//! The endpoints come from the section's own `addresses` (`--registry_address`,
//! `MICRO_REGISTRY_ADDRESS`).

use crate::connection::Settings;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Options of the `etcd` registry, read from the `registry:` section (flags
/// `--registry_timeout`, `--registry_username`, `--registry_password`,
/// `--registry_tls_ca_file`, `--registry_tls_cert_file`, `--registry_tls_key_file`,
/// `--registry_prefix`; env `MICRO_REGISTRY_TIMEOUT`, ...).
#[derive(Clone, PartialEq, Serialize, Deserialize, micro_derive::Component)]
#[serde(default)]
#[component(section = "registry", plugin = "etcd")]
pub struct EtcdRegistryOptions {
    /// Time limit of connecting to etcd and of one request.
    #[serde(with = "micro_core::config::duration")]
    #[component(default = Duration::from_secs(5))]
    pub timeout: Duration,
    /// User name for etcd's authentication; empty = none.
    pub username: String,
    /// Password of the user.
    pub password: String,
    /// PEM file of the CA that signed etcd's certificate; empty = the system's roots. Any
    /// tls_* file (or an https:// address) turns TLS on.
    pub tls_ca_file: String,
    /// PEM file of this client's certificate (for etcd's --client-cert-auth).
    pub tls_cert_file: String,
    /// PEM file of the key of the client certificate.
    pub tls_key_file: String,
    /// Key prefix of the registry's records (go-micro's: /micro/registry/).
    #[component(default = "/micro/registry/")]
    pub prefix: String,
}

/// Options of the `etcd` sync, read from the `sync:` section (flags `--sync_timeout`,
/// `--sync_username`, `--sync_password`, `--sync_tls_ca_file`, `--sync_tls_cert_file`,
/// `--sync_tls_key_file`, `--sync_prefix`; env `MICRO_SYNC_TIMEOUT`, ...).
#[derive(Clone, PartialEq, Serialize, Deserialize, micro_derive::Component)]
#[serde(default)]
#[component(section = "sync", plugin = "etcd")]
pub struct EtcdSyncOptions {
    /// Time limit of connecting to etcd and of one request (a lock or a campaign waits as
    /// long as its own options say).
    #[serde(with = "micro_core::config::duration")]
    #[component(default = Duration::from_secs(5))]
    pub timeout: Duration,
    /// User name for etcd's authentication; empty = none.
    pub username: String,
    /// Password of the user.
    pub password: String,
    /// PEM file of the CA that signed etcd's certificate; empty = the system's roots. Any
    /// tls_* file (or an https:// address) turns TLS on.
    pub tls_ca_file: String,
    /// PEM file of this client's certificate (for etcd's --client-cert-auth).
    pub tls_cert_file: String,
    /// PEM file of the key of the client certificate.
    pub tls_key_file: String,
    /// Key prefix of the locks and elections.
    #[component(default = "/micro/sync/")]
    pub prefix: String,
}

macro_rules! redacted_debug {
    ($name:ident) => {
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("timeout", &self.timeout)
                    .field("username", &self.username)
                    .field(
                        "password",
                        &if self.password.is_empty() { "" } else { "***" },
                    )
                    .field("tls_ca_file", &self.tls_ca_file)
                    .field("tls_cert_file", &self.tls_cert_file)
                    .field("tls_key_file", &self.tls_key_file)
                    .field("prefix", &self.prefix)
                    .finish()
            }
        }

        impl $name {
            /// The connection settings for `addresses`.
            pub fn settings(&self, addresses: &[String]) -> Settings {
                Settings {
                    addresses: addresses.to_vec(),
                    timeout: self.timeout,
                    username: self.username.clone(),
                    password: self.password.clone(),
                    tls_ca_file: self.tls_ca_file.clone(),
                    tls_cert_file: self.tls_cert_file.clone(),
                    tls_key_file: self.tls_key_file.clone(),
                }
            }
        }
    };
}

redacted_debug!(EtcdRegistryOptions);
redacted_debug!(EtcdSyncOptions);
