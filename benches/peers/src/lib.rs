//! The RPC load benchmark of micro and the peers it is measured against.
//!
//! Every system is a 64-byte echo: a server (run in its own process by `rpc-load --serve`)
//! and a [`Caller`] that sends one request and checks the reply. [`load::measure`] drives a
//! caller at a given concurrency for a fixed time and records every latency.
//!
//! | system | wire | connections |
//! | --- | --- | --- |
//! | `mucp-tcp` | micro's default RPC over the `tcp` transport, JSON body | one (`client.pool_size = 1`) |
//! | `mucp-http` | micro's default RPC over the `http` transport, JSON body | one (`client.pool_size = 1`) |
//! | `mucp-quic` | micro's default RPC over the `quic` transport (development certificate; the client skips verification), JSON body | one QUIC connection, one stream per call |
//! | `tonic` | gRPC unary echo, protobuf `string` | one HTTP/2 connection |
//! | `raw-tcp` | `u32` BE length + `u64` BE request id + bytes | one, multiplexed by id |
//! | `axum` | HTTP/1.1 `POST /echo` with `{"data": ...}` | keep-alive pool, up to one per in-flight call |
//! | `mucp-nats` | micro's default RPC over the `nats` transport, JSON body | one NATS connection per process |
//! | `raw-nats` | async-nats request/reply, the bytes as payload | one NATS connection per process |
//! | `grpc` | micro's grpc client and server, `/bench.Echo/Echo`, protobuf (the tonic peer's wire) | one HTTP/2 connection |

pub mod axum_echo;
pub mod grpc_echo;
pub mod load;
pub mod micro_echo;
pub mod raw_nats;
pub mod raw_tcp;
pub mod tonic_echo;

use std::future::Future;

/// Errors of the benchmark's setup code.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The 64-byte payload every system echoes.
pub const PAYLOAD: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Sends one echo request and checks the reply.
pub trait Caller: Send + Sync + 'static {
    /// One round trip; `Err` carries a description of what went wrong.
    fn call(&self) -> impl Future<Output = Result<(), String>> + Send;
}

/// The systems the benchmark knows, in the order they run by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    /// Raw length-prefixed TCP echo.
    RawTcp,
    /// tonic unary echo.
    Tonic,
    /// axum JSON echo.
    Axum,
    /// micro's mucp over the tcp transport.
    MucpTcp,
    /// micro's mucp over the http transport.
    MucpHttp,
    /// micro's mucp over the quic transport.
    MucpQuic,
    /// Raw async-nats request/reply echo.
    RawNats,
    /// micro's mucp over the nats transport.
    MucpNats,
    /// micro's grpc client and server.
    Grpc,
}

impl System {
    /// Every system, in run order.
    pub const ALL: [System; 9] = [
        System::RawTcp,
        System::Tonic,
        System::Grpc,
        System::Axum,
        System::MucpTcp,
        System::MucpHttp,
        System::MucpQuic,
        System::RawNats,
        System::MucpNats,
    ];

    /// The name used on the command line and in the table.
    pub fn name(self) -> &'static str {
        match self {
            System::RawTcp => "raw-tcp",
            System::Tonic => "tonic",
            System::Axum => "axum",
            System::MucpTcp => "mucp-tcp",
            System::MucpHttp => "mucp-http",
            System::MucpQuic => "mucp-quic",
            System::RawNats => "raw-nats",
            System::MucpNats => "mucp-nats",
            System::Grpc => "grpc",
        }
    }

    /// Parses a name given by [`System::name`].
    pub fn parse(name: &str) -> Option<System> {
        System::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Checks that an echoed payload is the one sent.
pub fn check_echo(data: &[u8]) -> Result<(), String> {
    if data == PAYLOAD.as_bytes() {
        Ok(())
    } else {
        Err(format!(
            "bad echo: {} bytes, expected {}",
            data.len(),
            PAYLOAD.len()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_64_bytes_and_names_round_trip() {
        assert_eq!(PAYLOAD.len(), 64);
        for s in System::ALL {
            assert_eq!(System::parse(s.name()), Some(s));
        }
        assert_eq!(System::parse("nope"), None);
    }
}
