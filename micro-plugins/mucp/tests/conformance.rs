//! The RPC client/server conformance suite against the mucp client and server: over the
//! memory transport, found by name through a memory registry and the registry-cache
//! selector; and over the tcp transport, called at the server's address.

use micro_conformance::rpc::Target;
use micro_conformance::support::unique;
use micro_core::config::{ClientConfig, ServerConfig};
use micro_core::logger::Logger;
use micro_core::middleware::Middleware;
use micro_core::plugin::ServiceInfo;
use micro_core::registry::Registry;
use micro_core::selector::Strategy;
use micro_core::server::{Handler, Server};
use micro_core::transport::Transport;
use micro_memory::{MemoryRegistry, MemoryTransport};
use micro_mucp::{ClientParts, MucpClient, MucpServer, ServerParts};
use micro_selector::CacheSelector;
use micro_tcp::TcpTransport;
use std::sync::Arc;
use std::time::Duration;

/// A started mucp server named `name` on `transport`, registered in `registry` if given.
async fn server(
    name: &str,
    transport: &Arc<dyn Transport>,
    registry: Option<Arc<dyn Registry>>,
    handlers: Vec<Handler>,
) -> MucpServer {
    let server = MucpServer::new(
        ServerConfig {
            grace_period: Duration::from_secs(2),
            ..Default::default()
        },
        ServerParts {
            info: ServiceInfo {
                name: name.into(),
                version: "1.0.0".into(),
                id: unique(name),
            },
            transport: transport.clone(),
            registry,
            broker: None,
            middleware: Middleware::default(),
            logger: Logger::none(),
        },
    );
    for handler in handlers {
        server.handle(handler).unwrap();
    }
    server.start().await.unwrap();
    server
}

/// mucp over the memory transport; the client finds the server through the registry.
async fn over_memory(handlers: Vec<Handler>) -> Target {
    let transport: Arc<dyn Transport> = Arc::new(MemoryTransport::new());
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let name = unique("conformance");
    let server = server(&name, &transport, Some(registry.clone()), handlers).await;
    let selector = CacheSelector::new(registry, Strategy::Random, Duration::from_secs(1));
    let client = MucpClient::new(
        ClientConfig::default(),
        ClientParts {
            selector: Some(Arc::new(selector)),
            transport,
            broker: None,
            middleware: Middleware::default(),
            logger: Logger::none(),
        },
    );
    Target::new(Arc::new(client), name).with_guard(server)
}

/// mucp over the tcp transport (127.0.0.1, port 0); the client calls the server's address.
async fn over_tcp(handlers: Vec<Handler>) -> Target {
    let transport: Arc<dyn Transport> = Arc::new(TcpTransport::default());
    let name = unique("conformance");
    let server = server(&name, &transport, None, handlers).await;
    let address = server.address().expect("a started server has an address");
    let client = MucpClient::new(
        ClientConfig::default(),
        ClientParts {
            selector: None,
            transport,
            broker: None,
            middleware: Middleware::default(),
            logger: Logger::none(),
        },
    );
    Target::new(Arc::new(client), name)
        .with_address(address)
        .with_guard(server)
}

micro_conformance::rpc_suite!(mod over_memory, over_memory);

micro_conformance::rpc_suite!(mod over_tcp, over_tcp);
