//! [`TcpTransport`]: the `Transport` implementation tying the pool and the listener together.

use crate::client::TcpConnection;
use crate::conn::Settings;
use crate::limits::Limits;
use crate::options::TcpTransportOptions;
use crate::pool::Pool;
use crate::server;
use micro_core::Result;
use micro_core::logger::Logger;
use micro_core::transport::{Connection, DialOptions, Listener, Transport};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Pool size used when none is configured (`client.pool_size`).
pub const DEFAULT_POOL_SIZE: usize = 1;
/// Idle time after which a pooled connection closes, when none is configured
/// (`client.pool_ttl`).
pub const DEFAULT_POOL_TTL: Duration = Duration::from_secs(60);

/// The TCP transport: length-prefixed frames, many streams multiplexed over each connection,
/// connections pooled per address. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct TcpTransport {
    options: TcpTransportOptions,
    settings: Settings,
    pool: Arc<Pool>,
}

impl fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpTransport")
            .field("options", &self.options)
            .finish()
    }
}

impl Default for TcpTransport {
    fn default() -> Self {
        Self::new(TcpTransportOptions::default())
    }
}

impl TcpTransport {
    /// A transport with these options, the default pool (1 connection per address, closed
    /// after 1 minute without streams) and no logging. `max_streams` or `max_unary` of 0
    /// (which configuration rejects, see [`TcpTransportOptions::validate`]) count as 1.
    pub fn new(options: TcpTransportOptions) -> Self {
        TcpTransport {
            settings: Settings {
                max_frame_size: options.max_frame_size,
                limits: Limits::new(&options),
                logger: Logger::none(),
                warnings: Arc::default(),
            },
            options,
            pool: Arc::new(Pool::new(DEFAULT_POOL_SIZE, DEFAULT_POOL_TTL)),
        }
    }

    /// The same transport with a new, empty pool of `size` connections per address (0 = no
    /// pooling), closed after `ttl` without open streams (0 = never).
    pub fn with_pool(mut self, size: usize, ttl: Duration) -> Self {
        self.pool = Arc::new(Pool::new(size, ttl));
        self
    }

    /// The same transport logging connection problems to `logger`.
    pub fn with_logger(mut self, logger: Logger) -> Self {
        self.settings.logger = logger;
        self
    }

    /// The options it was made with.
    pub fn options(&self) -> &TcpTransportOptions {
        &self.options
    }

    /// Like [`Transport::dial`], with the concrete connection type.
    pub async fn connect(&self, address: &str, options: DialOptions) -> Result<TcpConnection> {
        let limit = options.timeout.map_or(self.options.dial_timeout, |t| {
            t.min(self.options.dial_timeout)
        });
        let shared = self.pool.get(address, limit, &self.settings).await?;
        Ok(TcpConnection::new(shared))
    }

    /// Like [`Transport::listen`], with the concrete listener type.
    pub async fn bind(&self, address: &str) -> Result<server::TcpListener> {
        server::listen(address, &self.settings).await
    }
}

#[async_trait::async_trait]
impl Transport for TcpTransport {
    fn name(&self) -> &str {
        "tcp"
    }

    async fn dial(&self, address: &str, options: DialOptions) -> Result<Box<dyn Connection>> {
        Ok(Box::new(self.connect(address, options).await?))
    }

    async fn listen(&self, address: &str) -> Result<Box<dyn Listener>> {
        Ok(Box::new(self.bind(address).await?))
    }
}
