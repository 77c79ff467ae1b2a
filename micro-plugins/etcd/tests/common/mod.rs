//! What the etcd tests share: where the shared etcd is, and a raw client to look behind the
//! plugins' backs.
#![allow(dead_code)]

pub mod server;

use micro_etcd::{Connector, Settings};
use std::time::Duration;

/// The shared etcd the tests use (`MICRO_TEST_ETCD` overrides it). Tests never start their
/// own server on this port; fault tests start one on spare ports.
pub fn etcd_address() -> String {
    std::env::var("MICRO_TEST_ETCD").unwrap_or_else(|_| "127.0.0.1:2379".to_string())
}

/// Connection settings for the shared etcd.
pub fn settings() -> Settings {
    Settings {
        addresses: vec![etcd_address()],
        timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

/// A connector for `purpose` on the shared etcd.
pub fn connector(purpose: &str) -> Connector {
    Connector::new(settings(), purpose).expect("a valid address")
}

/// A plain etcd client on the shared etcd.
pub async fn raw() -> etcd_client::Client {
    etcd_client::Client::connect([etcd_address()], None)
        .await
        .expect("etcd runs on 127.0.0.1:2379 (scripts/test.sh starts it)")
}
