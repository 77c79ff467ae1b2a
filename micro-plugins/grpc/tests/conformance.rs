//! The RPC client/server conformance suite against the grpc client and server: found by
//! name through a memory registry and the registry-cache selector, and called at the
//! server's address.

use micro_conformance::rpc::Target;
use micro_conformance::support::unique;
use micro_core::config::{ClientConfig, ServerConfig};
use micro_core::logger::Logger;
use micro_core::middleware::Middleware;
use micro_core::plugin::ServiceInfo;
use micro_core::registry::Registry;
use micro_core::selector::Strategy;
use micro_core::server::{Handler, Server};
use micro_grpc::{ClientParts, GrpcClient, GrpcServer, ServerParts};
use micro_memory::MemoryRegistry;
use micro_selector::CacheSelector;
use std::sync::Arc;
use std::time::Duration;

/// A started grpc server named `name` on 127.0.0.1, registered in `registry` if given.
async fn server(
    name: &str,
    registry: Option<Arc<dyn Registry>>,
    handlers: Vec<Handler>,
) -> GrpcServer {
    let server = GrpcServer::new(
        ServerConfig {
            address: "127.0.0.1:0".into(),
            grace_period: Duration::from_secs(2),
            ..Default::default()
        },
        ServerParts {
            info: ServiceInfo {
                name: name.into(),
                version: "1.0.0".into(),
                id: unique(name),
            },
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

fn client(selector: Option<Arc<dyn micro_core::selector::Selector>>) -> GrpcClient {
    GrpcClient::new(
        ClientConfig::default(),
        ClientParts {
            selector,
            broker: None,
            middleware: Middleware::default(),
            logger: Logger::none(),
        },
    )
}

/// The client finds the server through the registry.
async fn through_registry(handlers: Vec<Handler>) -> Target {
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let name = unique("conformance");
    let server = server(&name, Some(registry.clone()), handlers).await;
    let selector = CacheSelector::new(registry, Strategy::Random, Duration::from_secs(1));
    Target::new(Arc::new(client(Some(Arc::new(selector)))), name).with_guard(server)
}

/// The client calls the server's address.
async fn at_address(handlers: Vec<Handler>) -> Target {
    let name = unique("conformance");
    let server = server(&name, None, handlers).await;
    let address = server.address().expect("a started server has an address");
    Target::new(Arc::new(client(None)), name)
        .with_address(address)
        .with_guard(server)
}

micro_conformance::rpc_suite!(mod through_registry, through_registry);

micro_conformance::rpc_suite!(mod at_address, at_address);
