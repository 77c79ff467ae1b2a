//! Options of the `tcp` transport plugin, in the `transport:` section.

use micro_derive::Component;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Options of the `tcp` transport (`transport: {plugin: tcp, max_frame_size: ..., ...}`).
/// Connection pooling comes from the `client:` section (`pool_size`, `pool_ttl`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Component)]
#[serde(default)]
#[component(section = "transport", plugin = "tcp")]
pub struct TcpTransportOptions {
    /// Largest frame sent or accepted, in bytes (after the 4-byte length); larger is a 413 error.
    #[component(default = 4_194_304)]
    pub max_frame_size: usize,
    /// Time limit for establishing a connection (a call's own deadline applies on top).
    #[serde(with = "micro_core::config::duration")]
    #[component(default = Duration::from_secs(5))]
    pub dial_timeout: Duration,
}

impl TcpTransportOptions {
    /// The smallest `max_frame_size` accepted from configuration.
    pub const MIN_FRAME_SIZE: usize = 1024;
}
