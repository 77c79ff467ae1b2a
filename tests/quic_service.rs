//! A service on the quic transport (`MICRO_TRANSPORT=quic`, no TLS configured): it warns at
//! start that it serves a self-signed development certificate, and answers a call made over
//! QUIC at its registered address. Needs the `quic` feature.
#![cfg(feature = "quic")]

use micro::client::{self, CallOptions};
use micro::logger::LogOutput;
use micro::server::Handler;
use micro::{Built, Context};
use std::sync::{Arc, Mutex};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_on_quic_warns_about_the_development_certificate_and_answers() {
    let out = Arc::new(Mutex::new(Vec::new()));
    let env: Vec<(String, String)> = [
        ("MICRO_TRANSPORT", "quic"),
        ("MICRO_REGISTRY", "memory"),
        ("MICRO_BROKER", "memory"),
        ("MICRO_SERVER_ADDRESS", "127.0.0.1:0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let svc = match micro::Service::builder()
        .name("echo")
        .handler(Handler::unary(
            "Echo.Say",
            |_: Context, text: String| async move { Ok(format!("echo: {text}")) },
        ))
        .args(["echo"])
        .env(env)
        .log_output(LogOutput::buffer(out.clone()))
        .try_build()
    {
        Ok(Built::Service(s)) => s,
        Ok(_) => panic!("expected a service"),
        Err(e) => panic!("build: {e}"),
    };
    svc.start().await.unwrap();
    let log = String::from_utf8(out.lock().unwrap().clone()).unwrap();
    let warning = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("self-signed"))
        .unwrap_or_else(|| panic!("no self-signed warning in:\n{log}"));
    assert!(
        warning.contains("development only") && warning.contains("transport.cert_file"),
        "{warning}"
    );

    let registry = svc.components().registry.clone().unwrap();
    let nodes = registry.get_service("echo").await.unwrap();
    let address = nodes[0].nodes[0].address.clone();
    let client = svc.components().client.clone().unwrap();
    let answer: String = client::call(
        client.as_ref(),
        &Context::new(),
        "echo",
        "Echo.Say",
        &"hi".to_string(),
        CallOptions::default().address(address),
    )
    .await
    .unwrap();
    assert_eq!(answer, "echo: hi");
    svc.stop().await.unwrap();
}
