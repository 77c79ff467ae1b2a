//! The grpc server on the wire, through a raw HTTP/2 client (h2): bad input gets a gRPC
//! status and never a panic; `grpc-timeout` is the handler's deadline; JSON messages travel
//! as `application/grpc+json`; a stopping server reports NOT_SERVING and refuses new calls
//! with a retryable UNAVAILABLE.

use bytes::{BufMut, Bytes, BytesMut};
use micro_core::config::ServerConfig;
use micro_core::logger::Logger;
use micro_core::plugin::ServiceInfo;
use micro_core::server::{Handler, Server};
use micro_core::{Context, Error};
use micro_grpc::{GrpcServer, ServerParts};
use serde_json::Value;
use std::time::Duration;

/// A server with `Echo.Say` (echoes; answers 400 without `text`) and `Echo.Nap` (sleeps
/// `ms`, stopping at its deadline), messages up to 1 KiB.
async fn echo_server() -> GrpcServer {
    echo_server_with(|_| {}).await
}

/// [`echo_server`], with `setup` run before it starts.
async fn echo_server_with(setup: impl FnOnce(&GrpcServer)) -> GrpcServer {
    let config = ServerConfig {
        address: "127.0.0.1:0".into(),
        grace_period: Duration::from_secs(5),
        ..ServerConfig::default()
    };
    let parts = ServerParts {
        info: ServiceInfo {
            name: "echo".into(),
            version: "1".into(),
            id: "echo-1".into(),
        },
        registry: None,
        broker: None,
        middleware: Default::default(),
        logger: Logger::none(),
    };
    let server = GrpcServer::with_max_message_size(config, parts, 1024);
    server
        .handle(Handler::unary(
            "Echo.Say",
            |_ctx: Context, req: Value| async move {
                match req.get("text") {
                    Some(_) => Ok(req),
                    None => Err(Error::bad_request("echo", "text is required")),
                }
            },
        ))
        .unwrap();
    server
        .handle(Handler::unary(
            "Echo.Nap",
            |ctx: Context, req: Value| async move {
                let ms = req["ms"].as_u64().unwrap_or(0);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(ms)) => Ok(req),
                    _ = ctx.cancelled() => Err(Error::timeout("echo", "the nap was cut short")),
                }
            },
        ))
        .unwrap();
    setup(&server);
    server.start().await.unwrap();
    server
}

/// What came back: HTTP status, headers, the body's bytes, trailers.
struct Answer {
    http: u16,
    headers: http::HeaderMap,
    body: Bytes,
    trailers: http::HeaderMap,
}

impl Answer {
    /// `grpc-status`, from the trailers or (trailers-only) the headers.
    fn status(&self) -> Option<i32> {
        self.trailers
            .get("grpc-status")
            .or_else(|| self.headers.get("grpc-status"))
            .and_then(|v| v.to_str().ok()?.parse().ok())
    }

    fn message(&self) -> String {
        let value = self
            .trailers
            .get("grpc-message")
            .or_else(|| self.headers.get("grpc-message"));
        percent_decode(value.and_then(|v| v.to_str().ok()).unwrap_or(""))
    }

    fn micro_error(&self) -> Option<Error> {
        let from = |headers: &http::HeaderMap| {
            let metadata = tonic::metadata::MetadataMap::from_headers(headers.clone());
            let bytes = metadata.get_bin("micro-error-bin")?.to_bytes().ok()?;
            Some(Error::parse(std::str::from_utf8(&bytes).ok()?))
        };
        from(&self.trailers).or_else(|| from(&self.headers))
    }
}

/// `grpc-message` is percent-encoded on the wire.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A length-prefixed gRPC message.
fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(0);
    out.put_u32(message.len() as u32);
    out.put_slice(message);
    out.freeze()
}

/// Sends one request (headers + `body`) on a fresh HTTP/2 connection.
async fn send(address: &str, path: &str, headers: &[(&str, &str)], body: Bytes) -> Answer {
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let mut request = http::Request::post(format!("http://{address}{path}"));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let (response, mut stream) = client
        .send_request(request.body(()).unwrap(), false)
        .unwrap();
    stream.send_data(body, true).unwrap();
    let response = response.await.unwrap();
    let (parts, mut body) = response.into_parts();
    let mut data = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.unwrap().unwrap_or_default();
    Answer {
        http: parts.status.as_u16(),
        headers: parts.headers,
        body: data.freeze(),
        trailers,
    }
}

