//! Many unary exchanges over ONE cached h2c connection. Each HTTP/2 stream must end cleanly
//! (END_STREAM both ways), not with a reset: h2 closes a connection whose peer made it reset
//! too many streams (GOAWAY `too_many_internal_resets`, after about 1024), and every call in
//! flight then fails. Also: a connection closed by the peer is not handed out again.

mod common;

use bytes::Bytes;
use common::*;
use micro_core::transport::{Connection, DialOptions, Message, Transport};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Exchanges per test: well above h2's default limit of 1024 local resets per connection.
const CALLS: usize = 5000;
/// Concurrent callers in the concurrent tests.
const TASKS: usize = 64;

/// How the caller finishes an exchange after the reply frame.
#[derive(Clone, Copy, Debug)]
enum Finish {
    /// Waits for the end of the stream (`None`).
    ReadEnd,
    /// Drops the stream right after the reply, as micro's mucp client does.
    DropAfterReply,
}

/// An echo server that, like a unary handler, reads one frame, answers it and drops the
/// stream without reading the client's end.
fn unary_server(listener: Box<dyn micro_core::transport::Listener>) {
    serve(listener, |mut stream| async move {
        let Some(Ok(request)) = stream.receiver.recv().await else {
            return;
        };
        let _ = stream.sender.send(request).await;
    });
}

/// One exchange as micro's mucp client makes it: open a stream, send one frame, drop the
/// sender, take the reply (and the end, for [`Finish::ReadEnd`]).
async fn exchange(conn: &dyn Connection, i: usize, finish: Finish) -> Result<(), String> {
    let stream = conn
        .open_stream()
        .await
        .map_err(|e| format!("call {i}: open_stream: {e}"))?;
    let body = format!("call {i}");
    stream
        .sender
        .send(Message::new(body.clone()).with_header("Micro-Endpoint", "Echo.Call"))
        .await
        .map_err(|e| format!("call {i}: send: {e}"))?;
    drop(stream.sender);
    let mut receiver = stream.receiver;
    let reply = match within("reply", receiver.recv()).await {
        Some(Ok(reply)) => reply,
        Some(Err(e)) => return Err(format!("call {i}: {e}")),
        None => return Err(format!("call {i}: the stream ended without a reply")),
    };
    if reply.body != body.as_bytes() || reply.header("Micro-Endpoint") != Some("Echo.Call") {
        return Err(format!("call {i}: wrong reply {reply:?}"));
    }
    match finish {
        Finish::ReadEnd => match within("end", receiver.recv()).await {
            None => Ok(()),
            Some(other) => Err(format!("call {i}: expected the end, got {other:?}")),
        },
        Finish::DropAfterReply => Ok(()),
    }
}

/// Which server the calls go to.
#[derive(Clone, Copy, Debug)]
enum Peer {
    /// This transport's listener.
    Listener,
    /// [`lagging_server`]: its END_STREAM comes a little after its END frame.
    Lagging,
}

/// A server, and ONE connection to it from one transport.
async fn setup(peer: Peer) -> (micro_http::HttpTransport, String, Arc<dyn Connection>) {
    let t = transport(4 << 20);
    let address = match peer {
        Peer::Listener => {
            let listener = listen(&t).await;
            let address = listener.address();
            unary_server(listener);
            address
        }
        Peer::Lagging => lagging_server(Duration::from_millis(5)).await,
    };
    let conn = t
        .dial(&address, DialOptions::default())
        .await
        .expect("dial");
    (t, address, Arc::from(conn))
}

