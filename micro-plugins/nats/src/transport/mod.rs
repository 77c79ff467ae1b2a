//! The `nats` transport: micro's RPC over NATS subjects instead of sockets.
//!
//! - A listener's address is a NATS subject (a fresh `micro.transport.<nuid>` when asked
//!   for `:0`, `127.0.0.1:0` or nothing), subscribed in queue group `micro`.
//! - A unary call ([`Connection::call`](micro_core::transport::Connection::call)) is one
//!   NATS request: micro's headers as NATS headers, the body as payload, the answer on the
//!   client's reply inbox; the `Timeout` header bounds the wait.
//! - A stream is a pair of inboxes: the client sends an opening frame to the listener
//!   subject from its inbox, the server accepts from an inbox of its own, and frames flow
//!   between the two, with credit-based flow control, end and reset markers and heartbeats.
//!
//! The crate's README (`## Transport`) describes the protocol frame by frame.

mod client;
mod frames;
mod server;
mod stream;

pub use client::NatsConnection;
pub use frames::{CONTROL, WINDOW};
pub use server::{NatsListener, QUEUE_GROUP};
pub use stream::SILENT_HEARTBEATS;

use crate::Connector;
use frames::ID;
use micro_core::config::TransportConfig;
use micro_core::logger::Logger;
use micro_core::transport::{Connection, DialOptions, Listener, Transport};
use micro_core::{Error, Plugin, Result};
use micro_derive::Component;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Prefix of the subjects made for listeners that ask for no particular one.
pub const SUBJECT_PREFIX: &str = "micro.transport";

/// Options of the `nats` transport (`transport: {plugin: nats, addresses: [...], ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Component)]
#[serde(default)]
#[component(section = "transport", plugin = "nats")]
pub struct NatsTransportOptions {
    /// How long a unary call whose request has no `Timeout` header waits for its answer.
    #[serde(with = "micro_core::config::duration")]
    #[component(default = Duration::from_secs(30))]
    pub request_timeout: Duration,
    /// How long opening a stream waits for the listener to accept it (a dial's own,
    /// shorter limit wins).
    #[serde(with = "micro_core::config::duration")]
    #[component(default = Duration::from_secs(5))]
    pub open_timeout: Duration,
    /// Ping interval of an idle stream; a stream whose peer is silent for 4 intervals
    /// fails with 503.
    #[serde(with = "micro_core::config::duration")]
    #[component(default = Duration::from_secs(5))]
    pub heartbeat: Duration,
    /// Server: time a client has, after opening a stream, to send its first frame; later,
    /// the stream is reset with 408. 0 = never.
    #[serde(with = "micro_core::config::duration")]
    #[component(default = Duration::from_secs(10))]
    pub first_frame_timeout: Duration,
}

impl NatsTransportOptions {
    /// Checks values that make no sense; the error names the key.
    pub fn validate(&self) -> std::result::Result<(), micro_core::config::ConfigError> {
        for (key, value) in [
            ("request_timeout", self.request_timeout),
            ("open_timeout", self.open_timeout),
            ("heartbeat", self.heartbeat),
        ] {
            if value.is_zero() {
                return Err(micro_core::config::ConfigError::Invalid {
                    key: format!("transport.{key}"),
                    reason: "0 is not a usable duration: give e.g. 5s, or leave the key out \
                             for the default"
                        .to_string(),
                });
            }
        }
        Ok(())
    }
}

/// The NATS transport. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct NatsTransport {
    connector: Arc<Connector>,
    options: NatsTransportOptions,
    logger: Logger,
    /// What dialled connections share, made on the first dial.
    shared: Arc<tokio::sync::OnceCell<Arc<client::Shared>>>,
}

impl fmt::Debug for NatsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsTransport")
            .field("address", &self.connector.address())
            .field("options", &self.options)
            .finish()
    }
}

impl NatsTransport {
    /// A transport on `connector`'s connection (made on first use).
    pub fn new(connector: Connector, options: NatsTransportOptions) -> Self {
        NatsTransport {
            connector: Arc::new(connector),
            options,
            logger: Logger::none(),
            shared: Arc::default(),
        }
    }

    /// A transport to the NATS servers at `addresses` with default options.
    pub fn connect_to(addresses: &[String]) -> Self {
        Self::new(
            Connector::new(addresses, "transport"),
            NatsTransportOptions::default(),
        )
    }

    /// The same transport logging problems (malformed messages, failed streams) to `logger`.
    pub fn with_logger(mut self, logger: Logger) -> Self {
        self.logger = logger;
        self
    }

    /// The options it was made with.
    pub fn options(&self) -> &NatsTransportOptions {
        &self.options
    }

    fn settings(&self, first_frame: bool) -> stream::Settings {
        let first = self.options.first_frame_timeout;
        stream::Settings {
            heartbeat: self.options.heartbeat.max(Duration::from_millis(1)),
            first_frame: (first_frame && !first.is_zero()).then_some(first),
            stop: CancellationToken::new(),
            logger: self.logger.clone(),
        }
    }

