//! The transport conformance suite against [`MemoryTransport`], plus memory-specific
//! behaviour.

use micro_core::transport::accept_streams;
use micro_core::transport::{DialOptions, Message, Transport};
use micro_memory::MemoryTransport;
use std::sync::Arc;

micro_conformance::transport_suite!(
    mod conformance(flavor = "multi_thread", worker_threads = 4),
    async || Arc::new(MemoryTransport::new()) as Arc<dyn Transport>,
);

micro_conformance::transport_suite!(
    mod conformance_current_thread(flavor = "current_thread"),
    async || Arc::new(MemoryTransport::new()) as Arc<dyn Transport>,
);

#[tokio::test]
async fn addresses_generated_given_and_conflicting() {
    let t = MemoryTransport::new();
    let a = t.listen("127.0.0.1:0").await.unwrap();
    let b = t.listen(":0").await.unwrap();
    let c = t.listen("").await.unwrap();
    assert!(a.address().starts_with("memory:"));
    assert_ne!(a.address(), b.address());
    assert_ne!(b.address(), c.address());

    let named = t.listen("greeter").await.unwrap();
    assert_eq!(named.address(), "greeter");
    let err = t.listen("greeter").await.err().unwrap();
    assert_eq!(err.code, 409);
    drop(named);
    let again = t.listen("greeter").await.unwrap();
    assert_eq!(again.address(), "greeter");
}

#[tokio::test]
async fn dial_unknown_is_503_naming_the_address() {
    let t = MemoryTransport::new();
    let err = t
        .dial("memory:404", DialOptions::default())
        .await
        .err()
        .unwrap();
    assert_eq!(err.code, 503);
    assert!(err.detail.contains("memory:404"), "{err}");
}

#[tokio::test]
async fn clones_share_listeners_and_values_do_not() {
    let t = MemoryTransport::new();
    let mut listener = accept_streams(t.listen("127.0.0.1:0").await.unwrap());
    let address = listener.address();
    assert!(
        MemoryTransport::new()
            .dial(&address, DialOptions::default())
            .await
            .is_err()
    );
    let conn = t
        .clone()
        .dial(&address, DialOptions::default())
        .await
        .unwrap();
    let client = conn.open_stream().await.unwrap();
    client.sender.send(Message::new("hi")).await.unwrap();
    let mut server = listener.accept().await.unwrap();
    assert_eq!(server.receiver.recv().await.unwrap().unwrap().body, "hi");
}

#[tokio::test]
async fn open_stream_fails_after_the_listener_is_dropped() {
    let t = MemoryTransport::new();
    let listener = t.listen("127.0.0.1:0").await.unwrap();
    let conn = t
        .dial(&listener.address(), DialOptions::default())
        .await
        .unwrap();
    drop(listener);
    assert!(conn.is_closed());
    assert_eq!(conn.open_stream().await.err().unwrap().code, 503);
}

#[tokio::test]
async fn dropping_the_receiver_closes_the_peer_sender() {
    let t = MemoryTransport::new();
    let mut listener = accept_streams(t.listen("127.0.0.1:0").await.unwrap());
    let conn = t
        .dial(&listener.address(), DialOptions::default())
        .await
        .unwrap();
    let client = conn.open_stream().await.unwrap();
    // A listener hands a stream over once its opening frame came.
    client.sender.send(Message::new("open")).await.unwrap();
    let server = listener.accept().await.unwrap();
    drop(server.receiver);
    let mut failed = false;
    for _ in 0..1000 {
        if client.sender.send(Message::new("x")).await.is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed, "send should fail once the peer's receiver is gone");
}
