//! One lazily made Redis connection per component: the component is built synchronously by
//! its factory and connects on first use, through redis' `ConnectionManager`, which
//! reconnects by itself when the server goes away (commands in flight then fail).

use micro_core::{Error, Result};
use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

/// The server used when a section gives no `addresses`.
pub const DEFAULT_ADDRESS: &str = "redis://127.0.0.1:6379";

/// A component's Redis address and, once made, its connection.
pub struct Connector {
    address: String,
    /// What the connection is for (`store`, `broker`, ...): named in errors.
    purpose: String,
    client: std::sync::OnceLock<redis::Client>,
    manager: OnceCell<ConnectionManager>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("address", &self.address)
            .field("purpose", &self.purpose)
            .finish()
    }
}

impl Connector {
    /// A connector to the first of `addresses` (`redis://host:port/db` or `host:port`;
    /// empty = [`DEFAULT_ADDRESS`]), for the component `purpose`.
    pub fn new(addresses: &[String], purpose: &str) -> Self {
        let address = addresses
            .iter()
            .flat_map(|a| a.split(','))
            .map(str::trim)
            .find(|a| !a.is_empty())
            .map(|a| {
                if a.contains("://") {
                    a.to_string()
                } else {
                    format!("redis://{a}")
                }
            })
            .unwrap_or_else(|| DEFAULT_ADDRESS.to_string());
        Connector {
            address,
            purpose: purpose.to_string(),
            client: std::sync::OnceLock::new(),
            manager: OnceCell::new(),
        }
    }

    /// The server address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The client (no connection yet): for dedicated connections such as pub/sub.
    pub fn client(&self) -> Result<redis::Client> {
        if let Some(client) = self.client.get() {
            return Ok(client.clone());
        }
        let client = redis::Client::open(self.address.as_str()).map_err(|e| {
            Error::bad_request(
                "go.micro.redis",
                format!(
                    "{}: '{}' is not a Redis address ({e}); give redis://host:port in {}.addresses",
                    self.purpose, self.address, self.purpose
                ),
            )
        })?;
        Ok(self.client.get_or_init(|| client).clone())
    }

    /// The shared, reconnecting connection, made on first use; a first connect that fails
    /// is an error naming the address (the next call tries again).
    pub async fn connection(&self) -> Result<ConnectionManager> {
        // The common case, once connected: no client clone, no future to poll.
        if let Some(manager) = self.manager.get() {
            return Ok(manager.clone());
        }
        let client = self.client()?;
        self.manager
            .get_or_try_init(|| async {
                // A first connect gives up after one retry, each attempt bounded (redis'
                // default of six retries took about 9 s against a port nobody listens
                // on); once connected, the manager reconnects on its own.
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_number_of_retries(1)
                    .set_connection_timeout(Some(std::time::Duration::from_secs(5)));
                ConnectionManager::new_with_config(client, config)
                    .await
                    .map_err(|e| self.unreachable(&e))
            })
            .await
            .cloned()
    }

    /// The error for a server that cannot be reached.
    pub fn unreachable(&self, e: &redis::RedisError) -> Error {
        Error::unavailable(
            "go.micro.redis",
            format!(
                "{}: cannot reach Redis at {}: {e}; is redis-server running there? set \
                 {}.addresses (MICRO_{}_ADDRESS) to where it is",
                self.purpose,
                self.address,
                self.purpose,
                self.purpose.to_uppercase()
            ),
        )
    }
}
