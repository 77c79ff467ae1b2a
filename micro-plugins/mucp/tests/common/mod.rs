//! What the mucp tests share: a started `greeter` server and a client, over one transport.
#![allow(dead_code)] // each test file uses some of it

use micro_core::config::{ClientConfig, ServerConfig};
use micro_core::logger::Logger;
use micro_core::middleware::Middleware;
use micro_core::plugin::ServiceInfo;
use micro_core::server::{Handler, Server};
use micro_core::transport::Transport;
use micro_mucp::{ClientParts, MucpClient, MucpServer, ServerParts};
use std::sync::Arc;

/// The parts of server `greeter` 1.0.0 (node `greeter-1`) on `transport`, without a
/// registry or broker.
pub fn server_parts(transport: &Arc<dyn Transport>) -> ServerParts {
    ServerParts {
        info: ServiceInfo {
            name: "greeter".into(),
            version: "1.0.0".into(),
            id: "greeter-1".into(),
        },
        transport: transport.clone(),
        registry: None,
        broker: None,
        middleware: Middleware::default(),
        logger: Logger::none(),
    }
}

/// Starts `greeter` on `transport` with `config` and `handlers`.
pub async fn server(
    transport: &Arc<dyn Transport>,
    config: ServerConfig,
    handlers: impl IntoIterator<Item = Handler>,
) -> MucpServer {
    let server = MucpServer::new(config, server_parts(transport));
    for handler in handlers {
        server.handle(handler).unwrap();
    }
    server.start().await.unwrap();
    server
}

/// A client on `transport` without a selector: calls name the address.
pub fn client(transport: &Arc<dyn Transport>) -> MucpClient {
    MucpClient::new(
        ClientConfig::default(),
        ClientParts {
            selector: None,
            transport: transport.clone(),
            broker: None,
            middleware: Middleware::default(),
            logger: Logger::none(),
        },
    )
}
