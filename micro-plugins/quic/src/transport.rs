//! [`QuicTransport`]: dialling (one client endpoint per address family, one connection per
//! address reused across calls) and listening.

use crate::options::QuicTransportOptions;
use crate::server::QuicListener;
use crate::tls::{self, Tls};
use crate::{ID, stream};
use micro_core::logger::Logger;
use micro_core::transport::{Connection, DialOptions, Listener, Message, Stream, Transport};
use micro_core::{Error, Result};
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Addresses kept in the connection table before closed connections are swept.
const SWEEP_AT: usize = 64;

/// The QUIC transport: TLS 1.3 over UDP; each call or stream is one QUIC bidirectional
/// stream, and the connection to an address is kept and reused by later dials until it
/// closes (idle timeout, peer gone). Cheap to clone; clones share endpoints and connections.
#[derive(Clone)]
pub struct QuicTransport {
    inner: Arc<Inner>,
}

struct Inner {
    options: QuicTransportOptions,
    tls: Tls,
    client: quinn::ClientConfig,
    logger: Logger,
    /// Client endpoints: IPv4, IPv6 (bound on first use).
    endpoints: Mutex<[Option<quinn::Endpoint>; 2]>,
    /// The connection of each dialled address.
    connections: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<quinn::Connection>>>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let endpoints = self.endpoints.get_mut().unwrap_or_else(|e| e.into_inner());
        for endpoint in endpoints.iter().flatten() {
            endpoint.close(crate::CLOSE_STOPPING, b"transport dropped");
        }
    }
}

impl fmt::Debug for QuicTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuicTransport")
            .field("options", &self.inner.options)
            .finish()
    }
}

/// QUIC transport parameters from the options.
pub(crate) fn transport_config(options: &QuicTransportOptions) -> Result<quinn::TransportConfig> {
    let mut config = quinn::TransportConfig::default();
    config.max_concurrent_bidi_streams(quinn::VarInt::from_u32(options.max_streams));
    config.max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
    let idle =
        if options.idle_timeout.is_zero() {
            None
        } else {
            Some(quinn::IdleTimeout::try_from(options.idle_timeout).map_err(|_| {
            Error::bad_request(
                ID,
                format!(
                    "transport.idle_timeout: {:?} is too long for QUIC; give at most 2^62 ms",
                    options.idle_timeout
                ),
            )
        })?)
        };
    config.max_idle_timeout(idle);
    Ok(config)
}

impl QuicTransport {
    /// A transport with these options and no logging: reads the certificate files (or
    /// generates the development certificate) now, so a bad file fails here with its key
    /// and path named.
    pub fn new(options: QuicTransportOptions) -> Result<Self> {
        Self::build(options, Logger::none())
    }

