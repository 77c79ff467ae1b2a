//! micro-http: the go-micro compatible HTTP transport and HTTP broker.
//!
//! One port serves HTTP/1.1 (keep-alive) and h2c (HTTP/2 with prior knowledge, no TLS).
//! A plain `POST /` is one request frame and one response frame, so
//! `curl -H 'Micro-Endpoint: Greeter.Hello' -d '{"name":"John"}' http://host:port/` calls a
//! service; a POST with a `Micro-Stream` header carries binary frames both ways (full duplex
//! over h2c). The client multiplexes every stream of an address over one h2c connection and
//! sends unary calls as plain POSTs over pooled HTTP/1.1 keep-alive connections.
//! The wire protocol is specified in `docs/protocol-http.md`.
//!
//! [`HttpBroker`] is go-micro's `http` broker: each subscriber is registered in the registry
//! and publishers POST messages straight to it (see [`broker`]).

mod body;
pub mod broker;
mod client;
mod conn;
pub mod frame;
mod headers;
mod listen;
mod plain;
mod server;
mod transport;
mod watch;

pub use broker::{HttpBroker, HttpBrokerOptions};
pub use client::HttpConnection;
pub use headers::FRAMES_CONTENT_TYPE;
pub use server::{ACCEPT_BACKLOG, HttpListener};
pub use transport::{HttpTransport, HttpTransportOptions, plugin};

use micro_core::Plugins;

/// Error id of errors raised by this transport.
pub(crate) const ID: &str = "go.micro.transport";

/// The plugins of this crate: the `http` transport and the `http` broker.
pub fn plugins() -> Plugins {
    Plugins::new().with(plugin()).with(broker::plugin())
}

/// The smallest body limit accepted from configuration: a frame's headers alone need that.
pub const MIN_BODY_SIZE: usize = 1024;

/// Refuses a `max_body_size` (at config `key`) too small for any message, 0 included.
pub(crate) fn check_body_size(key: &str, size: usize) -> micro_core::Result<()> {
    if size >= MIN_BODY_SIZE {
        return Ok(());
    }
    Err(micro_core::config::ConfigError::Invalid {
        key: key.to_string(),
        reason: format!(
            "{size} is too small: a message needs at least {MIN_BODY_SIZE} bytes (the default is \
             4194304)"
        ),
    }
    .into())
}

/// An I/O error as a micro error with the code `micro_core` gives its kind (refused → 503).
pub(crate) fn io_error(err: std::io::Error, what: &str) -> micro_core::Error {
    let detail = format!("{what}: {err}");
    micro_core::Error::new(ID, micro_core::Error::from(err).code, detail)
}
