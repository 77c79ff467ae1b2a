//! The generic transport conformance suite, run against the TCP transport: pooled,
//! without pooling, and on a current-thread runtime.

use micro_core::transport::Transport;
use micro_tcp::TcpTransport;
use std::sync::Arc;

micro_conformance::transport_suite!(
    async || Arc::new(TcpTransport::default()) as Arc<dyn Transport>
);

micro_conformance::transport_suite!(mod without_pooling, async || {
    Arc::new(TcpTransport::default().with_pool(0, std::time::Duration::ZERO)) as Arc<dyn Transport>
});

micro_conformance::transport_suite!(
    mod on_a_current_thread_runtime(flavor = "current_thread"),
    async || Arc::new(TcpTransport::default()) as Arc<dyn Transport>,
);
