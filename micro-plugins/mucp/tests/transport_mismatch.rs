//! A client on one transport and a service on another: the selector skips nodes that speak
//! another transport and says so, and the tcp transport names an HTTP peer.

use micro_core::client::{self, CallOptions};
use micro_core::config::{ClientConfig, ServerConfig};
use micro_core::logger::Logger;
use micro_core::middleware::Middleware;
use micro_core::plugin::ServiceInfo;
use micro_core::registry::Registry;
use micro_core::selector::Strategy;
use micro_core::server::{Handler, Server};
use micro_core::transport::Transport;
use micro_core::{Context, Error};
use micro_http::HttpTransport;
use micro_memory::MemoryRegistry;
use micro_mucp::{ClientParts, MucpClient, MucpServer, ServerParts};
use micro_selector::CacheSelector;
use micro_tcp::TcpTransport;
use std::sync::Arc;
use std::time::Duration;

async fn http_service(registry: Arc<dyn Registry>) -> MucpServer {
    let server = MucpServer::new(
        ServerConfig::default(),
        ServerParts {
            info: ServiceInfo {
                name: "greeter".into(),
                version: "1.0.0".into(),
                id: "greeter-http".into(),
            },
            transport: Arc::new(HttpTransport::default()),
            registry: Some(registry),
            broker: None,
            middleware: Middleware::default(),
            logger: Logger::none(),
        },
    );
    let hello = Handler::unary("Greeter.Hello", |_ctx: Context, name: String| async move {
        Ok(format!("Hello {name}"))
    });
    server.handle(hello).unwrap();
    server.start().await.unwrap();
    server
}

fn tcp_client(registry: Arc<dyn Registry>) -> MucpClient {
    let selector = CacheSelector::new(registry, Strategy::Random, Duration::from_secs(1));
    MucpClient::new(
        ClientConfig::default(),
        ClientParts {
            selector: Some(Arc::new(selector)),
            transport: Arc::new(TcpTransport::default()) as Arc<dyn Transport>,
            broker: None,
            middleware: Middleware::default(),
            logger: Logger::none(),
        },
    )
}

async fn hello(client: &MucpClient, options: CallOptions) -> Result<String, Error> {
    client::call::<String, String>(
        client,
        &Context::new(),
        "greeter",
        "Greeter.Hello",
        &"John".to_string(),
        options,
    )
    .await
}

#[tokio::test]
async fn a_tcp_client_skips_http_nodes_and_says_why() {
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::default());
    let server = http_service(registry.clone()).await;
    let client = tcp_client(registry);
    let err = hello(&client, CallOptions::default()).await.unwrap_err();
    assert_eq!(err.code, 503, "{err}");
    assert!(
        err.detail.contains("no node speaks transport tcp") && err.detail.contains("http"),
        "{err}"
    );
    assert!(!err.detail.contains("exceeds the limit"), "{err}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_tcp_transport_names_an_http_peer() {
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::default());
    let server = http_service(registry.clone()).await;
    let client = tcp_client(registry);
    let mut options = CallOptions::default().retries(0);
    options.address = server.address();
    let err = hello(&client, options).await.unwrap_err();
    assert!(err.detail.contains("the peer speaks HTTP"), "{err}");
    assert!(err.detail.contains("transport http"), "{err}");
    server.stop().await.unwrap();
}
