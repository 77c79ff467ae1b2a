//! Plain HTTP clients (the real `curl` binary, hyper's HTTP/1.1 client, raw sockets) against
//! the HTTP transport's listener: unary mapping, error statuses, bad input.

mod common;

use bytes::Bytes;
use common::*;
use micro_core::Error;
use micro_core::transport::Message;
use micro_http::frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn curl_call(address: &str) -> Vec<String> {
    [
        "-H",
        "Content-Type: application/json",
        "-H",
        "Micro-Endpoint: Greeter.Hello",
        "-d",
        r#"{"name":"John"}"#,
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("http://{address}/")])
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_calls_a_handler() {
    let listener = listen(&transport(4 << 20)).await;
    let address = listener.address();
    let (server, mut seen) = greeter(listener);

    let (status, body) = curl(curl_call(&address)).await;
    assert_eq!(status, 200);
    assert_eq!(body, HELLO);

    let request = within("handler saw the request", seen.recv())
        .await
        .unwrap();
    assert_eq!(request.body, Bytes::from(r#"{"name":"John"}"#));
    assert_eq!(request.header("Micro-Endpoint"), Some("Greeter.Hello"));
    assert_eq!(request.header("Content-Type"), Some("application/json"));
    // Keys come in Go's canonical form; HTTP-only headers are not frame headers.
    assert!(request.header.contains_key("Micro-Endpoint"));
    assert!(request.header("Host").is_none() && request.header("Content-Length").is_none());

    // The same over h2c with prior knowledge.
    let mut args = vec!["--http2-prior-knowledge".to_string()];
    args.extend(curl_call(&address));
    let (status, body) = curl(args).await;
    assert_eq!((status, body.as_str()), (200, HELLO));
    server.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn hyper_http1_keep_alive_client() {
    let listener = listen(&transport(4 << 20)).await;
    let address = listener.address();
    let (server, mut seen) = greeter(listener);
    let headers = [
        ("Content-Type", "application/json"),
        ("Micro-Endpoint", "Greeter.Hello"),
        ("X-Trace", "abc"),
    ];
    let requests = (0..3)
        .map(|_| post(&address, &headers, r#"{"name":"John"}"#))
        .collect();
    let replies = http1(&address, requests).await;
    assert_eq!(replies.len(), 3);
    for reply in replies {
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, Bytes::from(HELLO));
        assert_eq!(
            reply.headers.get("content-type").unwrap(),
            "application/json"
        );
    }
    let request = within("handler saw the request", seen.recv())
        .await
        .unwrap();
    assert_eq!(request.header("X-Trace"), Some("abc"));
    server.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn error_frames_set_the_status() {
    let listener = listen(&transport(4 << 20)).await;
    let address = listener.address();
    let server = serve(listener, |mut stream| async move {
        let Some(Ok(request)) = stream.receiver.recv().await else {
            return;
        };
        match request.header("Micro-Endpoint") {
            Some("Missing.Thing") => {
                let err = Error::not_found("greeter", "no such thing");
                let reply = Message::default().with_header("Micro-Error", err.to_json());
                let _ = stream.sender.send(reply).await;
            }
            Some("Odd.Code") => {
                let reply =
                    Message::new("partial").with_header("Micro-Error", "plain text failure");
                let _ = stream.sender.send(reply).await;
            }
            // Drop the stream without answering.
            _ => drop(stream),
        }
    });

    let requests = vec![
        post(&address, &[("Micro-Endpoint", "Missing.Thing")], "{}"),
        post(&address, &[("Micro-Endpoint", "Odd.Code")], "{}"),
        post(&address, &[("Micro-Endpoint", "Silent.Handler")], "{}"),
    ];
    let replies = http1(&address, requests).await;

    assert_eq!(replies[0].status, 404);
    let err: Error = serde_json::from_slice(&replies[0].body).expect("JSON error body");
    assert_eq!((err.code, err.detail.as_str()), (404, "no such thing"));
    assert!(replies[0].headers.contains_key("micro-error"));

    // Not a JSON error: 500, and a non-empty body is kept as sent.
    assert_eq!(replies[1].status, 500);
    assert_eq!(replies[1].body, Bytes::from("partial"));

    assert_eq!(replies[2].status, 500);
    let err: Error = serde_json::from_slice(&replies[2].body).expect("JSON error body");
    assert_eq!(err.code, 500);
    assert!(replies[2].headers.contains_key("micro-error"));
    server.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_method_and_oversize_are_refused() {
    let listener = listen(&transport(1024)).await;
    let address = listener.address();
    let (server, _seen) = greeter(listener);

    let get = http::Request::get(format!("http://{address}/"))
        .header("Host", &address)
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let big = post(
        &address,
        &[("Micro-Endpoint", "Greeter.Hello")],
        vec![b'x'; 2048],
    );
    let fine = post(
        &address,
        &[("Micro-Endpoint", "Greeter.Hello")],
        vec![b'x'; 1024],
    );
    let replies = http1(&address, vec![get, fine]).await;
    assert_eq!(replies[0].status, 405);
    let err: Error = serde_json::from_slice(&replies[0].body).expect("JSON error body");
    assert_eq!(err.code, 405);
    assert_eq!(replies[0].headers.get("allow").unwrap(), "POST");
    assert_eq!(
        replies[1].status, 200,
        "the connection still serves after a 405"
    );

    let replies = http1(&address, vec![big]).await;
    assert_eq!(replies[0].status, 413);
    let err: Error = serde_json::from_slice(&replies[0].body).expect("JSON error body");
    assert_eq!(err.code, 413);

    // Chunked, so the size is only known while reading.
    let mut tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
    let chunk = "y".repeat(1500);
    let raw = format!(
        "POST / HTTP/1.1\r\nHost: {address}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    tcp.write_all(raw.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    within("chunked 413", tcp.read_to_end(&mut response))
        .await
        .unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 413"), "got {response}");

    // Garbage instead of HTTP: the connection is dropped, the server lives on.
    let mut junk = tokio::net::TcpStream::connect(&address).await.unwrap();
    junk.write_all(b"\x00\x01\x02 not http at all\r\n\r\n")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let _ = within("junk connection closed", junk.read_to_end(&mut sink)).await;

    let (status, body) = curl(vec![
        "-H".into(),
        "Micro-Endpoint: Greeter.Hello".into(),
        "-d".into(),
        "{}".into(),
        format!("http://{address}/"),
    ])
    .await;
    assert_eq!((status, body.as_str()), (200, HELLO));
    server.abort();
}

/// Reads every frame of a framed response body.
fn frames_of(body: &[u8]) -> Vec<frame::Frame> {
    let mut decoder = frame::Decoder::new(1 << 20);
    decoder.push(body);
    let mut frames = Vec::new();
    while let Some(frame) = decoder.next_frame().expect("well-formed response frames") {
        frames.push(frame);
    }
    assert!(!decoder.has_partial(), "response ended inside a frame");
    frames
}

#[tokio::test(flavor = "multi_thread")]
async fn streaming_over_http1_request_then_response() {
    let listener = listen(&transport(4 << 20)).await;
    let address = listener.address();
    let server = serve(listener, |mut stream| async move {
        let mut count = 0;
        while let Some(Ok(frame)) = stream.receiver.recv().await {
            count += 1;
            let reply = Message::new(frame.body).with_header("Seen", count.to_string());
            if stream.sender.send(reply).await.is_err() {
                return;
            }
        }
    });
    let mut body = Vec::new();
    for i in 0..3 {
        let message =
            Message::new(format!("frame {i}")).with_header("Micro-Endpoint", "Echo.Stream");
        body.extend_from_slice(&frame::encode(0, message.clone(), 1 << 20).unwrap());
    }
    body.extend_from_slice(&frame::end());
    let replies = http1(
        &address,
        vec![post(
            &address,
            &[("Micro-Stream", "1"), ("Micro-Endpoint", "Echo.Stream")],
            body,
        )],
    )
    .await;
    assert_eq!(replies[0].status, 200);
    assert_eq!(
        replies[0].headers.get("content-type").unwrap(),
        micro_http::FRAMES_CONTENT_TYPE
    );
    let frames = frames_of(&replies[0].body);
    assert_eq!(frames.len(), 4, "3 replies and END: {frames:?}");
    for (i, frame) in frames[..3].iter().enumerate() {
        assert_eq!(frame.message.body, Bytes::from(format!("frame {i}")));
        assert_eq!(
            frame.message.header("Seen"),
            Some((i + 1).to_string().as_str())
        );
    }
    assert!(frames[3].is_end());
    server.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_frames_fail_one_exchange_only() {
    let listener = listen(&transport(4 << 20)).await;
    let address = listener.address();
    let (errors_tx, mut errors) = tokio::sync::mpsc::unbounded_channel();
    let server = serve(listener, move |mut stream| {
        let errors_tx = errors_tx.clone();
        async move {
            while let Some(frame) = stream.receiver.recv().await {
                match frame {
                    Ok(frame) => {
                        let reply =
                            Message::new(HELLO).with_header("Echo", frame.body.len().to_string());
                        let _ = stream.sender.send(reply).await;
                    }
                    Err(err) => {
                        let _ = errors_tx.send(err);
                    }
                }
            }
        }
    });
    // A frame whose length is shorter than the fixed part, then one announcing a header
    // that is not there.
    let bad_bodies: Vec<Vec<u8>> = vec![
        vec![0, 0, 0, 2, 0, 0],
        vec![0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 5],
        // A good frame cut short by the end of the body.
        frame::encode(0, Message::new("cut"), 1024).unwrap()[..6].to_vec(),
    ];
    for bad in bad_bodies {
        let replies = http1(
            &address,
            vec![post(&address, &[("Micro-Stream", "1")], bad)],
        )
        .await;
        assert_eq!(
            replies[0].status, 200,
            "the head is sent before the body is read"
        );
        let frames = frames_of(&replies[0].body);
        let reset = frames.iter().find(|f| f.is_reset()).expect("a RESET frame");
        let err = Error::parse(reset.message.header("Micro-Error").expect("Micro-Error"));
        assert_eq!(err.code, 400, "{err}");
        // A stream that fails before its opening frame never reaches a handler.
        assert!(
            errors.try_recv().is_err(),
            "no exchange for a broken opening"
        );
    }
    // Other exchanges and connections are still served.
    let (status, body) = curl(curl_call(&address)).await;
    assert_eq!((status, body.as_str()), (200, HELLO));
    server.abort();
}

/// The streaming example of docs/protocol-http.md, run through `sh`, `printf` and `curl`.
#[tokio::test(flavor = "multi_thread")]
async fn documented_curl_stream_example() {
    let listener = listen(&transport(4 << 20)).await;
    let address = listener.address();
    let server = serve(listener, |mut stream| async move {
        while let Some(Ok(frame)) = stream.receiver.recv().await {
            if stream.sender.send(frame).await.is_err() {
                return;
            }
        }
    });
    let frames = r"\000\000\000\011\000\000\000\000\000\000\000{}\000\000\000\007\000\000\000\000\001\000\000";
    for http in ["--http1.1", "--http2-prior-knowledge"] {
        let script = format!(
            "printf '{frames}' | curl -sS --noproxy '*' --max-time 10 {http} \
             -H 'Micro-Stream: 1' -H 'Micro-Endpoint: Echo.Stream' \
             --data-binary @- http://{address}/"
        );
        let output = within(
            "sh -c curl",
            tokio::task::spawn_blocking(move || {
                std::process::Command::new("sh")
                    .arg("-c")
                    .arg(script)
                    .output()
            }),
        )
        .await
        .unwrap()
        .expect("run sh");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let expected: &[u8] = b"\0\0\0\x09\0\0\0\0\0\0\0{}\0\0\0\x07\0\0\0\0\x01\0\0";
        assert_eq!(output.stdout, expected, "{http}");
    }
    server.abort();
}
