//! Unary calls as plain HTTP/1.1 POSTs (go-micro's form), over hyper's pooled keep-alive
//! client: one connection per call in flight, idle ones kept for the next calls. A unary
//! exchange has no use for HTTP/2's full duplex, and HTTP/1.1 connections spread over the
//! server's threads where one h2c connection is served by one task.

use crate::ID;
use crate::body::{self, BodyError, read_limited};
use crate::conn::{ClientConn, answer_message};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use micro_core::Error;
use micro_core::transport::Message;
use std::time::Duration;

/// Idle keep-alive connections are closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The pooled HTTP/1.1 client of a transport (cheap to clone; clones share the pool).
pub(crate) type PlainClient = Client<HttpConnector, Full<Bytes>>;

/// A client whose connections connect within `dial_timeout`.
pub(crate) fn client(dial_timeout: Duration) -> PlainClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(dial_timeout));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(IDLE_TIMEOUT)
        .build(connector)
}

/// POSTs `message` to `conn`'s address and reads the answer. A failure to connect means the
/// request was not sent; any later failure may have reached the server.
pub(crate) async fn call(
    client: &PlainClient,
    conn: &ClientConn,
    message: Message,
) -> Result<Message, Error> {
    let body = message.body.clone();
    let request = conn.request(&message, false).map(|()| Full::new(body));
    let response = client.request(request).await.map_err(|err| {
        Error::transport(ID, format!("connection to {}: {err}", conn.remote))
            .with_retryable(err.is_connect())
    })?;
    let (parts, body) = response.into_parts();
    let payload = read_limited(&parts.headers, body, conn.max_body_size)
        .await
        .map_err(|err| match err {
            BodyError::TooLarge => body::too_large(ID, "response", conn.max_body_size),
            BodyError::Broken(reason) => Error::unavailable(
                ID,
                format!(
                    "connection to {}: reading the response: {reason}",
                    conn.remote
                ),
            ),
        })?;
    answer_message(parts.status, &parts.headers, payload)
}
