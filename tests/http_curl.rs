//! Any service on the http transport answers plain HTTP: the go-micro curl command works.

use micro::server::Handler;
use micro::{Built, Context};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct HelloRequest {
    name: String,
}

#[derive(Serialize, Deserialize)]
struct HelloReply {
    msg: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_calls_a_service_over_http() {
    let env: Vec<(String, String)> = [
        ("MICRO_TRANSPORT", "http"),
        ("MICRO_REGISTRY", "memory"),
        ("MICRO_BROKER", "memory"),
        ("MICRO_SERVER_ADDRESS", "127.0.0.1:0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let service = match micro::Service::builder()
        .name("greeter")
        .args(["greeter"])
        .env(env)
        .handler(Handler::unary(
            "Greeter.Hello",
            |_: Context, req: HelloRequest| async move {
                Ok(HelloReply {
                    msg: format!("Hello {}", req.name),
                })
            },
        ))
        .try_build()
    {
        Ok(Built::Service(s)) => s,
        _ => panic!("build"),
    };
    service.start().await.unwrap();
    let address = service
        .components()
        .server
        .as_ref()
        .unwrap()
        .address()
        .unwrap();
    let url = format!("http://{address}/");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args([
                "-s",
                "-H",
                "Content-Type: application/json",
                "-H",
                "Micro-Endpoint: Greeter.Hello",
            ])
            .args(["-d", r#"{"name":"John"}"#, &url])
            .output()
    })
    .await
    .unwrap()
    .expect("curl runs (install curl: apt-get install curl)");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        r#"{"msg":"Hello John"}"#
    );
    // Errors are JSON with their HTTP status: curl's default form encoding is a 415, an
    // unknown endpoint a 404.
    for (headers, code, says) in [
        (
            vec!["-H", "Micro-Endpoint: Greeter.Hello"],
            415,
            "application/json",
        ),
        (
            vec![
                "-H",
                "Micro-Endpoint: Greeter.Nope",
                "-H",
                "Content-Type: application/json",
            ],
            404,
            "Greeter.Nope",
        ),
    ] {
        let url = format!("http://{address}/");
        let headers: Vec<String> = headers.into_iter().map(String::from).collect();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("curl")
                .args(["-s", "-w", "\n%{http_code}", "-d", "{}"])
                .args(&headers)
                .arg(&url)
                .output()
        })
        .await
        .unwrap()
        .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let (body, status) = text.rsplit_once('\n').unwrap();
        assert_eq!(status, code.to_string(), "{text}");
        let err = micro::Error::parse(body);
        assert_eq!(err.code, code);
        assert!(err.detail.contains(says), "{body}");
    }
    service.stop().await.unwrap();
}
