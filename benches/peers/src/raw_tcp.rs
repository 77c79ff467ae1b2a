//! The raw TCP peer: length-prefixed frames multiplexed by request id on one connection.
//!
//! A frame is a `u32` big-endian length (of what follows), a `u64` big-endian request id and
//! the payload. The server echoes each frame as it is; it reads what the socket has, echoes
//! every complete frame in one write, and reads again: the least work an RPC over TCP can do.
//! The client has one writer task (batching the frames queued by concurrent callers into one
//! write) and one reader task (completing callers by id).

use crate::{BoxError, Caller, PAYLOAD, check_echo};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// Largest frame accepted (a guard against garbage, not a protocol limit).
const MAX_FRAME: usize = 16 << 20;
/// Bytes after the length prefix that are not payload: the request id.
const ID_LEN: usize = 8;

/// Splits one complete frame (length prefix included) off the front of `buf`.
fn next_frame(buf: &mut BytesMut) -> io::Result<Option<BytesMut>> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if !(ID_LEN..=MAX_FRAME).contains(&len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad frame length",
        ));
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    Ok(Some(buf.split_to(4 + len)))
}

/// Serves the echo on `listener` until the process ends.
pub async fn serve(listener: TcpListener) -> Result<(), BoxError> {
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            // A peer that goes away ends its connection; nothing to report.
            let _ = echo_connection(stream).await;
        });
    }
}

async fn echo_connection(mut stream: TcpStream) -> io::Result<()> {
    let mut input = BytesMut::with_capacity(64 * 1024);
    let mut output = BytesMut::with_capacity(64 * 1024);
    loop {
        if stream.read_buf(&mut input).await? == 0 {
            return Ok(());
        }
        while let Some(frame) = next_frame(&mut input)? {
            output.extend_from_slice(&frame);
        }
        if !output.is_empty() {
            stream.write_all(&output).await?;
            output.clear();
        }
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Bytes>>>>;

/// A client on one connection, multiplexed by request id.
pub struct RawCaller {
    frames: mpsc::Sender<Bytes>,
    pending: Pending,
    next_id: AtomicU64,
}

impl RawCaller {
    /// Connects to `addr` (`127.0.0.1:port`).
    pub async fn connect(addr: &str) -> Result<Self, BoxError> {
        let stream =
            tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await??;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        let (frames, queue) = mpsc::channel(1024);
        let pending: Pending = Arc::default();
        tokio::spawn(write_frames(write, queue));
        let reader_pending = pending.clone();
        tokio::spawn(async move {
            // On any error the connection is done: dropping the waiters fails their calls.
            let _ = read_frames(read, &reader_pending).await;
            if let Ok(mut map) = reader_pending.lock() {
                map.clear();
            }
        });
        Ok(RawCaller {
            frames,
            pending,
            next_id: AtomicU64::new(1),
        })
    }
}

async fn write_frames(mut write: OwnedWriteHalf, mut queue: mpsc::Receiver<Bytes>) {
    let mut batch = BytesMut::with_capacity(64 * 1024);
    while let Some(frame) = queue.recv().await {
        batch.extend_from_slice(&frame);
        while batch.len() < 64 * 1024 {
            match queue.try_recv() {
                Ok(frame) => batch.extend_from_slice(&frame),
                Err(_) => break,
            }
        }
        if write.write_all(&batch).await.is_err() {
            return;
        }
        batch.clear();
    }
}

async fn read_frames(mut read: OwnedReadHalf, pending: &Pending) -> io::Result<()> {
    let mut input = BytesMut::with_capacity(64 * 1024);
    loop {
        if read.read_buf(&mut input).await? == 0 {
            return Ok(());
        }
        while let Some(mut frame) = next_frame(&mut input)? {
            frame.advance(4);
            let id = frame.get_u64();
            let waiter = pending
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?
                .remove(&id);
            if let Some(waiter) = waiter {
                let _ = waiter.send(frame.freeze());
            }
        }
    }
}

impl Caller for RawCaller {
    async fn call(&self) -> Result<(), String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (done, reply) = oneshot::channel();
        self.pending
            .lock()
            .map_err(|_| "poisoned".to_string())?
            .insert(id, done);
        let mut frame = BytesMut::with_capacity(4 + ID_LEN + PAYLOAD.len());
        frame.put_u32((ID_LEN + PAYLOAD.len()) as u32);
        frame.put_u64(id);
        frame.put_slice(PAYLOAD.as_bytes());
        if self.frames.send(frame.freeze()).await.is_err() {
            return Err("connection closed".into());
        }
        match reply.await {
            Ok(data) => check_echo(&data),
            Err(_) => Err("connection closed".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_only_when_complete() {
        let mut buf = BytesMut::new();
        buf.put_u32(10);
        buf.put_u64(7);
        assert!(next_frame(&mut buf).unwrap().is_none());
        buf.put_slice(b"hi");
        buf.put_u32(8);
        let frame = next_frame(&mut buf).unwrap().unwrap();
        assert_eq!(frame.len(), 14);
        assert_eq!(buf.len(), 4);
        buf.clear();
        buf.put_u32(3);
        assert!(next_frame(&mut buf).is_err());
    }

    #[tokio::test]
    async fn echoes_over_one_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(serve(listener));
        let caller = Arc::new(RawCaller::connect(&addr).await.unwrap());
        let calls: Vec<_> = (0..32)
            .map(|_| {
                let caller = caller.clone();
                tokio::spawn(async move { caller.call().await })
            })
            .collect();
        for call in calls {
            call.await.unwrap().unwrap();
        }
    }
}
