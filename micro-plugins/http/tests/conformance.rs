//! The generic transport conformance suite against the HTTP transport.

use micro_core::transport::Transport;
use micro_http::{HttpTransport, HttpTransportOptions};
use std::sync::Arc;

micro_conformance::transport_suite!(async || {
    Arc::new(HttpTransport::new(HttpTransportOptions::default())) as Arc<dyn Transport>
});
