//! TLS: an etcd this test starts on spare ports serves clients over TLS and requires client
//! certificates (made here with the openssl command). The registry and the sync work through
//! it with the tls_* options; without a client certificate, or with plain http, they do not.

mod common;

use common::server::{Server, make_certificates};
use micro_core::registry::{Node, RegisterOptions, Registry, Service};
use micro_core::sync::{LockOptions, Sync};
use micro_etcd::{Connector, EtcdRegistry, EtcdSync, Settings};
use std::time::Duration;

fn service() -> Service {
    Service {
        name: "greeter".into(),
        version: "1.0.0".into(),
        nodes: vec![Node {
            id: "n1".into(),
            address: "127.0.0.1:1".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[tokio::test]
async fn registry_and_sync_over_tls_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certificates = make_certificates(dir.path());
    let server = Server::start_tls(&certificates).await;
    let settings = |addresses: Vec<String>| Settings {
        addresses,
        timeout: Duration::from_secs(2),
        tls_ca_file: certificates.ca.display().to_string(),
        tls_cert_file: certificates.client_cert.display().to_string(),
        tls_key_file: certificates.client_key.display().to_string(),
        ..Default::default()
    };

    // host:port with TLS files: https is implied.
    let registry = EtcdRegistry::new(
        Connector::new(settings(vec![server.address()]), "registry").unwrap(),
        "/micro/registry/",
    );
    registry
        .register(&service(), RegisterOptions::default())
        .await
        .unwrap();
    assert_eq!(registry.get_service("greeter").await.unwrap().len(), 1);

    let sync = EtcdSync::new(
        Connector::new(
            settings(vec![format!("https://{}", server.address())]),
            "sync",
        )
        .unwrap(),
        "/micro/sync/",
    );
    let options = LockOptions::default()
        .ttl(Duration::from_secs(30))
        .wait(Duration::from_secs(5));
    sync.lock("tls", options).await.unwrap();
    sync.unlock("tls").await.unwrap();

    // Without a client certificate the server refuses the connection.
    let mut anonymous = settings(vec![server.address()]);
    anonymous.tls_cert_file.clear();
    anonymous.tls_key_file.clear();
    let refused = EtcdRegistry::new(
        Connector::new(anonymous, "registry").unwrap(),
        "/micro/registry/",
    )
    .get_service("greeter")
    .await
    .unwrap_err();
    println!("without a client certificate: {refused}");
    assert_eq!(refused.code, 503, "{refused}");

    // Plain http to a TLS port does not work either.
    let plain = Settings {
        addresses: vec![server.address()],
        timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let refused = EtcdRegistry::new(
        Connector::new(plain, "registry").unwrap(),
        "/micro/registry/",
    )
    .get_service("greeter")
    .await
    .unwrap_err();
    println!("plain http: {refused}");
    assert_eq!(refused.code, 503, "{refused}");

    registry.deregister(&service()).await.unwrap();
}

#[test]
fn bad_tls_settings_are_clear_errors_naming_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem").display().to_string();
    let base = Settings {
        addresses: vec!["127.0.0.1:2379".into()],
        timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let cases = [
        (
            Settings {
                tls_ca_file: missing.clone(),
                ..base.clone()
            },
            "registry.tls_ca_file",
        ),
        (
            Settings {
                tls_cert_file: missing.clone(),
                ..base.clone()
            },
            "go together",
        ),
        (
            Settings {
                addresses: vec![
                    "http://127.0.0.1:2379".into(),
                    "https://127.0.0.1:2380".into(),
                ],
                ..base.clone()
            },
            "is plain http, but TLS is on",
        ),
        (
            Settings {
                addresses: vec!["redis://127.0.0.1:6379".into()],
                ..base.clone()
            },
            "not an etcd address",
        ),
    ];
    for (settings, says) in cases {
        let err = Connector::new(settings, "registry").unwrap_err();
        println!("{err}");
        assert_eq!(err.code, 400, "{err}");
        assert!(err.detail.contains(says), "{err}");
    }
    // An https address alone is TLS with the system's roots.
    let https = Settings {
        addresses: vec!["https://127.0.0.1:2379".into()],
        ..base
    };
    let connector = Connector::new(https, "registry").unwrap();
    assert_eq!(connector.address(), "https://127.0.0.1:2379");
}