const PROTO: &[(&str, &str)] = &[("content-type", "application/grpc"), ("te", "trailers")];
const JSON: &[(&str, &str)] = &[
    ("content-type", "application/grpc+json"),
    ("te", "trailers"),
];

#[tokio::test]
async fn json_messages_travel_as_grpc_json() {
    let server = echo_server().await;
    let address = server.address().unwrap();
    let answer = send(&address, "/Echo/Say", JSON, frame(br#"{"text":"hi"}"#)).await;
    assert_eq!(answer.status(), Some(0), "{}", answer.message());
    assert_eq!(
        answer.headers.get("content-type").unwrap(),
        "application/grpc+json"
    );
    assert_eq!(&answer.body[..], &frame(br#"{"text":"hi"}"#)[..]);
    // An error is a status with the detail as message and the micro error in a trailer.
    let answer = send(&address, "/Echo/Say", JSON, frame(b"{}")).await;
    assert_eq!(answer.status(), Some(3), "INVALID_ARGUMENT");
    assert_eq!(answer.message(), "text is required");
    let error = answer.micro_error().unwrap();
    assert_eq!((error.id.as_str(), error.code), ("echo", 400));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bad_input_gets_a_grpc_status() {
    let server = echo_server().await;
    let address = server.address().unwrap();

    // Not gRPC at all: HTTP 415, with a gRPC status for gRPC-aware callers.
    let plain = [("content-type", "application/json")];
    let answer = send(&address, "/Echo/Say", &plain, Bytes::from_static(b"{}")).await;
    assert_eq!(answer.http, 415);
    assert_eq!(answer.status(), Some(3), "{}", answer.message());
    assert!(answer.message().contains("not a gRPC request"));

    // A gRPC subtype micro does not speak.
    let cbor = [
        ("content-type", "application/grpc+cbor"),
        ("te", "trailers"),
    ];
    let answer = send(&address, "/Echo/Say", &cbor, frame(b"{}")).await;
    assert_eq!(answer.status(), Some(3), "{}", answer.message());

    // A length prefix that promises more than arrives.
    let mut truncated = BytesMut::new();
    truncated.put_u8(0);
    truncated.put_u32(100);
    truncated.put_slice(b"{\"text\":");
    let answer = send(&address, "/Echo/Say", JSON, truncated.freeze()).await;
    let status = answer.status().expect("a status for a truncated message");
    assert_ne!(status, 0, "{}", answer.message());

    // Half a prefix.
    let answer = send(&address, "/Echo/Say", JSON, Bytes::from_static(&[0, 0, 0])).await;
    assert_ne!(answer.status().expect("a status"), 0);

    // Larger than the server's 1 KiB limit: OUT_OF_RANGE (tonic's code for it).
    let big = format!(r#"{{"text":"{}"}}"#, "x".repeat(2000));
    let answer = send(&address, "/Echo/Say", JSON, frame(big.as_bytes())).await;
    assert_eq!(answer.status(), Some(11), "{}", answer.message());
    assert!(
        answer.message().contains("limit is: 1024"),
        "{}",
        answer.message()
    );

    // A body that is not the message type: INVALID_ARGUMENT from the codec.
    let answer = send(&address, "/Echo/Say", JSON, frame(b"{nope")).await;
    assert_eq!(answer.status(), Some(3), "{}", answer.message());
    // Protobuf to a JSON-only endpoint.
    let answer = send(&address, "/Echo/Say", PROTO, frame(&[8, 1])).await;
    assert_eq!(answer.status(), Some(3), "{}", answer.message());

    // An unknown method, and a bad grpc-timeout.
    let answer = send(&address, "/Echo/Shout", JSON, frame(b"{}")).await;
    assert_eq!(
        answer.status(),
        Some(12),
        "UNIMPLEMENTED: {}",
        answer.message()
    );
    assert!(
        answer.message().contains("/Echo/Say"),
        "{}",
        answer.message()
    );
    let bad_timeout = [
        ("content-type", "application/grpc+json"),
        ("grpc-timeout", "soon"),
    ];
    let answer = send(&address, "/Echo/Say", &bad_timeout, frame(b"{}")).await;
    assert_eq!(answer.status(), Some(3), "{}", answer.message());
    assert!(answer.message().contains("grpc-timeout"));

    // After all that, the server still answers.
    let answer = send(&address, "/Echo/Say", JSON, frame(br#"{"text":"ok"}"#)).await;
    assert_eq!(answer.status(), Some(0), "{}", answer.message());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn grpc_timeout_is_the_handlers_deadline() {
    let server = echo_server().await;
    let address = server.address().unwrap();
    let headers = [
        ("content-type", "application/grpc+json"),
        ("grpc-timeout", "100m"),
    ];
    let started = std::time::Instant::now();
    let answer = send(&address, "/Echo/Nap", &headers, frame(br#"{"ms":10000}"#)).await;
    assert_eq!(
        answer.status(),
        Some(4),
        "DEADLINE_EXCEEDED: {}",
        answer.message()
    );
    assert_eq!(answer.micro_error().unwrap().code, 408);
    assert!(started.elapsed() < Duration::from_secs(5));
    server.stop().await.unwrap();
}

/// `grpc.health.v1.Health/Check` for `service`: the status number (1 SERVING, 2
/// NOT_SERVING).
async fn health(address: &str, service: &str) -> u8 {
    let mut request = vec![];
    if !service.is_empty() {
        request.push(0x0a);
        request.push(service.len() as u8);
        request.extend_from_slice(service.as_bytes());
    }
    let answer = send(
        address,
        "/grpc.health.v1.Health/Check",
        PROTO,
        frame(&request),
    )
    .await;
    assert_eq!(answer.status(), Some(0), "{}", answer.message());
    // One message: prefix, then field 1 (varint).
    assert_eq!(&answer.body[5..6], &[0x08], "{:?}", answer.body);
    answer.body[6]
}

#[tokio::test]
async fn a_stopping_server_is_not_serving_and_refuses_new_calls() {
    let server = echo_server().await;
    let address = server.address().unwrap();
    assert_eq!(health(&address, "").await, 1);
    assert_eq!(health(&address, "Echo").await, 1);
    // A call in flight keeps the server draining for a while.
    let slow = {
        let address = address.clone();
        tokio::spawn(
            async move { send(&address, "/Echo/Nap", JSON, frame(br#"{"ms":800}"#)).await },
        )
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopping = {
        let server = server.clone();
        tokio::spawn(async move { server.stop().await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(health(&address, "").await, 2, "NOT_SERVING while draining");
    assert_eq!(health(&address, "Echo").await, 2);
    let refused = send(&address, "/Echo/Say", JSON, frame(br#"{"text":"late"}"#)).await;
    assert_eq!(
        refused.status(),
        Some(14),
        "UNAVAILABLE: {}",
        refused.message()
    );
    assert!(refused.micro_error().unwrap().retryable);
    let finished = slow.await.unwrap();
    assert_eq!(finished.status(), Some(0), "the call in flight finishes");
    stopping.await.unwrap().unwrap();
    assert!(server.address().is_none());
}

/// Server reflection v1 and v1alpha list the services of the descriptors the server was
/// given (here the health service's own), over a raw stream.
#[tokio::test]
async fn reflection_v1_and_v1alpha_list_the_described_services() {
    let server = echo_server_with(|server| {
        server.add_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
    })
    .await;
    let address = server.address().unwrap();
    // ServerReflectionRequest { list_services: "" } (field 7).
    let list = frame(&[0x3a, 0x00]);
    for version in ["v1", "v1alpha"] {
        let path = format!("/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo");
        let answer = send(&address, &path, PROTO, list.clone()).await;
        assert_eq!(answer.status(), Some(0), "{version}: {}", answer.message());
        let body = String::from_utf8_lossy(&answer.body);
        assert!(
            body.contains("grpc.health.v1.Health"),
            "{version}: {body:?}"
        );
    }
    // Without descriptors there is no reflection: UNIMPLEMENTED.
    let plain = echo_server().await;
    let path = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
    let answer = send(&plain.address().unwrap(), path, PROTO, list).await;
    assert_eq!(answer.status(), Some(12), "{}", answer.message());
    server.stop().await.unwrap();
    plain.stop().await.unwrap();
}