/// A minimal h2c server written frame by frame. It answers each framed request, once the
/// request's END_STREAM arrived, with the request's own frames (an echo), then sends the
/// response's END_STREAM `lag` later, whatever happened meanwhile (a RST_STREAM from the
/// client included): what a client sees under load, when the frames of a response are spread
/// over several reads and its reset crosses the server's last frame on the wire.
async fn lagging_server(lag: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = tcp.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((socket, _)) = tcp.accept().await {
            tokio::spawn(async move {
                let _ = socket.set_nodelay(true);
                let (mut read, mut write) = socket.into_split();
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
                tokio::spawn(async move {
                    while let Some(bytes) = rx.recv().await {
                        if write.write_all(&bytes).await.is_err() {
                            return;
                        }
                    }
                });
                let mut preface = [0u8; 24];
                if read.read_exact(&mut preface).await.is_err() {
                    return;
                }
                let _ = tx.send(h2_frame(4, 0, 0, &[]));
                let mut bodies: std::collections::HashMap<u32, Vec<u8>> = Default::default();
                loop {
                    let mut head = [0u8; 9];
                    if read.read_exact(&mut head).await.is_err() {
                        return;
                    }
                    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
                    let (kind, flags) = (head[3], head[4]);
                    let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
                    let mut payload = vec![0u8; len];
                    if read.read_exact(&mut payload).await.is_err() {
                        return;
                    }
                    match kind {
                        // SETTINGS (not an ACK): acknowledge.
                        4 if flags & 1 == 0 => {
                            let _ = tx.send(h2_frame(4, 1, 0, &[]));
                        }
                        // HEADERS: a new request (its headers are not needed).
                        1 => {
                            bodies.insert(id, Vec::new());
                        }
                        // DATA: collect; give the connection window back.
                        0 => {
                            if len > 0 {
                                let _ = tx.send(h2_frame(8, 0, 0, &(len as u32).to_be_bytes()));
                            }
                            let body = bodies.entry(id).or_default();
                            body.extend_from_slice(&payload);
                            if flags & 1 == 0 {
                                continue;
                            }
                            let body = bodies.remove(&id).unwrap_or_default();
                            // The request's frames, then END, each in its own DATA frame, as
                            // the micro server writes them; `:status: 200` is HPACK 0x88.
                            let end = micro_http::frame::end();
                            let frames = body.strip_suffix(&end[..]).unwrap_or(&body);
                            let mut reply = h2_frame(1, 4, id, &[0x88]);
                            reply.extend(h2_frame(0, 0, id, frames));
                            reply.extend(h2_frame(0, 0, id, &end));
                            let _ = tx.send(reply);
                            let tx = tx.clone();
                            tokio::spawn(async move {
                                tokio::time::sleep(lag).await;
                                let _ = tx.send(h2_frame(0, 1, id, &[]));
                            });
                        }
                        // GOAWAY from the client: it gave up on the connection.
                        7 => return,
                        _ => {}
                    }
                }
            });
        }
    });
    address
}

/// One HTTP/2 frame.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

async fn sequential(peer: Peer, finish: Finish) {
    let (t, address, conn) = setup(peer).await;
    for i in 0..CALLS {
        if let Err(err) = exchange(conn.as_ref(), i, finish).await {
            panic!("{finish:?}: {err}");
        }
    }
    assert!(!conn.is_closed(), "{finish:?}: the connection was closed");
    // The cache still hands out the same, healthy connection.
    let again = t.dial(&address, DialOptions::default()).await.unwrap();
    exchange(again.as_ref(), CALLS, finish).await.unwrap();
}

async fn concurrent(peer: Peer, finish: Finish) {
    let (_t, _address, conn) = setup(peer).await;
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (conn, next) = (conn.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= CALLS {
                    return Ok::<(), String>(());
                }
                exchange(conn.as_ref(), i, finish).await?;
            }
        }));
    }
    let mut failures = Vec::new();
    for task in tasks {
        if let Err(err) = task.await.expect("caller task") {
            failures.push(err);
        }
    }
    assert!(
        failures.is_empty(),
        "{finish:?}: {} of {TASKS} callers failed, first: {}",
        failures.len(),
        failures[0]
    );
    assert!(!conn.is_closed(), "{finish:?}: the connection was closed");
}

