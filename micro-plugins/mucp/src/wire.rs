//! The mucp wire mapping: requests and responses to and from transport frames, the
//! `Timeout` header, and running work under a caller's deadline.

use micro_core::broker;
use micro_core::client::{Request, Response};
use micro_core::middleware::{self, RpcLayer};
use micro_core::streaming;
use micro_core::transport::{ByteString, HeaderMap, Message, headers};
use micro_core::{Context, Error, Metadata, Result};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Parses a `Timeout` header: whole nanoseconds (go-micro) or a duration such as `100ms`.
/// Zero, negative, unreadable values and deadlines the clock cannot represent are a 400
/// naming the header and the value.
pub fn parse_timeout(value: &str) -> Result<Duration> {
    let text = value.trim();
    let parsed = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<u64>().ok().map(Duration::from_nanos)
    } else {
        micro_core::config::parse_duration(text).ok()
    };
    let bad = |why: &str| {
        Error::bad_request(
            SERVER_ID,
            format!(
                "invalid Timeout header {value:?}: {why}; send a positive number of nanoseconds \
                 or a duration such as 500ms, or leave the header out for no deadline"
            ),
        )
    };
    match parsed {
        None => Err(bad("not a number of nanoseconds or a duration")),
        Some(timeout) if timeout.is_zero() => Err(bad("it must be more than zero")),
        Some(timeout) if Instant::now().checked_add(timeout).is_none() => {
            Err(bad("it is too large to be a deadline"))
        }
        Some(timeout) => Ok(timeout),
    }
}

/// The `id` of errors the server raises about a request.
const SERVER_ID: &str = "go.micro.server";

/// The request a server reads from the opening frame of a stream (one pass over its
/// headers: micro's own become the request's fields, the others its metadata). An invalid
/// `Timeout` header is a 400.
pub fn request_from_frame(frame: &Message, own_name: &str) -> Result<Request> {
    let mut context = Context::new();
    let mut metadata = Vec::new();
    let (mut service, mut endpoint, mut content_type) = (None, None, None);
    let mut timeout = None;
    let mut stream = false;
    // A header sent twice counts once, with its last value (as `Message::header` reads it).
    for (key, value) in &frame.header {
        match headers::reserved_name(key) {
            None => metadata.push((key, value)),
            Some(headers::SERVICE) => service = Some(value),
            Some(headers::ENDPOINT) => endpoint = Some(value),
            Some(headers::CONTENT_TYPE) => content_type = Some(value),
            Some(headers::TIMEOUT) => timeout = Some(value),
            Some(headers::STREAM) => stream = true,
            Some(_) => {}
        }
    }
    // In one go: merging keys repeated in another case stays linear for many headers.
    context.metadata.extend(metadata);
    if let Some(timeout) = timeout {
        context = context.with_timeout(parse_timeout(timeout)?);
    }
    Ok(Request {
        service: service.unwrap_or(own_name).to_string(),
        endpoint: endpoint.unwrap_or_default().to_string(),
        content_type: content_type.unwrap_or(micro_core::codec::JSON).to_string(),
        body: frame.body.clone(),
        context,
        stream,
    })
}

/// The headers every answer carries (the request's id, service and endpoint), made from the
/// request's own header map so no new map or strings are allocated.
pub fn reply_headers(mut request_headers: HeaderMap) -> HeaderMap {
    request_headers.retain(|k, _| {
        [headers::ID, headers::SERVICE, headers::ENDPOINT]
            .iter()
            .any(|h| h.eq_ignore_ascii_case(k))
    });
    request_headers
}

/// The frame answering a unary request.
pub fn response_frame(reply: HeaderMap, result: Result<Response>) -> Message {
    let mut header = reply;
    match result {
        Ok(response) => {
            header.extend(response.header.iter());
            header.insert(headers::CONTENT_TYPE, response.content_type.as_str());
            Message {
                header,
                body: response.body,
            }
        }
        Err(err) => {
            header.insert(headers::ERROR, err.to_json());
            Message {
                header,
                body: Default::default(),
            }
        }
    }
}

/// The frame a client sends to open a call or stream.
pub fn request_frame(request: &Request, id: &ByteString, timeout: Option<Duration>) -> Message {
    let metadata = &request.context.metadata;
    let mut header = HeaderMap::with_capacity(metadata.len() + 6);
    header.extend(metadata.iter());
    header.insert(headers::SERVICE, &request.service);
    header.insert(headers::ENDPOINT, &request.endpoint);
    header.insert(headers::ID, id);
    header.insert(headers::CONTENT_TYPE, &request.content_type);
    if let Some(timeout) = timeout {
        header.insert(headers::TIMEOUT, timeout.as_nanos().to_string());
    }
    if request.stream {
        header.insert(headers::STREAM, "true");
    }
    Message {
        header,
        body: request.body.clone(),
    }
}

/// The response (or error) a client reads from the answer frame.
pub fn response_from_frame(frame: Message) -> Result<Response> {
    if let Some(err) = streaming::frame_error(&frame) {
        return Err(err);
    }
    let content_type = frame
        .header(headers::CONTENT_TYPE)
        .unwrap_or_default()
        .to_string();
    let header: Metadata = frame
        .header
        .iter()
        .filter(|(k, _)| !headers::is_reserved(k))
        .collect();
    Ok(Response {
        header,
        content_type,
        body: frame.body,
    })
}

