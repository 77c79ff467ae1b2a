//! The RPC caller: unary calls, streams and publishing, with per-call options.
//!
//! [`Request`] and [`Response`] are shared with the server: they are what middleware (tower
//! layers) sees on both sides.

use crate::Result;
use crate::broker;
use crate::context::{Context, Metadata};
use crate::selector::SelectOptions;
use crate::transport::Stream;
use async_trait::async_trait;
use bytes::Bytes;
use std::time::Duration;

/// A call to an endpoint of a service, with its encoded body and call context.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Service name, e.g. `greeter`.
    pub service: String,
    /// Endpoint, e.g. `Greeter.Hello`.
    pub endpoint: String,
    /// Content type of `body` (and of the expected response).
    pub content_type: String,
    /// Encoded request.
    pub body: Bytes,
    /// Metadata and deadline.
    pub context: Context,
    /// Whether the endpoint streams.
    pub stream: bool,
}

impl Request {
    /// A request to `service`'s `endpoint` with a JSON body.
    pub fn new(
        service: impl Into<String>,
        endpoint: impl Into<String>,
        body: impl Into<Bytes>,
    ) -> Self {
        Request {
            service: service.into(),
            endpoint: endpoint.into(),
            content_type: crate::codec::JSON.to_string(),
            body: body.into(),
            ..Default::default()
        }
    }
}

/// The answer to a unary call.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// Headers the server sent back.
    pub header: Metadata,
    /// Content type of `body`.
    pub content_type: String,
    /// Encoded response.
    pub body: Bytes,
}

option_struct! {
    /// Options of one call; unset fields take the client's configured values.
    #[derive(Debug, Clone, Default)]
    pub struct CallOptions {
        /// Call this address directly instead of asking the selector.
        pub address: Option<String>,
        /// Retries after the first attempt.
        pub retries: Option<u32>,
        /// Overall time limit of the call (tightened by the context's deadline).
        pub request_timeout: Option<Duration>,
        /// The endpoint is safe to run twice, so any failure may be retried.
        pub idempotent: bool,
        /// Filters and strategy for node selection.
        pub select: SelectOptions,
        /// Content type of the request (default: the client's).
        pub content_type: Option<String>,
        /// The protobuf package of the endpoint's interface (e.g. `greeter.v1`), set by
        /// `#[micro::service(package = "...")]` clients; the grpc client names the method
        /// `/{package}.{Trait}/{Method}` with it (`/{Trait}/{Method}` without).
        pub package: Option<String>,
    }
}

/// Calls services.
#[async_trait]
pub trait Client: Send + Sync + 'static {
    /// Plugin name, e.g. `mucp`.
    fn name(&self) -> &str;
    /// Content type used when a call names none (`client.content_type`).
    fn content_type(&self) -> &str {
        crate::codec::JSON
    }
    /// A unary call.
    async fn call(&self, request: Request, options: CallOptions) -> Result<Response>;
    /// Opens a stream to the endpoint; the first frame carries the request.
    async fn stream(&self, request: Request, options: CallOptions) -> Result<Stream>;
    /// Publishes a message on a topic through the broker.
    async fn publish(&self, topic: &str, message: broker::Message) -> Result<()>;
}

use crate::codec::{Format, Payload};
use crate::streaming::ClientStream;

/// The request of a typed call and its format: the call's content type, else the client's
/// default, or JSON when the messages cannot speak that default (a serde-only service under
/// `client.content_type: application/protobuf`).
fn typed_request<Req: Payload, Resp: Payload>(
    client: &dyn Client,
    ctx: &Context,
    service: &str,
    endpoint: &str,
    content_type: Option<&str>,
) -> Result<(Request, Format)> {
    let (content_type, format) = match content_type {
        Some(given) => (given.to_string(), Format::from_content_type(given)?),
        None => {
            let default = client.content_type();
            let format = Format::from_content_type(default)?;
            if Req::speaks(format) && Resp::speaks(format) {
                (default.to_string(), format)
            } else {
                (crate::codec::JSON.to_string(), Format::Json)
            }
        }
    };
    Ok((
        Request {
            service: service.to_string(),
            endpoint: endpoint.to_string(),
            content_type,
            body: Bytes::new(),
            context: ctx.clone(),
            stream: false,
        },
        format,
    ))
}

/// Calls `service`'s `endpoint` with a typed request and decodes the typed response.
pub async fn call<Req: Payload, Resp: Payload>(
    client: &dyn Client,
    ctx: &Context,
    service: &str,
    endpoint: &str,
    request: &Req,
    options: CallOptions,
) -> Result<Resp> {
    let (mut req, format) = typed_request::<Req, Resp>(
        client,
        ctx,
        service,
        endpoint,
        options.content_type.as_deref(),
    )?;
    req.body = request.encode(format)?;
    let response = client.call(req, options).await?;
    let format = if response.content_type.is_empty() {
        format
    } else {
        Format::from_content_type(&response.content_type)?
    };
    Resp::decode(format, &response.body)
}

