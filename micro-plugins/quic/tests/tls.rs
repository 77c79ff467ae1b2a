//! TLS of the quic transport: untrusted or misnamed server certificates fail the handshake
//! with an error that says so; mutual TLS accepts a trusted client certificate and refuses
//! none or an untrusted one; insecure_skip_verify; configuration errors name the key;
//! connections are reused across dials.

mod common;

use bytes::Bytes;
use common::{options, pki, transport};
use micro_conformance::support::within;
use micro_core::Error;
use micro_core::transport::{DialOptions, Exchange, ExchangeHandler, Message, Serving, Transport};
use micro_quic::{QuicTransport, QuicTransportOptions};
use std::sync::Arc;

/// Answers every exchange's opening frame with its body.
fn echo() -> ExchangeHandler {
    Arc::new(|exchange: Exchange| {
        Box::pin(async move {
            let _ = exchange
                .stream
                .sender
                .send(Message::new(exchange.first.body.clone()))
                .await;
        })
    })
}

async fn serve(server: &QuicTransport) -> Serving {
    let listener = server.listen("127.0.0.1:0").await.expect("listen");
    Serving::start(listener, echo())
}

/// A unary call from `client` to `address`: the answer's body, or the first error (of the
/// dial or of the call: a server may refuse a client certificate after the client's side
/// of the handshake completed).
async fn call(client: &QuicTransport, address: &str) -> Result<Bytes, Error> {
    within("call", async {
        let conn = client.dial(address, DialOptions::default()).await?;
        Ok(conn.call(Message::new("ping")).await?.body)
    })
    .await
}

fn assert_mentions(error: &Error, words: &[&str]) {
    eprintln!("{error}");
    assert_eq!(error.code, 503, "{error}");
    for word in words {
        assert!(error.detail.contains(word), "{word:?} not in: {error}");
    }
}

#[tokio::test]
async fn a_server_certificate_from_an_untrusted_ca_fails_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (pki(dir.path(), "a"), pki(dir.path(), "b"));
    let server = transport(options(&a, &a, false));
    let serving = serve(&server).await;
    // Trusts b's CA only.
    let client = transport(options(&b, &b, false));
    let error = call(&client, &serving.address()).await.unwrap_err();
    assert_mentions(
        &error,
        &["certificate is not trusted", "UnknownIssuer", "ca_file"],
    );
    // Trusting a's CA, the same server answers.
    let client = transport(options(&b, &a, false));
    assert_eq!(call(&client, &serving.address()).await.unwrap(), "ping");
}

#[tokio::test]
async fn a_certificate_for_another_name_fails_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let a = pki(dir.path(), "a");
    let server = transport(options(&a, &a, false));
    let serving = serve(&server).await;
    let client = transport(QuicTransportOptions {
        server_name: "other.example".into(),
        ..options(&a, &a, false)
    });
    let error = call(&client, &serving.address()).await.unwrap_err();
    assert_mentions(&error, &["certificate is not trusted", "server_name"]);
}

#[tokio::test]
async fn another_process_development_certificate_is_not_trusted_unless_told_to_skip() {
    let server = transport(QuicTransportOptions::default());
    let serving = serve(&server).await;
    // Another transport generated another development certificate.
    let client = transport(QuicTransportOptions::default());
    let error = call(&client, &serving.address()).await.unwrap_err();
    assert_mentions(
        &error,
        &["certificate is not trusted", "insecure_skip_verify"],
    );
    let client = transport(QuicTransportOptions {
        insecure_skip_verify: true,
        ..Default::default()
    });
    assert_eq!(call(&client, &serving.address()).await.unwrap(), "ping");
}

#[tokio::test]
async fn mutual_tls_accepts_a_trusted_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let a = pki(dir.path(), "a");
    let server = transport(options(&a, &a, true));
    let serving = serve(&server).await;
    let client = transport(options(&a, &a, true));
    assert_eq!(call(&client, &serving.address()).await.unwrap(), "ping");
}

#[tokio::test]
async fn mutual_tls_refuses_a_client_without_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let a = pki(dir.path(), "a");
    let server = transport(options(&a, &a, true));
    let serving = serve(&server).await;
    // Trusts the server, presents no certificate.
    let client = transport(QuicTransportOptions {
        cert_file: String::new(),
        key_file: String::new(),
        ..options(&a, &a, false)
    });
    let error = call(&client, &serving.address()).await.unwrap_err();
    assert_mentions(&error, &["requires a client certificate", "mutual_tls"]);
}

#[tokio::test]
async fn mutual_tls_refuses_a_client_certificate_from_an_untrusted_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (pki(dir.path(), "a"), pki(dir.path(), "b"));
    let server = transport(options(&a, &a, true));
    let serving = serve(&server).await;
    // Trusts the server (a's CA), presents b's certificate.
    let client = transport(options(&b, &a, true));
    let error = call(&client, &serving.address()).await.unwrap_err();
    assert_mentions(&error, &["refused our client certificate", "ca_file"]);
}

#[tokio::test]
async fn dials_to_one_address_share_a_connection() {
    let server = transport(QuicTransportOptions::default());
    let serving = serve(&server).await;
    let address = serving.address();
    let first = server
        .connect(&address, DialOptions::default())
        .await
        .unwrap();
    for _ in 0..10 {
        let again = server
            .connect(&address, DialOptions::default())
            .await
            .unwrap();
        assert!(first.same_connection(&again));
        let answer = micro_core::transport::Connection::call(&again, Message::new("x"))
            .await
            .unwrap();
        assert_eq!(answer.body, "x");
    }
    // Once the server is gone, the connection closes and a later dial makes a new one
    // (which fails: nobody listens).
    drop(serving);
    micro_conformance::support::eventually("the connection to see the server go", || async {
        micro_core::transport::Connection::is_closed(&first).then_some(())
    })
    .await;
}

#[tokio::test]
async fn bad_configuration_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let a = pki(dir.path(), "a");
    let cases = [
        (
            QuicTransportOptions {
                cert_file: a.cert.clone(),
                ..Default::default()
            },
            "transport.key_file",
        ),
        (
            QuicTransportOptions {
                cert_file: "/nonexistent/cert.pem".into(),
                key_file: a.key.clone(),
                ..Default::default()
            },
            "/nonexistent/cert.pem",
        ),
        (
            QuicTransportOptions {
                mutual_tls: true,
                cert_file: a.cert.clone(),
                key_file: a.key.clone(),
                ..Default::default()
            },
            "transport.ca_file",
        ),
        (
            QuicTransportOptions {
                cert_file: a.cert.clone(),
                key_file: a.cert.clone(),
                ..Default::default()
            },
            "transport.key_file",
        ),
        (
            QuicTransportOptions {
                ca_file: a.key.clone(),
                ..Default::default()
            },
            "no PEM certificate",
        ),
    ];
    for (options, expected) in cases {
        let error = match QuicTransport::new(options.clone()) {
            Ok(t) => t.listen("127.0.0.1:0").await.err(),
            Err(e) => Some(e),
        }
        .unwrap_or_else(|| panic!("{options:?} was accepted"));
        assert_eq!(error.code, 400, "{error}");
        assert!(
            error.detail.contains(expected),
            "{expected:?} not in {error}"
        );
    }
}
