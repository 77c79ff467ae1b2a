//! The generic transport conformance suite, run against the TCP transport.

#[path = "../../../tests/conformance/transport.rs"]
mod suite;

use micro_core::transport::Transport;
use micro_tcp::TcpTransport;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread")]
async fn conformance() {
    suite::run(|| async { Arc::new(TcpTransport::default()) as Arc<dyn Transport> }).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_without_pooling() {
    suite::run(|| async {
        Arc::new(TcpTransport::default().with_pool(0, std::time::Duration::ZERO))
            as Arc<dyn Transport>
    })
    .await;
}

#[tokio::test]
async fn conformance_on_a_current_thread_runtime() {
    suite::run(|| async { Arc::new(TcpTransport::default()) as Arc<dyn Transport> }).await;
}
