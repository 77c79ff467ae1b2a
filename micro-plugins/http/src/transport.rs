//! [`HttpTransport`]: the [`Transport`] value, its options and its plugin-table entry.

use crate::client::HttpConnection;
use crate::conn::ClientConn;
use crate::server;
use micro_core::logger::Logger;
use micro_core::transport::{Connection, DialOptions, Listener, Transport};
use micro_core::{Plugin, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Options of the `http` transport plugin, in the `transport:` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, micro_derive::Component)]
#[serde(default)]
#[component(section = "transport", plugin = "http")]
pub struct HttpTransportOptions {
    /// Largest body of a plain HTTP request or response, and largest frame of a stream, in bytes.
    #[component(default = 4 * 1024 * 1024)]
    pub max_body_size: usize,
    /// Give up connecting to a peer after this long (when the caller sets no dial timeout).
    #[serde(with = "micro_core::config::duration")]
    #[component(default = Duration::from_secs(5))]
    pub dial_timeout: Duration,
    /// Send a client stream whose first frame has no Micro-Stream header as one plain HTTP POST (to call go-micro services); such a stream carries one request and one response frame.
    pub plain_unary: bool,
    /// Server: a request head (HTTP/1.1), a request body, or a stream frame, once begun, must
    /// be complete within this time, or the connection is closed (a body: 408 and close over
    /// HTTP/1.1; over HTTP/2 the stream fails with 408). 0 = never.
    #[serde(with = "micro_core::config::duration")]
    #[component(default = Duration::from_secs(30))]
    pub read_timeout: Duration,
    /// Server: close a connection after this long with no request in flight and no bytes
    /// received. 0 = never.
    #[serde(with = "micro_core::config::duration")]
    #[component(default = Duration::from_secs(300))]
    pub idle_timeout: Duration,
}

/// The HTTP transport. Cheap to clone; clones share the per-address connection cache.
#[derive(Clone)]
pub struct HttpTransport {
    options: HttpTransportOptions,
    logger: Logger,
    connections: Arc<Mutex<HashMap<String, Arc<ClientConn>>>>,
    /// Unary calls: pooled HTTP/1.1 connections.
    plain: crate::plain::PlainClient,
}

impl Default for HttpTransport {
    fn default() -> Self {
        Self::new(HttpTransportOptions::default())
    }
}

impl fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut addresses: Vec<String> = self.cache().keys().cloned().collect();
        addresses.sort();
        f.debug_struct("HttpTransport")
            .field("options", &self.options)
            .field("connections", &addresses)
            .finish()
    }
}

impl HttpTransport {
    /// A transport with the given options and no logging.
    pub fn new(options: HttpTransportOptions) -> Self {
        HttpTransport {
            plain: crate::plain::client(options.dial_timeout),
            options,
            logger: Logger::none(),
            connections: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The same transport logging through `logger`.
    pub fn with_logger(mut self, logger: Logger) -> Self {
        self.logger = logger;
        self
    }

    /// The options in use.
    pub fn options(&self) -> &HttpTransportOptions {
        &self.options
    }

    fn cache(&self) -> MutexGuard<'_, HashMap<String, Arc<ClientConn>>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl Transport for HttpTransport {
    fn name(&self) -> &str {
        "http"
    }

    async fn dial(&self, address: &str, options: DialOptions) -> Result<Box<dyn Connection>> {
        let cached = self
            .cache()
            .get(address)
            .filter(|c| !c.is_closed())
            .cloned();
        if let Some(conn) = cached {
            return Ok(Box::new(HttpConnection::new(conn, self.plain.clone())));
        }
        let timeout = options.timeout.unwrap_or(self.options.dial_timeout);
        let conn = ClientConn::connect(
            address,
            timeout,
            self.options.max_body_size,
            self.options.plain_unary,
            self.logger.clone(),
        )
        .await?;
        let mut cache = self.cache();
        // Keep the cache small: forget every connection that can no longer open streams.
        cache.retain(|_, c| !c.is_closed());
        cache.insert(address.to_string(), conn.clone());
        Ok(Box::new(HttpConnection::new(conn, self.plain.clone())))
    }

    async fn listen(&self, address: &str) -> Result<Box<dyn Listener>> {
        let timeouts = crate::watch::Timeouts::of(&self.options);
        let listener = server::listen(
            address,
            self.options.max_body_size,
            timeouts,
            self.logger.clone(),
        )
        .await?;
        Ok(Box::new(listener))
    }
}

/// The plugin-table entry: `transport: {plugin: http}` with [`HttpTransportOptions`].
pub fn plugin() -> Plugin {
    Plugin::transport("http", "http", |ctx| {
        let options: HttpTransportOptions = ctx.options()?;
        crate::check_body_size("transport.max_body_size", options.max_body_size)?;
        Ok(Arc::new(
            HttpTransport::new(options).with_logger(ctx.logger.clone()),
        ))
    })
    .with_options::<HttpTransportOptions>()
}
