//! `#[micro_derive::service]` and `#[micro_derive::subscriber]` in a crate without the
//! `micro` facade: the admin service called in-process through its generated client and
//! through its generated server glue (the handlers a server would host), and a subscriber.

use micro_core::broker::{Delivery, Message, NoAck};
use micro_core::client::Request;
use micro_core::in_process::{Caller, LocalServices};
use micro_core::server::{HandlerKind, IntoHandlers, Subscription};
use micro_core::store::{Record, Scope, Store, WriteOptions};
use micro_core::{Context, ErrorKind, Result};
use micro_example_plugin::{
    ExampleStore, ScopeRequest, ScopeStats, StoreAdmin, StoreAdminClient, StoreAdminServer,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

async fn filled() -> ExampleStore {
    let store = ExampleStore::new();
    for (key, value) in [("b", "22"), ("a", "1"), ("c", "333")] {
        store
            .write(Record::new(key, value), WriteOptions::default())
            .await
            .unwrap();
    }
    store
}

fn caller(local: LocalServices) -> Caller {
    Caller {
        client: None,
        local,
        middleware: Default::default(),
    }
}

#[tokio::test]
async fn the_client_calls_the_store_in_process() {
    let store = filled().await;
    let server = StoreAdminServer::new(store.clone());
    let local = LocalServices::new();
    local.publish("store-admin", &server.local_impls(), &[]);
    let client = StoreAdminClient::new(caller(local), "store-admin");
    let ctx = Context::new();

    let stats = client.stats(&ctx, ScopeRequest::default()).await.unwrap();
    assert_eq!(
        stats,
        ScopeStats {
            records: 3,
            bytes: 6,
            max_value_size: 1_048_576
        }
    );
    // A deadline: the in-process stream runs under it (micro-core's stream helpers).
    let with_deadline = Context::new().with_timeout(Duration::from_secs(60));
    let mut keys = client
        .keys(&with_deadline, ScopeRequest::default())
        .await
        .unwrap();
    let mut seen = Vec::new();
    while let Some(key) = keys.next().await {
        seen.push(key.unwrap());
    }
    assert_eq!(seen, ["a", "b", "c"]);
    let other = ScopeRequest {
        database: "other".into(),
        table: "t".into(),
    };
    assert_eq!(client.stats(&ctx, other).await.unwrap().records, 0);
}

#[tokio::test]
async fn without_the_service_in_process_the_client_needs_an_rpc_client() {
    let client = StoreAdminClient::new(caller(LocalServices::new()), "store-admin");
    let err = client
        .stats(&Context::new(), ScopeRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest, "{err}");
    assert!(err.detail.contains("client is disabled"), "{}", err.detail);
}

#[tokio::test]
async fn the_server_glue_serves_the_endpoints() {
    let store = filled().await;
    let handlers = StoreAdminServer::new(store).into_handlers();
    let names: Vec<&str> = handlers.iter().map(|h| h.endpoint.name.as_str()).collect();
    assert_eq!(names, ["StoreAdmin.Stats", "StoreAdmin.Keys"]);

    let stats = &handlers[0];
    let meta = &stats.endpoint.metadata;
    assert_eq!(meta.get("stream").map(String::as_str), Some("false"));
    assert_eq!(meta.get("idempotent").map(String::as_str), Some("true"));
    assert!(
        meta.get("description")
            .is_some_and(|d| d.starts_with("Counts the live records")),
        "{meta:?}"
    );
    assert!(stats.endpoint.request.is_some() && stats.endpoint.response.is_some());
    assert_eq!(
        handlers[1]
            .endpoint
            .metadata
            .get("stream")
            .map(String::as_str),
        Some("true")
    );

    let HandlerKind::Unary(serve) = &stats.kind else {
        panic!("StoreAdmin.Stats is unary");
    };
    let body = serde_json::to_vec(&ScopeRequest::default()).unwrap();
    let response = serve(Request::new("store-admin", "StoreAdmin.Stats", body))
        .await
        .unwrap();
    let stats: ScopeStats = serde_json::from_slice(&response.body).unwrap();
    assert_eq!((stats.records, stats.bytes), (3, 6));
}

/// Asks the store to drop a key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Evict {
    key: String,
}

/// Drops the key of an `Evict` message from the store.
#[micro_derive::subscriber(topic = "store.evict", queue = "example-store")]
async fn on_evict(store: &ExampleStore, _ctx: &Context, message: Evict) -> Result<()> {
    store.delete(&message.key, Default::default()).await
}

#[tokio::test]
async fn the_subscriber_glue_handles_a_message() {
    let store = filled().await;
    let subscription: Subscription = on_evict_subscription(store.clone());
    assert_eq!(subscription.topic, "store.evict");
    assert_eq!(subscription.queue.as_deref(), Some("example-store"));
    let body = serde_json::to_vec(&Evict { key: "b".into() }).unwrap();
    let delivery = Delivery::new("store.evict", Message::new(body), Arc::new(NoAck));
    (subscription.handler)(delivery).await.unwrap();
    assert_eq!(store.usage(&Scope::default()).records, 2);
}