    /// Like [`Transport::dial`], with the concrete connection type.
    pub async fn connect(&self, subject: &str, options: DialOptions) -> Result<NatsConnection> {
        check_subject(subject, "dial")?;
        let shared = self
            .shared
            .get_or_try_init(|| async {
                Ok::<_, Error>(Arc::new(client::Shared {
                    client: self.connector.client().await?,
                    wait: self.options.request_timeout,
                    open_wait: self.options.open_timeout,
                    settings: self.settings(false),
                }))
            })
            .await?
            .clone();
        let open_wait = options
            .timeout
            .map_or(shared.open_wait, |t| t.min(shared.open_wait));
        Ok(NatsConnection {
            shared,
            subject: subject.to_string(),
            target: async_nats::Subject::from(subject),
            open_wait,
        })
    }

    /// Like [`Transport::listen`], with the concrete listener type.
    pub async fn bind(&self, address: &str) -> Result<NatsListener> {
        let client = self.connector.client().await?;
        let subject = if wants_fresh_subject(address)? {
            let inbox = client.new_inbox();
            let id = inbox.rsplit('.').next().unwrap_or(&inbox);
            format!("{SUBJECT_PREFIX}.{id}")
        } else {
            check_subject(address, "listen on")?;
            address.to_string()
        };
        let subscriber = client
            .queue_subscribe(subject.clone(), QUEUE_GROUP.to_string())
            .await
            .map_err(|e| {
                Error::unavailable(
                    ID,
                    format!("cannot subscribe listener subject {subject}: {e}"),
                )
            })?;
        Ok(NatsListener {
            client,
            subject,
            subscriber,
            settings: self.settings(true),
        })
    }
}

/// Whether `address` asks for a generated subject: empty, or `host:0`. Another `host:port`
/// is a 400: this transport listens on subjects.
fn wants_fresh_subject(address: &str) -> Result<bool> {
    let address = address.trim();
    if address.is_empty() {
        return Ok(true);
    }
    if let Some((_, port)) = address.rsplit_once(':')
        && !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
    {
        if port.parse::<u32>() == Ok(0) {
            return Ok(true);
        }
        return Err(Error::bad_request(
            ID,
            format!(
                "the nats transport listens on a NATS subject, not on {address}: leave \
                 server.address empty (or :0) for a generated subject, or give one such as \
                 micro.transport.greeter"
            ),
        ));
    }
    Ok(false)
}

/// Checks that `subject` is one NATS can publish to (no wildcards, no spaces, no empty
/// tokens).
fn check_subject(subject: &str, what: &str) -> Result<()> {
    let bad = subject.is_empty()
        || subject
            .split('.')
            .any(|token| token.is_empty() || token == "*" || token == ">")
        || subject.chars().any(|c| c.is_whitespace() || c.is_control());
    if bad {
        return Err(Error::bad_request(
            ID,
            format!(
                "cannot {what} {subject:?}: not a NATS subject (dot-separated tokens, no \
                 spaces, no wildcards * or >); give the address a nats server registered"
            ),
        ));
    }
    Ok(())
}

#[async_trait::async_trait]
impl Transport for NatsTransport {
    fn name(&self) -> &str {
        "nats"
    }

    async fn dial(&self, address: &str, options: DialOptions) -> Result<Box<dyn Connection>> {
        Ok(Box::new(self.connect(address, options).await?))
    }

    async fn listen(&self, address: &str) -> Result<Box<dyn Listener>> {
        Ok(Box::new(self.bind(address).await?))
    }
}

/// The plugin-table entry: `transport: {plugin: nats, addresses: [nats://host:4222]}`.
pub fn plugin() -> Plugin {
    Plugin::transport("nats", "nats", |ctx| {
        let options: NatsTransportOptions = ctx.options()?;
        options.validate()?;
        let section: TransportConfig = ctx.options()?;
        let transport =
            NatsTransport::new(Connector::new(&section.addresses, "transport"), options)
                .with_logger(ctx.logger.clone());
        Ok(Arc::new(transport))
    })
    .with_options::<NatsTransportOptions>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        for fresh in ["", ":0", "127.0.0.1:0", "[::]:0", "0.0.0.0:0"] {
            assert!(wants_fresh_subject(fresh).unwrap(), "{fresh}");
        }
        assert!(!wants_fresh_subject("micro.transport.greeter").unwrap());
        assert_eq!(wants_fresh_subject("127.0.0.1:8080").unwrap_err().code, 400);
        for bad in ["a..b", "a.*", "a.>", "a b", ".a", "a."] {
            assert_eq!(check_subject(bad, "dial").unwrap_err().code, 400, "{bad}");
        }
        check_subject("micro.transport.x_1-2", "dial").unwrap();
    }
}