#[tokio::test(flavor = "multi_thread")]
async fn listener_sequential_calls_reading_the_end() {
    sequential(Peer::Listener, Finish::ReadEnd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listener_concurrent_calls_reading_the_end() {
    concurrent(Peer::Listener, Finish::ReadEnd).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn listener_sequential_calls_dropping_after_the_reply() {
    sequential(Peer::Listener, Finish::DropAfterReply).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listener_concurrent_calls_dropping_after_the_reply() {
    concurrent(Peer::Listener, Finish::DropAfterReply).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lagging_server_sequential_calls_reading_the_end() {
    sequential(Peer::Lagging, Finish::ReadEnd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lagging_server_concurrent_calls_reading_the_end() {
    concurrent(Peer::Lagging, Finish::ReadEnd).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lagging_server_sequential_calls_dropping_after_the_reply() {
    sequential(Peer::Lagging, Finish::DropAfterReply).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lagging_server_concurrent_calls_dropping_after_the_reply() {
    concurrent(Peer::Lagging, Finish::DropAfterReply).await;
}

/// A stream whose caller drops it before the server answers is cancelled at once: the
/// server's handler sees its sends fail instead of the stream staying open.
#[tokio::test(flavor = "multi_thread")]
async fn abandoned_streams_are_cancelled() {
    let t = transport(4 << 20);
    let mut listener = micro_core::transport::accept_streams(listen(&t).await);
    let address = listener.address();
    let conn = t.dial(&address, DialOptions::default()).await.unwrap();
    let client = conn.open_stream().await.unwrap();
    client.sender.send(Message::new("hello")).await.unwrap();
    let mut accepted = within("accept", listener.accept()).await.unwrap();
    within("request", accepted.receiver.recv())
        .await
        .unwrap()
        .unwrap();
    accepted.sender.send(Message::new("first")).await.unwrap();
    // The caller gives up without reading anything.
    drop(client);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if accepted.sender.send(Message::new("late")).await.is_err() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the abandoned stream was never cancelled"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The connection is unaffected.
    tokio::spawn(async move {
        while let Some(mut stream) = listener.accept().await {
            if let Some(Ok(request)) = stream.receiver.recv().await {
                let _ = stream.sender.send(request).await;
            }
        }
    });
    exchange(conn.as_ref(), 0, Finish::ReadEnd).await.unwrap();
    assert!(!conn.is_closed());
}

/// The server reads a framed request body up to the client's END_STREAM even when the
/// handler is done with it (here: it read one frame and dropped the stream) and the END_STREAM
/// comes after the END frame: the HTTP/2 stream ends cleanly instead of being reset.
#[tokio::test(flavor = "multi_thread")]
async fn the_server_waits_for_the_end_of_the_request() {
    let t = transport(4 << 20);
    let listener = listen(&t).await;
    let address = listener.address();
    unary_server(listener);
    let tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    for i in 0..20 {
        let mut client = within("ready", client.clone().ready()).await.unwrap();
        let request = http::Request::post(format!("http://{address}/"))
            .header("Micro-Stream", "1")
            .body(())
            .unwrap();
        let (response, mut send) = client.send_request(request, false).unwrap();
        let message = Message::new(format!("call {i}")).with_header("Micro-Endpoint", "Echo.Call");
        let mut frames = micro_http::frame::encode(0, message, 1 << 20)
            .unwrap()
            .to_vec();
        frames.extend_from_slice(&micro_http::frame::end());
        // The whole micro stream (frame, END), but not the HTTP/2 END_STREAM yet.
        send.send_data(Bytes::from(frames), false).unwrap();
        let response = within("response", response).await.unwrap();
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let mut got = Vec::new();
        while let Some(chunk) = within("response body", body.data()).await {
            let chunk = chunk.unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
            got.extend_from_slice(&chunk);
        }
        assert!(got.ends_with(&micro_http::frame::end()), "{got:?}");
        // The response is complete; the server must still be waiting for our END_STREAM.
        let reset = tokio::time::timeout(
            Duration::from_millis(100),
            std::future::poll_fn(|cx| send.poll_reset(cx)),
        )
        .await;
        assert!(
            reset.is_err(),
            "call {i}: the server reset the stream: {reset:?}"
        );
        send.send_data(Bytes::new(), true).unwrap();
    }
}

/// After the peer closes the connection (listener dropped: GOAWAY), the cached connection
/// is no longer handed out: the next dial to a listener restarted on the same address
/// connects again and calls work.
#[tokio::test(flavor = "multi_thread")]
async fn dial_after_the_peer_closed_the_connection() {
    let t = transport(4 << 20);
    let listener = listen(&t).await;
    let address = listener.address();
    let conn = t.dial(&address, DialOptions::default()).await.unwrap();
    // Nothing accepts: dropping the listener shuts the idle connection down.
    drop(listener);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !conn.is_closed() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the connection was never marked closed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let listener = t.listen(&address).await.expect("listen again");
    unary_server(listener);
    let fresh = t.dial(&address, DialOptions::default()).await.unwrap();
    assert!(!fresh.is_closed());
    exchange(fresh.as_ref(), 1, Finish::ReadEnd).await.unwrap();
    assert!(conn.open_stream().await.is_err());
}
