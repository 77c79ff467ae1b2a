//! What the nats tests share: where the shared nats-server is.
#![allow(dead_code)]

pub mod server;

/// The shared nats-server with JetStream the tests use (`MICRO_TEST_NATS` overrides it).
/// Tests never start their own server on this port; fault tests start one on a spare port.
pub fn nats_address() -> String {
    std::env::var("MICRO_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_string())
}
