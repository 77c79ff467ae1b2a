//! One lazily made NATS connection per component: the component is built synchronously by
//! its factory, and connects on first use. After that, async-nats reconnects on its own
//! (forever, with backoff) when the server goes away; subscriptions are restored by it.

use async_nats::Client;
use micro_core::{Error, Result};
use std::time::Duration;
use tokio::sync::OnceCell;

/// The server used when a section gives no `addresses`.
pub const DEFAULT_ADDRESS: &str = "nats://127.0.0.1:4222";

/// How long the first connect waits for a server before it fails.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The addresses of a component's NATS servers and the connection once made.
#[derive(Debug)]
pub struct Connector {
    addresses: Vec<String>,
    /// What the connection is for (`registry`, `broker`, ...): named in errors and given to
    /// the server as the connection's name.
    purpose: String,
    client: OnceCell<Client>,
}

impl Connector {
    /// A connector to `addresses` (`nats://host:port` or `host:port`; empty =
    /// [`DEFAULT_ADDRESS`]), for the component `purpose`.
    pub fn new(addresses: &[String], purpose: &str) -> Self {
        let addresses: Vec<String> = addresses
            .iter()
            .flat_map(|a| a.split(','))
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect();
        Connector {
            addresses: if addresses.is_empty() {
                vec![DEFAULT_ADDRESS.to_string()]
            } else {
                addresses
            },
            purpose: purpose.to_string(),
            client: OnceCell::new(),
        }
    }

    /// A connector using an existing client (tests, or an application sharing one).
    pub fn with_client(client: Client, purpose: &str) -> Self {
        Connector {
            addresses: Vec::new(),
            purpose: purpose.to_string(),
            client: OnceCell::new_with(Some(client)),
        }
    }

    /// The server addresses, comma-separated.
    pub fn address(&self) -> String {
        self.addresses.join(",")
    }

    /// The connection, made on first use. A first connect that fails is an error naming the
    /// addresses (the next call tries again).
    pub async fn client(&self) -> Result<Client> {
        self.client
            .get_or_try_init(|| connect(&self.addresses, &self.purpose))
            .await
            .cloned()
    }

    /// The connection if it was made.
    pub fn connected(&self) -> Option<&Client> {
        self.client.get()
    }
}

/// Connects to `addresses`, failing after [`CONNECT_TIMEOUT`] with an error that names them.
async fn connect(addresses: &[String], purpose: &str) -> Result<Client> {
    let servers: Vec<async_nats::ServerAddr> = addresses
        .iter()
        .map(|a| {
            a.parse().map_err(|e| {
                Error::bad_request(
                    "go.micro.nats",
                    format!(
                        "{purpose}: '{a}' is not a NATS server address ({e}); \
                         give nats://host:port in {purpose}.addresses"
                    ),
                )
            })
        })
        .collect::<Result<_>>()?;
    async_nats::ConnectOptions::new()
        .name(format!("micro {purpose}"))
        .connection_timeout(CONNECT_TIMEOUT)
        .max_reconnects(None)
        .connect(servers)
        .await
        .map_err(|e| {
            Error::unavailable(
                "go.micro.nats",
                format!(
                    "{purpose}: cannot connect to NATS at {}: {e}; is nats-server running \
                     there? set {purpose}.addresses (MICRO_{}_ADDRESS) to where it is",
                    addresses.join(","),
                    purpose.to_uppercase()
                ),
            )
            .with_source(e)
        })
}
