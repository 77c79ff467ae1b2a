//! micro-grpc: micro services over gRPC (tonic). The server mounts `#[micro::service]`
//! handlers at `/{package}.{Trait}/{Method}` so standard gRPC clients call them (protobuf for
//! services built from a `.proto`, `application/grpc+json` for serde services), serves the
//! standard health service (and server reflection when given descriptors), and registers
//! like mucp (node metadata `server=grpc`, `protocol=grpc`, `transport=grpc`); the client
//! balances over registry nodes with the service's selector. See the README for the path
//! rule, the status table and the metadata and deadline mapping.

pub mod client;
mod router;
pub mod server;
pub mod status;
pub mod wire;

pub use client::{ClientParts, GrpcClient};
pub use server::{GrpcServer, ServerParts};

use micro_core::config::{ClientConfig, ServerConfig};
use micro_core::{Plugin, PluginContext, Plugins};
use std::sync::Arc;

fn server(ctx: &PluginContext<'_>) -> micro_core::Result<Arc<dyn micro_core::server::Server>> {
    let config: ServerConfig = ctx.options()?;
    config.check()?;
    let parts = ServerParts {
        info: ctx.service.clone(),
        registry: ctx.components.registry.clone(),
        broker: ctx.components.broker.clone(),
        middleware: ctx.middleware.clone(),
        logger: ctx.logger.clone(),
    };
    Ok(Arc::new(GrpcServer::new(config, parts)))
}

fn client(ctx: &PluginContext<'_>) -> micro_core::Result<Arc<dyn micro_core::client::Client>> {
    let config: ClientConfig = ctx.options()?;
    let parts = ClientParts {
        selector: ctx.components.selector.clone(),
        broker: ctx.components.broker.clone(),
        middleware: ctx.middleware.clone(),
        logger: ctx.logger.clone(),
    };
    Ok(Arc::new(GrpcClient::new(config, parts)))
}

/// The grpc client and server.
pub fn plugins() -> Plugins {
    Plugins::new()
        .with(Plugin::server("grpc", "grpc", server))
        .with(Plugin::client("grpc", "grpc", client))
}
