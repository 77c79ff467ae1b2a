//! Options of the `tcp` transport plugin, in the `transport:` section.

use micro_core::config::ConfigError;
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
    /// Server: streams open at once per connection; one more is refused with RESET 429.
    /// 0 is rejected (no stream could open).
    #[component(default = 1024)]
    pub max_streams: usize,
    /// Server: unary requests per connection being handled or whose answer is not yet
    /// written; at the limit the connection stops reading. 0 is rejected.
    #[component(default = 256)]
    pub max_unary: usize,
    /// Server: time a peer has, after the frame that opens a stream, to send the stream's
    /// next frame (its first message, or END); later, the stream is reset with 408. 0 = never.
    #[serde(with = "micro_core::config::duration")]
    #[component(default = Duration::from_secs(10))]
    pub first_message_timeout: Duration,
    /// Server: close a connection after this long with no open stream, no unary request
    /// and no bytes received. 0 = never.
    #[serde(with = "micro_core::config::duration")]
    #[component(default = Duration::from_secs(300))]
    pub idle_timeout: Duration,
    /// Both sides: a frame begun must be complete within this time, or the connection is
    /// closed with a 408 protocol error. 0 = never.
    #[serde(with = "micro_core::config::duration")]
    #[component(default = Duration::from_secs(30))]
    pub read_timeout: Duration,
}

impl TcpTransportOptions {
    /// The smallest `max_frame_size` accepted from configuration.
    pub const MIN_FRAME_SIZE: usize = 1024;

    /// Checks values that make no sense; the error names the key (`transport.KEY`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| {
            Err(ConfigError::Invalid {
                key: format!("transport.{key}"),
                reason,
            })
        };
        if self.max_frame_size < Self::MIN_FRAME_SIZE {
            return invalid(
                "max_frame_size",
                format!(
                    "{} is too small: frames need at least {} bytes; set it to that or more, \
                     or leave the key out for the default of 4 MiB",
                    self.max_frame_size,
                    Self::MIN_FRAME_SIZE
                ),
            );
        }
        if self.max_streams == 0 {
            return invalid(
                "max_streams",
                "0 would refuse every stream: give the number of streams a connection may \
                 have open at once (default 1024)"
                    .to_string(),
            );
        }
        if self.max_unary == 0 {
            return invalid(
                "max_unary",
                "0 would serve no unary call: give the number of unary requests a connection \
                 may have in flight (default 256)"
                    .to_string(),
            );
        }
        Ok(())
    }
}
