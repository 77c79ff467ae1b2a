//! The transport conformance suite against the quic transport: with the self-signed
//! development certificate (the transport trusts its own), with a CA's certificates, with
//! mutual TLS, and on a current-thread runtime; and the RPC suite (mucp over quic).

mod common;

use micro_conformance::rpc::Target;
use micro_conformance::support::unique;
use micro_core::config::{ClientConfig, ServerConfig};
use micro_core::logger::Logger;
use micro_core::middleware::Middleware;
use micro_core::plugin::ServiceInfo;
use micro_core::server::{Handler, Server};
use micro_core::transport::Transport;
use micro_mucp::{ClientParts, MucpClient, MucpServer, ServerParts};
use micro_quic::{QuicTransport, QuicTransportOptions};
use std::sync::Arc;
use std::time::Duration;

fn development() -> QuicTransport {
    common::transport(QuicTransportOptions {
        dial_timeout: Duration::from_secs(3),
        ..Default::default()
    })
}

/// A transport with a certificate from a fresh CA (kept in the returned directory).
fn with_ca(mutual_tls: bool) -> (Arc<dyn Transport>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let pki = common::pki(dir.path(), "conformance");
    let transport = common::transport(common::options(&pki, &pki, mutual_tls));
    (Arc::new(transport) as Arc<dyn Transport>, dir)
}

micro_conformance::transport_suite!(async || Arc::new(development()) as Arc<dyn Transport>);

micro_conformance::transport_suite!(mod with_a_ca, async || with_ca(false));

micro_conformance::transport_suite!(mod with_mutual_tls, async || with_ca(true));

micro_conformance::transport_suite!(
    mod on_a_current_thread_runtime(flavor = "current_thread"),
    async || Arc::new(development()) as Arc<dyn Transport>,
);

/// mucp over quic (127.0.0.1, port 0); the client calls the server's address.
async fn over_quic(handlers: Vec<Handler>) -> Target {
    let transport: Arc<dyn Transport> = Arc::new(development());
    let name = unique("conformance");
    let server = MucpServer::new(
        ServerConfig {
            grace_period: Duration::from_secs(2),
            ..Default::default()
        },
        ServerParts {
            info: ServiceInfo {
                name: name.clone(),
                version: "1.0.0".into(),
                id: unique(&name),
            },
            transport: transport.clone(),
            registry: None,
            broker: None,
            middleware: Middleware::default(),
            logger: Logger::none(),
        },
    );
    for handler in handlers {
        server.handle(handler).unwrap();
    }
    server.start().await.unwrap();
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

micro_conformance::rpc_suite!(mod over_quic, over_quic);
