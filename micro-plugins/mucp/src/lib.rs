//! micro-mucp: the default RPC of micro (go-micro's mucp protocol) over any transport: the
//! client (selection, retries, deadlines) and the server (dispatch, registration, draining).
//! The client picks nodes with whatever `Selector` the service has; micro's own, the
//! registry-cache selector, is the `micro-selector` crate.

pub mod client;
pub mod debug;
mod drain;
pub mod server;
pub mod wire;

pub use client::{ClientParts, MucpClient};
pub use server::{MucpServer, ServerParts};

use micro_core::config::{ClientConfig, ServerConfig};
use micro_core::{Error, Plugin, PluginContext, Plugins};
use std::sync::Arc;

fn need<T: ?Sized>(
    what: Option<Arc<T>>,
    section: &str,
    component: &str,
) -> micro_core::Result<Arc<T>> {
    what.ok_or_else(|| {
        Error::bad_request(
            "go.micro.mucp",
            format!(
                "the mucp {section} needs a {component}: enable {component}, or disable {section}"
            ),
        )
    })
}

fn server(ctx: &PluginContext<'_>) -> micro_core::Result<Arc<dyn micro_core::server::Server>> {
    let config: ServerConfig = ctx.options()?;
    config.check()?;
    let parts = ServerParts {
        info: ctx.service.clone(),
        transport: need(ctx.components.transport.clone(), "server", "transport")?,
        registry: ctx.components.registry.clone(),
        broker: ctx.components.broker.clone(),
        middleware: ctx.middleware.clone(),
        logger: ctx.logger.clone(),
    };
    Ok(Arc::new(MucpServer::new(config, parts)))
}

fn client(ctx: &PluginContext<'_>) -> micro_core::Result<Arc<dyn micro_core::client::Client>> {
    let config: ClientConfig = ctx.options()?;
    let parts = ClientParts {
        selector: ctx.components.selector.clone(),
        transport: need(ctx.components.transport.clone(), "client", "transport")?,
        broker: ctx.components.broker.clone(),
        middleware: ctx.middleware.clone(),
        logger: ctx.logger.clone(),
    };
    Ok(Arc::new(MucpClient::new(config, parts)))
}

/// The mucp client and server (also named `rpc`).
pub fn plugins() -> Plugins {
    Plugins::new()
        .with(Plugin::server("mucp", "mucp", server).alias("rpc"))
        .with(Plugin::client("mucp", "mucp", client).alias("rpc"))
}
