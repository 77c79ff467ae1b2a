//! micro: a framework and toolkit for building and running microservices in Rust.
//!
//! This facade re-exports the contracts of `micro-core` and, as modules, the plugin crates
//! switched on by Cargo features (`micro::memory`, `micro::local`, `micro::file`, ...).
//! [`plugins()`] lists those plugins as a plain value, and [`Service::builder()`] starts
//! from it:
//!
//! ```no_run
//! # async fn demo() -> micro::Result<()> {
//! let service = micro::Service::builder()
//!     .name("greeter")
//!     .version("1.0.0")
//!     .build()?;
//! service.run().await
//! # }
//! ```

pub use micro_core::*;
pub use micro_derive::{Component, Wire};
pub use micro_derive::{service, subscriber};

/// What generated code uses, at absolute paths (`::micro::__private::...`): micro-core's
/// `__private` and, for `#[derive(Wire)]`, the facade's Cargo features; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use micro_core::__private::*;

    /// Whether a Cargo feature of `micro` is on (for `#[derive(Wire)]`'s compile-time checks).
    pub const fn feature_enabled(feature: &str) -> bool {
        let features: [(&str, bool); 15] = [
            ("memory", cfg!(feature = "memory")),
            ("local", cfg!(feature = "local")),
            ("file", cfg!(feature = "file")),
            ("tcp", cfg!(feature = "tcp")),
            ("http", cfg!(feature = "http")),
            ("mucp", cfg!(feature = "mucp")),
            ("selector", cfg!(feature = "selector")),
            ("nats", cfg!(feature = "nats")),
            ("postgres", cfg!(feature = "postgres")),
            ("redis", cfg!(feature = "redis")),
            ("zap", cfg!(feature = "zap")),
            ("etcd", cfg!(feature = "etcd")),
            ("quic", cfg!(feature = "quic")),
            ("mdns", cfg!(feature = "mdns")),
            ("grpc", cfg!(feature = "grpc")),
        ];
        let mut i = 0;
        while i < features.len() {
            if same(features[i].0, feature) {
                return features[i].1;
            }
            i += 1;
        }
        false
    }

    const fn same(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }
}

#[cfg(feature = "etcd")]
pub use micro_etcd as etcd;
#[cfg(feature = "file")]
pub use micro_file as file;
#[cfg(feature = "grpc")]
pub use micro_grpc as grpc;
#[cfg(feature = "http")]
pub use micro_http as http;
#[cfg(feature = "local")]
pub use micro_local as local;
/// The mDNS registry: crate `micro-mdns`, feature `mdns`.
#[cfg(feature = "mdns")]
pub use micro_mdns as mdns;
#[cfg(feature = "memory")]
pub use micro_memory as memory;
#[cfg(feature = "mucp")]
pub use micro_mucp as mucp;
#[cfg(feature = "nats")]
pub use micro_nats as nats;
#[cfg(feature = "postgres")]
pub use micro_postgres as postgres;
/// The QUIC transport: crate `micro-quic`, feature `quic`.
#[cfg(feature = "quic")]
pub use micro_quic as quic;
#[cfg(feature = "redis")]
pub use micro_redis as redis;
/// The registry-cache selector (`random`, `roundrobin`): crate `micro-selector`, feature
/// `selector`. Named `cache_selector` because `micro::selector` is the selector contract.
#[cfg(feature = "selector")]
pub use micro_selector as cache_selector;
#[cfg(feature = "tcp")]
pub use micro_tcp as tcp;
/// The zap (JSON lines) log format: crate `micro-zap`, feature `zap`.
#[cfg(feature = "zap")]
pub use micro_zap as zap;

/// Every plugin compiled into this build by Cargo features. Add your own with
/// [`Plugins::add`] or [`ServiceBuilder::plugins`].
pub fn plugins() -> Plugins {
    #[allow(unused_mut)]
    let mut plugins = Plugins::new();
    #[cfg(feature = "memory")]
    plugins.extend(micro_memory::plugins());
    #[cfg(feature = "local")]
    plugins.extend(micro_local::plugins());
    #[cfg(feature = "file")]
    plugins.extend(micro_file::plugins());
    #[cfg(feature = "tcp")]
    plugins.extend(micro_tcp::plugins());
    #[cfg(feature = "http")]
    plugins.extend(micro_http::plugins());
    #[cfg(feature = "mucp")]
    plugins.extend(micro_mucp::plugins());
    #[cfg(feature = "selector")]
    plugins.extend(micro_selector::plugins());
    #[cfg(feature = "nats")]
    plugins.extend(micro_nats::plugins());
    #[cfg(feature = "postgres")]
    plugins.extend(micro_postgres::plugins());
    #[cfg(feature = "redis")]
    plugins.extend(micro_redis::plugins());
    #[cfg(feature = "zap")]
    plugins.extend(micro_zap::plugins());
    #[cfg(feature = "etcd")]
    plugins.extend(micro_etcd::plugins());
    #[cfg(feature = "quic")]
    plugins.extend(micro_quic::plugins());
    #[cfg(feature = "mdns")]
    plugins.extend(micro_mdns::plugins());
    #[cfg(feature = "grpc")]
    plugins.extend(micro_grpc::plugins());
    plugins
}

/// The plugin source of the facade: every plugin compiled in.
#[derive(Debug, Clone, Copy, Default)]
pub struct CompiledPlugins;

impl PluginSource for CompiledPlugins {
    fn plugins() -> Plugins {
        plugins()
    }
}

/// A service whose builder starts with every plugin compiled in.
pub type Service = micro_core::Service<CompiledPlugins>;

/// The builder of [`Service`].
pub type ServiceBuilder = micro_core::ServiceBuilder<CompiledPlugins>;