/// Wraps a subscriber's handler in the subscriber middleware (a delivery becomes a
/// `Request` whose endpoint is the topic).
pub fn subscriber_handler(
    handler: broker::Handler,
    layers: Vec<RpcLayer>,
    service: String,
) -> broker::Handler {
    if layers.is_empty() {
        return handler;
    }
    Arc::new(move |delivery: broker::Delivery| {
        let handler = handler.clone();
        let layers = layers.clone();
        let service = service.clone();
        Box::pin(async move {
            let message = Message {
                header: delivery.message.header.iter().collect(),
                body: delivery.message.body.clone(),
            };
            let mut request = request_from_frame(&message, &service)?;
            request.endpoint = delivery.topic.clone();
            let inner = middleware::service_fn(move |_req: Request| {
                let handler = handler.clone();
                let delivery = delivery.clone();
                async move { handler(delivery).await.map(|_| Response::default()) }
            });
            middleware::call(&middleware::stack(&layers, inner), request)
                .await
                .map(|_| ())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_header_forms() {
        assert_eq!(parse_timeout("100000000"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_timeout("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_timeout(" 2s "), Ok(Duration::from_secs(2)));
        for bad in [
            "0",
            "0s",
            "-5",
            "-5s",
            "abc",
            "",
            "1.5.2",
            "18446744073709551615s",
            "584542046090y",
        ] {
            let err = parse_timeout(bad).expect_err(bad);
            assert_eq!(err.code, 400, "{bad}: {err}");
            assert!(err.detail.contains("Timeout header"), "{bad}: {err}");
            assert!(err.detail.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
    }

    #[test]
    fn an_invalid_timeout_makes_the_request_a_400() {
        for bad in ["0", "-5", "abc", "18446744073709551615s"] {
            let frame = Message::new("{}").with_header(headers::TIMEOUT, bad);
            let err = request_from_frame(&frame, "own").expect_err(bad);
            assert_eq!(err.code, 400);
        }
    }

    #[test]
    fn request_round_trips_through_a_frame() {
        let mut request = Request::new("greeter", "Greeter.Hello", "{}");
        request.context.metadata.insert("X-User", "ann");
        let id = ByteString::from_static("id-1");
        let frame = request_frame(&request, &id, Some(Duration::from_secs(1)));
        let back = request_from_frame(&frame, "other").unwrap();
        assert_eq!(back.service, "greeter");
        assert_eq!(back.endpoint, "Greeter.Hello");
        assert_eq!(back.context.metadata.get("x-user"), Some("ann"));
        assert!(back.context.deadline.is_some());
        assert!(!back.stream);
        let reply = reply_headers(frame.header);
        assert_eq!(reply.len(), 3);
        let err = response_from_frame(response_frame(reply, Err(Error::not_found("x", "y"))));
        assert_eq!(err.unwrap_err().code, 404);
    }

    #[test]
    fn request_headers_in_any_case_and_repeated() {
        let mut header = HeaderMap::new();
        for (k, v) in [
            ("micro-endpoint", "Greeter.Old"),
            ("MICRO-ENDPOINT", "Greeter.Hello"),
            ("content-type", "application/protobuf"),
            ("timeout", "5s"),
            ("micro-stream", "true"),
            ("x-trace", "t1"),
            ("Micro-Id", "7"),
        ] {
            header.append(ByteString::from(k), ByteString::from(v));
        }
        let frame = Message {
            header,
            body: Default::default(),
        };
        let request = request_from_frame(&frame, "own").unwrap();
        assert_eq!(
            request.service, "own",
            "no Micro-Service: the server's own name"
        );
        assert_eq!(
            request.endpoint, "Greeter.Hello",
            "the last of a repeated header"
        );
        assert_eq!(request.content_type, "application/protobuf");
        assert!(request.stream);
        assert!(request.context.deadline.is_some());
        let metadata: Vec<_> = request.context.metadata.iter().collect();
        assert_eq!(metadata, [("x-trace", "t1")], "only non-micro headers");
        let bare = request_from_frame(&Message::new("{}"), "own").unwrap();
        assert_eq!(bare.content_type, micro_core::codec::JSON);
        assert!(bare.endpoint.is_empty() && !bare.stream && bare.context.deadline.is_none());
    }

    #[test]
    fn many_headers_become_metadata_once_each() {
        // Tens of thousands of headers, every key twice in another case (the hashed path of
        // merging repeated keys): each key once, with its last value.
        let mut header = HeaderMap::new();
        for round in ["a", "b"] {
            for i in 0..30_000 {
                let key = if round == "a" {
                    format!("x-{i}")
                } else {
                    format!("X-{i}")
                };
                header.append(ByteString::from(key), ByteString::from(round));
            }
        }
        let frame = Message {
            header,
            body: Default::default(),
        };
        let request = request_from_frame(&frame, "own").unwrap();
        assert_eq!(request.context.metadata.len(), 30_000);
        assert_eq!(request.context.metadata.get("X-29999"), Some("b"));
        let back = request_frame(&request, &ByteString::from_static("1"), None);
        assert_eq!(
            back.header.len(),
            30_000 + 4,
            "metadata plus service, endpoint, id, type"
        );
        // A handler that answers with all of it: appended to the reply's three headers.
        let response = Response {
            header: request.context.metadata.clone(),
            content_type: micro_core::codec::JSON.to_string(),
            body: Default::default(),
        };
        let answer = response_frame(reply_headers(back.header), Ok(response));
        assert_eq!(
            answer.header.len(),
            3 + 30_000 + 1,
            "id, service, endpoint, metadata, type"
        );
        assert_eq!(answer.header.get("x-5"), Some("b"));
    }
}
