//! The dialing side: [`NatsConnection`], a listener subject on a shared NATS client.

use super::frames::{self, Control, ID};
use super::stream::{self, Ends};
use async_nats::{Client, RequestErrorKind, StatusCode, Subject};
use bytes::Bytes;
use micro_core::transport::{Connection, Message, Stream};
use micro_core::{Error, Result};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// What every connection of one transport shares: made once, on the first dial.
pub(crate) struct Shared {
    pub client: Client,
    /// How long a unary call without a `Timeout` header waits.
    pub wait: Duration,
    /// How long opening a stream waits for the listener (unless the dial gave less).
    pub open_wait: Duration,
    pub settings: stream::Settings,
}

/// A "connection" to a listener subject: NATS itself is the connection, so this is the
/// subject and the transport's shared NATS connection. Cheap to make; dialling never waits.
pub struct NatsConnection {
    pub(crate) shared: Arc<Shared>,
    pub(crate) subject: String,
    /// The subject as NATS takes it.
    pub(crate) target: Subject,
    /// How long opening a stream waits for the listener.
    pub(crate) open_wait: Duration,
}

impl fmt::Debug for NatsConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsConnection")
            .field("subject", &self.subject)
            .finish()
    }
}

impl NatsConnection {
    fn nobody(&self) -> Error {
        Error::unavailable(
            ID,
            format!(
                "nothing listens on NATS subject {} (no responders): the server stopped or \
                 never started; retry on another node",
                self.subject
            ),
        )
        .retryable()
    }
}

#[async_trait::async_trait]
impl Connection for NatsConnection {
    /// Opens a stream: subscribes a fresh inbox, sends the opening frame to the listener
    /// subject and waits for the server's acceptance (or NATS's "no responders").
    async fn open_stream(&self) -> Result<Stream> {
        let inbox = self.shared.client.new_inbox();
        let mut subscriber = self
            .shared
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| {
                Error::unavailable(
                    ID,
                    format!("{}: cannot subscribe a stream inbox: {e}", self.subject),
                )
            })?;
        let own = Subject::from(inbox);
        self.shared
            .client
            .publish_with_reply_and_headers(
                self.target.clone(),
                own.clone(),
                Control::Open.headers(),
                Bytes::new(),
            )
            .await
            .map_err(|e| {
                Error::unavailable(
                    ID,
                    format!("{}: cannot send the stream opening: {e}", self.subject),
                )
            })?;
        let answer = match stream::first_message(&mut subscriber, self.open_wait).await {
            // Nothing was sent on the stream yet: unavailable, and safe to retry elsewhere.
            None => {
                return Err(Error::unavailable(
                    ID,
                    format!(
                        "{}: the listener did not accept the stream within {:?}",
                        self.subject, self.open_wait
                    ),
                )
                .retryable());
            }
            Some(None) => {
                return Err(Error::unavailable(
                    ID,
                    format!(
                        "{}: the NATS connection closed while opening a stream",
                        self.subject
                    ),
                ));
            }
            Some(Some(answer)) => answer,
        };
        if answer.status == Some(StatusCode::NO_RESPONDERS) {
            return Err(self.nobody());
        }
        match frames::control_of(&answer) {
            Some(Ok(Control::Accept)) => {}
            Some(Ok(Control::Reset)) => return Err(frames::reset_error(&answer, &self.subject)),
            _ => {
                return Err(Error::new(
                    ID,
                    502,
                    format!(
                        "{}: the listener answered the stream opening with something other \
                         than an acceptance; is it a micro nats transport?",
                        self.subject
                    ),
                ));
            }
        }
        let Some(peer) = answer.reply.clone() else {
            return Err(Error::new(
                ID,
                502,
                format!(
                    "{}: the stream acceptance named no server inbox",
                    self.subject
                ),
            ));
        };
        let ends = Ends {
            client: self.shared.client.clone(),
            own,
            subscriber,
            peer,
            subject: self.subject.clone(),
        };
        Ok(stream::start(
            ends,
            self.shared.settings.clone(),
            self.subject.clone(),
        ))
    }

    /// One NATS request: the frame's headers as NATS headers, its body as payload; the
    /// answer comes back on the client's shared reply inbox. The `Timeout` header bounds the
    /// wait (else the transport's `request_timeout`).
    async fn call(&self, message: Message) -> Result<Message> {
        let wait = frames::timeout_of(&message).unwrap_or(self.shared.wait);
        let headers = frames::to_nats(&message.header).map_err(Error::retryable)?;
        let request = async_nats::Request::new()
            .headers(headers)
            .payload(message.body)
            .timeout(Some(wait));
        let answer = self
            .shared
            .client
            .send_request(self.target.clone(), request)
            .await
            .map_err(|e| match e.kind() {
                RequestErrorKind::NoResponders => self.nobody(),
                RequestErrorKind::TimedOut => {
                    Error::timeout(ID, format!("{}: no answer within {wait:?}", self.subject))
                }
                RequestErrorKind::InvalidSubject => Error::bad_request(
                    ID,
                    format!("{:?} is not a NATS subject to call", self.subject),
                )
                .retryable(),
                RequestErrorKind::MaxPayloadExceeded => Error::new(
                    ID,
                    413,
                    format!(
                        "{}: the request is larger than the NATS server's max_payload ({e}); \
                         send less or raise max_payload",
                        self.subject
                    ),
                )
                .retryable(),
                RequestErrorKind::Other => {
                    Error::unavailable(ID, format!("{}: the request failed: {e}", self.subject))
                }
            })?;
        if let Some(Ok(Control::Reset)) = frames::control_of(&answer) {
            return Err(frames::reset_error(&answer, &self.subject));
        }
        Ok(frames::to_frame(answer))
    }

    fn remote(&self) -> &str {
        &self.subject
    }

    /// Never: async-nats reconnects by itself, and a subject has no connection to break.
    fn is_closed(&self) -> bool {
        false
    }
}
