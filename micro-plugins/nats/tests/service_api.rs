//! The NATS service API of services registered with the nats registry, seen by a plain
//! async-nats client as `nats micro` tooling sees it.

mod common;

use common::nats_address;
use micro_conformance::support::{eventually, unique, within};
use micro_core::client::{self, CallOptions};
use micro_core::registry::{Endpoint, Node, RegisterOptions, Registry, Service};
use micro_core::server::Handler;
use micro_core::{Built, Context, Error};
use micro_nats::{Connector, NatsRegistry};
use serde_json::Value;
use std::collections::BTreeMap;

async fn raw_client() -> async_nats::Client {
    async_nats::connect(nats_address()).await.unwrap()
}

/// The JSON answer to `subject`, or `None` when nobody answers.
async fn ask(client: &async_nats::Client, subject: &str) -> Option<Value> {
    let answer = tokio::time::timeout(
        micro_conformance::support::DEADLINE,
        client.request(subject.to_string(), "".into()),
    )
    .await
    .ok()?
    .ok()?;
    Some(serde_json::from_slice(&answer.payload).expect("service API answers are JSON"))
}

fn greeter(name: &str, node: &str) -> Service {
    Service {
        name: name.to_string(),
        version: "1.2.3".to_string(),
        metadata: BTreeMap::from([("team".to_string(), "core".to_string())]),
        endpoints: vec![Endpoint {
            name: "Greeter.Hello".to_string(),
            metadata: BTreeMap::from([("stream".to_string(), "false".to_string())]),
            ..Default::default()
        }],
        nodes: vec![Node {
            id: node.to_string(),
            address: "127.0.0.1:9".to_string(),
            ..Default::default()
        }],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn registered_services_answer_ping_info_and_stats() {
    let registry = NatsRegistry::new(Connector::new(&[nats_address()], "registry"));
    let name = unique("nats-srv");
    let node = format!("{name}-node1");
    let service = greeter(&name, &node);
    registry
        .register(&service, RegisterOptions::default())
        .await
        .unwrap();
    let client = raw_client().await;

    for subject in [
        format!("$SRV.PING.{name}"),
        format!("$SRV.PING.{name}.{node}"),
    ] {
        let ping = ask(&client, &subject).await.expect("PING answered");
        assert_eq!(ping["type"], "io.nats.micro.v1.ping_response", "{subject}");
        assert_eq!(ping["name"], name.as_str());
        assert_eq!(ping["id"], node.as_str());
        assert_eq!(ping["version"], "1.2.3");
        assert_eq!(ping["metadata"]["team"], "core");
    }

    let info = ask(&client, &format!("$SRV.INFO.{name}"))
        .await
        .expect("INFO answered");
    assert_eq!(info["type"], "io.nats.micro.v1.info_response");
    assert_eq!(info["name"], name.as_str());
    assert_eq!(info["id"], node.as_str());
    let endpoints = info["endpoints"].as_array().expect("endpoints listed");
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0]["name"], "Greeter.Hello");
    assert_eq!(endpoints[0]["subject"], "Greeter.Hello");
    assert_eq!(endpoints[0]["queue_group"], name.as_str());
    assert_eq!(endpoints[0]["metadata"]["stream"], "false");

    let stats = ask(&client, &format!("$SRV.STATS.{name}.{node}"))
        .await
        .expect("STATS answered");
    assert_eq!(stats["type"], "io.nats.micro.v1.stats_response");
    assert!(stats["started"].is_string(), "{stats}");
    let endpoint = &stats["endpoints"][0];
    assert_eq!(endpoint["name"], "Greeter.Hello");
    assert_eq!(endpoint["num_requests"], 0);
    assert_eq!(endpoint["num_errors"], 0);
    assert_eq!(endpoint["last_error"], "");

    // A re-registration with another endpoint is what INFO says next.
    let mut changed = service.clone();
    changed.endpoints[0].name = "Greeter.Bye".to_string();
    registry
        .register(&changed, RegisterOptions::default())
        .await
        .unwrap();
    let info = ask(&client, &format!("$SRV.INFO.{name}")).await.unwrap();
    assert_eq!(info["endpoints"][0]["name"], "Greeter.Bye");

    // Deregistered: nobody answers any more.
    registry.deregister(&changed).await.unwrap();
    eventually("the deregistered node stops answering", || {
        let client = client.clone();
        let subject = format!("$SRV.PING.{name}");
        async move {
            client
                .request(subject, "".into())
                .await
                .is_err()
                .then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_outside_the_subject_charset_is_escaped() {
    let registry = NatsRegistry::new(Connector::new(&[nats_address()], "registry"));
    let name = format!("go.micro.{}", unique("srv"));
    let service = greeter(&name, "n1");
    registry
        .register(&service, RegisterOptions::default())
        .await
        .unwrap();
    let escaped = micro_nats::registry::escape(&name);
    let ping = ask(&raw_client().await, &format!("$SRV.PING.{escaped}"))
        .await
        .expect("PING answered under the escaped name");
    assert_eq!(ping["name"], escaped.as_str());
    assert_eq!(ping["metadata"]["micro.name"], name.as_str());
    registry.deregister(&service).await.unwrap();
}

/// A greeter service on the memory transport, registered in the nats registry.
fn greeter_service(name: &str) -> micro_core::Service {
    let env = [
        ("MICRO_REGISTRY", "nats".to_string()),
        ("MICRO_REGISTRY_ADDRESS", nats_address()),
        ("MICRO_TRANSPORT", "memory".to_string()),
        ("MICRO_BROKER", "memory".to_string()),
        ("MICRO_STORE_ENABLED", "false".to_string()),
        ("MICRO_EVENTS_ENABLED", "false".to_string()),
        ("MICRO_SYNC_ENABLED", "false".to_string()),
        ("MICRO_AUTH_ENABLED", "false".to_string()),
    ];
    let hello = Handler::unary("Greeter.Hello", |_: Context, who: String| async move {
        if who.is_empty() {
            Err(Error::bad_request("greeter", "say who to greet"))
        } else {
            Ok(format!("hello {who}"))
        }
    });
    let mut plugins = micro_nats::plugins();
    plugins.extend(micro_memory::plugins());
    plugins.extend(micro_mucp::plugins());
    plugins.extend(micro_selector::plugins());
    match micro_core::Service::builder()
        .name(name)
        .version("1.0.0")
        .no_flags()
        .env(env)
        .plugins(plugins)
        .handler(hello)
        .try_build()
    {
        Ok(Built::Service(service)) => service,
        Ok(_) => panic!("expected a service"),
        Err(e) => panic!("build: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_count_the_requests_a_real_service_serves() {
    let name = unique("nats-stats");
    let service = greeter_service(&name);
    service.start().await.unwrap();
    let caller = service.components().client.clone().unwrap();
    for who in ["ann", "bob", "cy", ""] {
        let answer = client::call::<String, String>(
            caller.as_ref(),
            &Context::new(),
            &name,
            "Greeter.Hello",
            &who.to_string(),
            CallOptions::default(),
        )
        .await;
        match who {
            "" => assert_eq!(answer.unwrap_err().code, 400),
            _ => assert_eq!(answer.unwrap(), format!("hello {who}")),
        }
    }

    let client = raw_client().await;
    let stats = within(
        "STATS of the running service",
        ask(&client, &format!("$SRV.STATS.{name}")),
    )
    .await
    .expect("STATS answered");
    assert_eq!(stats["name"], name.as_str());
    assert_eq!(stats["id"], service.id());
    let hello = stats["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "Greeter.Hello")
        .unwrap_or_else(|| panic!("Greeter.Hello in {stats}"))
        .clone();
    assert_eq!(hello["num_requests"], 4, "{hello}");
    assert_eq!(hello["num_errors"], 1, "{hello}");
    let last_error = hello["last_error"].as_str().unwrap();
    assert!(
        last_error.starts_with("400:") && last_error.contains("say who to greet"),
        "{last_error}"
    );
    assert!(hello["processing_time"].as_u64().is_some(), "{hello}");
    assert!(
        hello["average_processing_time"].as_u64().is_some(),
        "{hello}"
    );

    service.stop().await.unwrap();
    eventually("the stopped service stops answering", || {
        let client = client.clone();
        let subject = format!("$SRV.PING.{name}");
        async move {
            client
                .request(subject, "".into())
                .await
                .is_err()
                .then_some(())
        }
    })
    .await;
}
