//! A hand-written peer speaking the documented wire format on a raw socket, shared by the
//! wire-level tests.

#![allow(dead_code)] // each test file uses part of it

use bytes::BytesMut;
use micro_tcp::frame::{self, Frame};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Longest wait of any single step.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Awaits `f`, failing the test (naming `what`) after [`DEADLINE`].
pub async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing after {DEADLINE:?}"))
}

/// Reads and writes frames on a raw socket.
pub struct Peer {
    pub socket: TcpStream,
    pub buf: BytesMut,
}

impl Peer {
    /// A peer on a connected socket.
    pub fn new(socket: TcpStream) -> Self {
        Peer {
            socket,
            buf: BytesMut::new(),
        }
    }

    /// The next frame; `None` once the other side closed.
    pub async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = frame::decode(&mut self.buf, 1 << 20).unwrap() {
                return Some(f);
            }
            let n = within("peer read", self.socket.read_buf(&mut self.buf))
                .await
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
        }
    }

    /// Writes one frame.
    pub async fn send(&mut self, f: &Frame) {
        let mut buf = BytesMut::new();
        frame::encode(f, &mut buf).unwrap();
        self.socket.write_all(&buf).await.unwrap();
    }
}

/// A raw listener on 127.0.0.1:0 and its address.
pub async fn raw_server() -> (String, TcpListener) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    (listener.local_addr().unwrap().to_string(), listener)
}

/// The next connection to `listener`, as a peer.
pub async fn accept(listener: &TcpListener) -> Peer {
    let (socket, _) = within("accept", listener.accept()).await.unwrap();
    Peer::new(socket)
}