/// Opens a typed stream to `service`'s `endpoint`. For a server stream, `send` the one
/// request and `close_send`; then `recv` the responses.
pub async fn stream<Req: Payload, Resp: Payload>(
    client: &dyn Client,
    ctx: &Context,
    service: &str,
    endpoint: &str,
    options: CallOptions,
) -> Result<ClientStream<Req, Resp>> {
    let (mut req, format) = typed_request::<Req, Resp>(
        client,
        ctx,
        service,
        endpoint,
        options.content_type.as_deref(),
    )?;
    req.stream = true;
    let stream = client.stream(req, options).await?;
    Ok(ClientStream::new(stream, format))
}

/// Publishes a typed message on `topic` through the client (which sets `Micro-Topic`,
/// `Micro-Id` and `Content-Type`).
pub async fn publish<T: Payload>(client: &dyn Client, topic: &str, message: &T) -> Result<()> {
    let format = Format::from_content_type(client.content_type())?;
    let body = message.encode(format)?;
    let message = broker::Message::new(body).with_header(
        crate::transport::headers::CONTENT_TYPE,
        format.content_type(),
    );
    client.publish(topic, message).await
}

/// Server streaming: sends `request`, returns the responses.
pub async fn server_stream<Req: Payload, Resp: Payload>(
    client: &dyn Client,
    ctx: &Context,
    service: &str,
    endpoint: &str,
    request: &Req,
    options: CallOptions,
) -> Result<crate::Streaming<Resp>> {
    let stream = stream::<Req, Resp>(client, ctx, service, endpoint, options).await?;
    stream.send(request).await?;
    Ok(stream.into_responses())
}

/// Client streaming: sends every request of `requests`, returns the one response.
pub async fn client_stream<Req: Payload, Resp: Payload>(
    client: &dyn Client,
    ctx: &Context,
    service: &str,
    endpoint: &str,
    requests: crate::Streaming<Req>,
    options: CallOptions,
) -> Result<Resp> {
    let stream = stream::<Req, Resp>(client, ctx, service, endpoint, options).await?;
    let (mut responses, sending) = forward(stream, requests);
    let answer = responses.next().await;
    sending.abort();
    answer.unwrap_or_else(|| {
        Err(crate::Error::internal(
            "go.micro.client",
            format!("{service} {endpoint} ended the stream without an answer"),
        ))
    })
}

/// Bidirectional streaming: sends `requests` while returning the responses.
pub async fn bidi_stream<Req: Payload, Resp: Payload>(
    client: &dyn Client,
    ctx: &Context,
    service: &str,
    endpoint: &str,
    requests: crate::Streaming<Req>,
    options: CallOptions,
) -> Result<crate::Streaming<Resp>> {
    let stream = stream::<Req, Resp>(client, ctx, service, endpoint, options).await?;
    let (responses, _sending) = forward(stream, requests);
    Ok(responses)
}

/// Sends `requests` on a task (ending the requests when they end) and returns the responses.
fn forward<Req: Payload, Resp: Payload>(
    mut stream: ClientStream<Req, Resp>,
    mut requests: crate::Streaming<Req>,
) -> (crate::Streaming<Resp>, tokio::task::JoinHandle<()>) {
    let sender = stream.take_sender();
    let sending = tokio::spawn(async move {
        if let Some(sender) = sender {
            while let Some(item) = requests.next().await {
                let sent = match item {
                    Ok(request) => sender.send(&request).await,
                    Err(err) => sender.send_error(&err).await,
                };
                if sent.is_err() {
                    break;
                }
            }
        }
    });
    (stream.into_responses(), sending)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{JSON, PROTOBUF, Proto};

    /// A client whose default content type is protobuf.
    struct ProtobufDefault;

    #[async_trait]
    impl Client for ProtobufDefault {
        fn name(&self) -> &str {
            "test"
        }
        fn content_type(&self) -> &str {
            PROTOBUF
        }
        async fn call(&self, _: Request, _: CallOptions) -> Result<Response> {
            unreachable!("not called")
        }
        async fn stream(&self, _: Request, _: CallOptions) -> Result<crate::transport::Stream> {
            unreachable!("not called")
        }
        async fn publish(&self, _: &str, _: broker::Message) -> Result<()> {
            unreachable!("not called")
        }
    }

    #[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
    struct Ping {
        #[prost(string, tag = "1")]
        text: String,
    }

    #[test]
    fn serde_messages_fall_back_to_json_under_a_protobuf_default() {
        let ctx = Context::new();
        let client = ProtobufDefault;
        let content_type = |given: Option<&str>, proto: bool| {
            let made = if proto {
                typed_request::<Proto<Ping>, Proto<Ping>>(&client, &ctx, "s", "E.M", given)
            } else {
                typed_request::<String, String>(&client, &ctx, "s", "E.M", given)
            };
            made.map(|(request, _)| request.content_type)
        };
        assert_eq!(content_type(None, true).unwrap(), PROTOBUF);
        assert_eq!(content_type(None, false).unwrap(), JSON, "serde-only: JSON");
        // A content type the call names is kept, and the encoding then says what is wrong.
        assert_eq!(content_type(Some(PROTOBUF), false).unwrap(), PROTOBUF);
    }
}
