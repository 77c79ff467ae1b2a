//! The broker suite against the shared nats-server, and what the nats broker adds.

mod common;

use micro_core::broker::Broker;
use micro_core::logger::Logger;
use micro_nats::NatsBroker;
use micro_nats::broker::NatsBrokerOptions;
use std::sync::Arc;

fn broker() -> NatsBroker {
    NatsBroker::new(
        &[common::nats_address()],
        NatsBrokerOptions::default(),
        Logger::none(),
    )
}

micro_conformance::broker_suite!(async || Arc::new(broker()) as Arc<dyn Broker>);

#[tokio::test]
async fn a_server_that_is_not_there_is_a_503_naming_the_address() {
    // Port 1 on loopback: nothing listens there.
    let broker = NatsBroker::new(
        &["nats://127.0.0.1:1".to_string()],
        NatsBrokerOptions::default(),
        Logger::none(),
    );
    let err = broker
        .publish("t", micro_core::broker::Message::new("x"))
        .await
        .unwrap_err();
    assert_eq!(err.code, 503, "{err}");
    assert!(err.detail.contains("127.0.0.1:1"), "{err}");
    assert!(err.detail.contains("broker.addresses"), "{err}");
}
