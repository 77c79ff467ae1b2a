//! What the redis tests share: where the shared redis-server is.
#![allow(dead_code)]

/// The shared redis-server the tests use (`MICRO_TEST_REDIS` overrides it). Tests never
/// start their own server on this port; fault tests start one on a spare port.
pub fn redis_address() -> String {
    std::env::var("MICRO_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}
