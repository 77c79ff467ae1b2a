//! The generic transport conformance suite against the HTTP transport.

#[path = "../../../tests/conformance/transport.rs"]
mod suite;

use micro_core::transport::Transport;
use micro_http::{HttpTransport, HttpTransportOptions};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread")]
async fn conformance() {
    suite::run(|| async {
        Arc::new(HttpTransport::new(HttpTransportOptions::default())) as Arc<dyn Transport>
    })
    .await;
}
