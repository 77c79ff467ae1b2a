//! micro-quic: the `quic` transport (quinn). Every call or stream is one QUIC
//! bidirectional stream carrying micro's frames (headers + body, the `tcp` frame format);
//! the connection to an address is reused by every call to it. TLS 1.3 (rustls, with the
//! ring crypto provider passed explicitly to every config builder: no process-wide
//! default is installed); certificates from files or a self-signed development one;
//! optional mutual TLS; 0-RTT off by default. See the crate's README.md.

#![warn(missing_docs)]

mod options;
mod server;
mod stream;
mod tls;
mod transport;

pub use options::QuicTransportOptions;
pub use server::QuicListener;
pub use tls::ALPN;
pub use transport::{QuicConnection, QuicTransport};

use micro_core::{Plugin, Plugins};
use std::sync::Arc;

/// The `id` of errors raised by this transport.
pub(crate) const ID: &str = "go.micro.transport";

/// The QUIC application error code of a connection closed because its endpoint stopped.
pub(crate) const CLOSE_STOPPING: quinn::VarInt = quinn::VarInt::from_u32(0);

/// The QUIC application error code of a 0-RTT connection closed by this side because the
/// server never answered its handshake within `dial_timeout`.
pub(crate) const CLOSE_NO_ANSWER: quinn::VarInt = quinn::VarInt::from_u32(1);

/// The plugin-table entry: `transport: {plugin: quic}`.
pub fn plugin() -> Plugin {
    Plugin::transport("quic", "quic", |ctx| {
        let options: QuicTransportOptions = ctx.options()?;
        options.validate()?;
        let transport = QuicTransport::build(options, ctx.logger.clone())?;
        Ok(Arc::new(transport))
    })
    .with_options::<QuicTransportOptions>()
}

/// The plugins of this crate: the `quic` transport.
pub fn plugins() -> Plugins {
    Plugins::new().with(plugin())
}