    /// Like [`QuicTransport::new`], logging to `logger` (warnings about development TLS
    /// settings; `insecure_skip_verify` is warned about here).
    pub fn build(options: QuicTransportOptions, logger: Logger) -> Result<Self> {
        options
            .validate()
            .map_err(|e| Error::bad_request(ID, e.to_string()))?;
        let tls = Tls::load(&options)?;
        let crypto =
            quinn::crypto::rustls::QuicClientConfig::try_from(tls.client()?).map_err(|e| {
                Error::internal(ID, format!("TLS client config unusable for QUIC: {e}"))
            })?;
        let mut client = quinn::ClientConfig::new(Arc::new(crypto));
        client.transport_config(Arc::new(transport_config(&options)?));
        if options.insecure_skip_verify {
            logger.in_scope(|| {
                tracing::warn!(
                    "quic transport: insecure_skip_verify is on: servers' certificates are NOT \
                     verified, anyone on the path can pose as a server; for development only \
                     (set transport.ca_file to the CA of the servers and turn it off)"
                )
            });
        }
        Ok(QuicTransport {
            inner: Arc::new(Inner {
                options,
                tls,
                client,
                logger,
                endpoints: Mutex::new([None, None]),
                connections: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The options it was made with.
    pub fn options(&self) -> &QuicTransportOptions {
        &self.inner.options
    }

    fn connections(
        &self,
    ) -> MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<Option<quinn::Connection>>>>> {
        self.inner
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The client endpoint for the family of `peer`, bound to the unspecified address with a
    /// free port on first use.
    fn endpoint(&self, peer: SocketAddr) -> Result<quinn::Endpoint> {
        let mut endpoints = self
            .inner
            .endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let (slot, local): (usize, SocketAddr) = if peer.is_ipv4() {
            (0, (std::net::Ipv4Addr::UNSPECIFIED, 0).into())
        } else {
            (1, (std::net::Ipv6Addr::UNSPECIFIED, 0).into())
        };
        if let Some(endpoint) = &endpoints[slot] {
            return Ok(endpoint.clone());
        }
        let endpoint = quinn::Endpoint::client(local).map_err(|e| {
            Error::transport(
                ID,
                format!("cannot open a UDP socket on {local} to dial: {e}"),
            )
        })?;
        endpoints[slot] = Some(endpoint.clone());
        Ok(endpoint)
    }

    /// Like [`Transport::dial`], with the concrete connection type: the live connection to
    /// `address` if there is one, else a new one (one handshake at a time per address).
    pub async fn connect(&self, address: &str, options: DialOptions) -> Result<QuicConnection> {
        let limit = options
            .timeout
            .map_or(self.inner.options.dial_timeout, |t| {
                t.min(self.inner.options.dial_timeout)
            });
        let slot = {
            let mut table = self.connections();
            if table.len() > SWEEP_AT {
                table.retain(|_, slot| {
                    Arc::strong_count(slot) > 1
                        || slot
                            .try_lock()
                            .map(|c| c.as_ref().is_some_and(|c| c.close_reason().is_none()))
                            .unwrap_or(true)
                });
            }
            table.entry(address.to_string()).or_default().clone()
        };
        let mut slot = slot.lock().await;
        if let Some(connection) = slot.as_ref().filter(|c| c.close_reason().is_none()) {
            return Ok(QuicConnection::new(
                connection.clone(),
                address,
                &self.inner.options,
            ));
        }
        let connection = self.handshake(address, limit).await?;
        *slot = Some(connection.clone());
        Ok(QuicConnection::new(
            connection,
            address,
            &self.inner.options,
        ))
    }

    /// A new connection to `address`, within `limit`.
    async fn handshake(&self, address: &str, limit: Duration) -> Result<quinn::Connection> {
        let peer = resolve(address).await?;
        let server_name = if self.inner.options.server_name.is_empty() {
            host(address).to_string()
        } else {
            self.inner.options.server_name.clone()
        };
        let endpoint = self.endpoint(peer)?;
        let connecting = endpoint
            .connect_with(self.inner.client.clone(), peer, &server_name)
            .map_err(|e| {
                Error::transport(
                    ID,
                    format!("cannot connect to {address} (server name {server_name:?}): {e}"),
                )
            })?;
        let connecting = if self.inner.options.zero_rtt {
            match connecting.into_0rtt() {
                Ok((connection, accepted)) => {
                    // The connection is usable at once (0-RTT), before the server answered:
                    // if no handshake answer comes within the limit, close it, so that its
                    // streams fail instead of waiting for the idle timeout.
                    let watched = connection.clone();
                    tokio::spawn(async move {
                        if tokio::time::timeout(limit, accepted).await.is_err() {
                            watched.close(crate::CLOSE_NO_ANSWER, b"no handshake answer");
                        }
                    });
                    return Ok(connection);
                }
                Err(connecting) => connecting,
            }
        } else {
            connecting
        };
        match tokio::time::timeout(limit, connecting).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(error)) => Err(tls::connection_error(address, &error)),
            Err(_) => Err(Error::transport(
                ID,
                format!(
                    "cannot connect to {address}: no QUIC handshake answer within {limit:?} \
                     (nobody listening on that UDP port, or UDP blocked on the way)"
                ),
            )),
        }
    }

    /// Like [`Transport::listen`], with the concrete listener type.
    pub async fn bind(&self, address: &str) -> Result<QuicListener> {
        if self.inner.tls.self_signed {
            self.inner.logger.in_scope(|| {
                tracing::warn!(
                    "quic transport: serving with a self-signed certificate generated at \
                     start (for localhost, 127.0.0.1, ::1): for development only; clients in \
                     other processes will not trust it. Configure transport.cert_file and \
                     transport.key_file (and clients' transport.ca_file) for real certificates"
                )
            });
        }
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(self.inner.tls.server()?)
            .map_err(|e| {
                Error::internal(ID, format!("TLS server config unusable for QUIC: {e}"))
            })?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(Arc::new(transport_config(&self.inner.options)?));
        let local = resolve(address).await?;
        QuicListener::bind(
            config,
            local,
            self.inner.options.max_frame_size,
            self.inner.logger.clone(),
        )
    }
}

/// The host part of `host:port` (without the brackets of an IPv6 address).
fn host(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The first socket address `address` (`host:port`) resolves to.
async fn resolve(address: &str) -> Result<SocketAddr> {
    let bad = |why: String| {
        Error::bad_request(
            ID,
            format!("{address:?} is not a usable host:port address: {why}"),
        )
    };
    let mut addresses = tokio::net::lookup_host(address)
        .await
        .map_err(|e| bad(e.to_string()))?;
    addresses
        .next()
        .ok_or_else(|| bad("it resolves to no address".to_string()))
}

#[async_trait::async_trait]
impl Transport for QuicTransport {
    fn name(&self) -> &str {
        "quic"
    }

    async fn dial(&self, address: &str, options: DialOptions) -> Result<Box<dyn Connection>> {
        Ok(Box::new(self.connect(address, options).await?))
    }

    async fn listen(&self, address: &str) -> Result<Box<dyn Listener>> {
        Ok(Box::new(self.bind(address).await?))
    }
}

/// A handle to the QUIC connection to one address (shared with other dials of that
/// address). Dropping it does not close the connection: it closes after `idle_timeout`
/// without traffic, or when the peer closes it.
#[derive(Clone)]
pub struct QuicConnection {
    connection: quinn::Connection,
    remote: String,
    max_frame_size: usize,
}

impl QuicConnection {
    fn new(connection: quinn::Connection, remote: &str, options: &QuicTransportOptions) -> Self {
        QuicConnection {
            connection,
            remote: remote.to_string(),
            max_frame_size: options.max_frame_size,
        }
    }

    /// Whether two handles share one QUIC connection.
    pub fn same_connection(&self, other: &QuicConnection) -> bool {
        self.connection.stable_id() == other.connection.stable_id()
    }
}

impl fmt::Debug for QuicConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuicConnection")
            .field("remote", &self.remote)
            .field("closed", &self.connection.close_reason().is_some())
            .finish()
    }
}

#[async_trait::async_trait]
impl Connection for QuicConnection {
    async fn open_stream(&self) -> Result<Stream> {
        let (send, recv) = self
            .connection
            .open_bi()
            .await
            .map_err(|e| tls::connection_error(&self.remote, &e))?;
        Ok(stream::stream(
            send,
            recv,
            self.connection.clone(),
            self.remote.clone(),
            self.max_frame_size,
        ))
    }

    /// As the default (open a stream, send, finish, read one frame), except that a read
    /// error the stream marked retryable stays so: 0-RTT data the server did not accept
    /// never ran.
    async fn call(&self, message: Message) -> Result<Message> {
        let Stream {
            sender,
            mut receiver,
            ..
        } = self.open_stream().await.map_err(Error::retryable)?;
        sender.send(message).await.map_err(Error::retryable)?;
        drop(sender);
        match receiver.recv().await {
            Some(Ok(answer)) => Ok(answer),
            Some(Err(error)) => Err(error),
            None => Err(Error::transport(
                ID,
                format!("{} closed the stream before answering", self.remote),
            )),
        }
    }

    fn remote(&self) -> &str {
        &self.remote
    }

    fn is_closed(&self) -> bool {
        self.connection.close_reason().is_some()
    }
}
