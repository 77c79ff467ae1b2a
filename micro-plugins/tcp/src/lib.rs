//! micro-tcp: the `tcp` transport. Frames (headers + body) travel length-prefixed over TCP,
//! many bidirectional streams multiplexed over one connection by stream id; dialled
//! connections are pooled per address.
//!
//! - Wire format: [`frame`], described byte by byte in `docs/protocol-tcp.md`.
//! - Per connection, a reader task owns the stream table and routes decoded frames; a
//!   writer task merges every stream's outgoing frames and writes them in batches. See the
//!   crate's README.md for the design.
//! - Options: [`TcpTransportOptions`] in `transport:`; pool size and TTL from `client:`.

#![warn(missing_docs)]

pub use micro_core::transport::frame;

mod client;
mod conn;
mod limits;
mod options;
mod pool;
mod reader;
mod server;
mod timers;
mod transport;
mod writer;

pub use client::TcpConnection;
pub use options::TcpTransportOptions;
pub use server::{ACCEPT_BACKLOG, TcpListener};
pub use transport::{DEFAULT_POOL_SIZE, DEFAULT_POOL_TTL, TcpTransport};

use micro_core::config::ClientConfig;
use micro_core::{Plugin, Plugins};
use std::sync::Arc;

/// The `id` of errors raised by this transport.
pub(crate) const ID: &str = "go.micro.transport";

/// The plugin-table entry: `transport: {plugin: tcp}`.
pub fn plugin() -> Plugin {
    Plugin::transport("tcp", "tcp", |ctx| {
        let options: TcpTransportOptions = ctx.options()?;
        options.validate()?;
        let client: ClientConfig = ctx.options()?;
        let transport = TcpTransport::new(options)
            .with_pool(client.pool_size, client.pool_ttl)
            .with_logger(ctx.logger.clone());
        Ok(Arc::new(transport))
    })
    .with_options::<TcpTransportOptions>()
}

/// The plugins of this crate: the `tcp` transport.
pub fn plugins() -> Plugins {
    Plugins::new().with(plugin())
}
