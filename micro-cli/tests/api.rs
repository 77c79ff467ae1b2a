//! `micro api` against real services (started by the test on a `local` registry of its own),
//! driven with curl as the transcripts do: every handler, the resolvers, namespaces, CORS,
//! `/rpc`, body limits, error mapping, and an auth hook that denies.

mod common;

use common::{curl, gateway, services};
use micro::Error;
use micro_cli::api::{ApiOptions, AuthHook, Gateway, HandlerKind};
use micro_cli::commands::Commands;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_transcript_works_as_written() {
    let services = services().await;
    let mut env = services.env();
    env.push(("MICRO_API_HANDLER".into(), "rpc".into()));
    env.push(("MICRO_API_NAMESPACE".into(), "go.micro.srv".into()));
    let (_api, url) = gateway(&env, &[]);
    let reply = curl(&[
        "-XPOST",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"name": "John"}"#,
        &format!("{url}/example/call"),
    ])
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["msg"], "Hello John");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let root = curl(&[&format!("{url}/")]).await;
    assert_eq!(root.json()["version"], env!("CARGO_PKG_VERSION"));
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rpc_handler_maps_bodies_headers_and_errors() {
    let services = services().await;
    let (_api, url) = gateway(
        &services.env(),
        &[
            "--handler",
            "rpc",
            "--namespace",
            "go.micro.srv",
            "--max_body",
            "200",
        ],
    );
    let call = format!("{url}/example/call");
    // A GET's query, a form, and headers as metadata.
    let reply = curl(&["-H", "X-Team: blue", &format!("{call}?name=Query")]).await;
    assert_eq!(
        (reply.status, reply.json()["msg"].clone()),
        (200, json!("Hello Query"))
    );
    assert_eq!(reply.json()["team"], "blue");
    let reply = curl(&["-XPOST", "-d", "name=Form&x=1", &call]).await;
    assert_eq!(reply.json()["request"], json!({"name": "Form", "x": "1"}));
    // Errors: the service's own code, 0 → 500, bad JSON 400, unknown service 404, 413.
    let reply = curl(&[
        "-XPOST",
        "-H",
        "Content-Type: application/json",
        "-d",
        "{}",
        &format!("{url}/example/fail"),
    ])
    .await;
    assert_eq!(reply.status, 409);
    assert_eq!(reply.json()["detail"], "always conflicts");
    let reply = curl(&[
        "-XPOST",
        "-H",
        "Content-Type: application/json",
        "-d",
        "{}",
        &format!("{url}/example/zero"),
    ])
    .await;
    assert_eq!(reply.status, 500);
    let reply = curl(&[
        "-XPOST",
        "-H",
        "Content-Type: application/json",
        "-d",
        "{bad",
        &call,
    ])
    .await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.json()["detail"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    let reply = curl(&[
        "-XPOST",
        "-H",
        "Content-Type: application/json",
        "-d",
        "{}",
        &format!("{url}/nope/call"),
    ])
    .await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert!(reply.body.contains("go.micro.srv.nope"), "{}", reply.body);
    let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(500));
    let reply = curl(&[
        "-XPOST",
        "-H",
        "Content-Type: application/json",
        "-d",
        &big,
        &call,
    ])
    .await;
    assert_eq!(reply.status, 413);
    let reply = curl(&["-XPOST", "-H", "Content-Type: text/csv", "-d", "a,b", &call]).await;
    assert_eq!(reply.status, 415);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolvers_and_namespaces_pick_the_service() {
    let services = services().await;
    let env = services.env();
    let post = |url: String| async move {
        curl(&[
            "-XPOST",
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"name":"R"}"#,
            &url,
        ])
        .await
    };
    // micro: /v1/foo/bar → v1.foo Foo.Bar; a namespace ending in "." joins directly.
    let (_a, url) = gateway(&env, &["--handler", "rpc"]);
    assert_eq!(
        post(format!("{url}/v1/foo/bar")).await.json()["service"],
        "v1.foo"
    );
    let (_b, url) = gateway(&env, &["--handler", "rpc", "--namespace", "go.micro.srv."]);
    assert_eq!(
        post(format!("{url}/example/call")).await.json()["service"],
        "example"
    );
    // vpath and grpc.
    let (_c, url) = gateway(&env, &["--handler", "rpc", "--resolver", "vpath"]);
    assert_eq!(
        post(format!("{url}/v1/foo/bar")).await.json()["service"],
        "v1.foo"
    );
    let (_d, url) = gateway(&env, &["--handler", "rpc", "--resolver", "grpc"]);
    assert_eq!(
        post(format!("{url}/greeter.v1.Greeter/Hello")).await.json()["service"],
        "greeter.v1"
    );
    // path: the first segment, the endpoint from the rest.
    let (_e, url) = gateway(&env, &["--handler", "rpc", "--resolver", "path"]);
    assert_eq!(
        post(format!("{url}/listener/listener/ping")).await.json()["service"],
        "listener"
    );
    // host: the Host header names the service.
    let (_f, url) = gateway(&env, &["--handler", "rpc", "--resolver", "host"]);
    let reply = curl(&[
        "-XPOST",
        "-H",
        "Host: listener",
        "-H",
        "Content-Type: application/json",
        "-d",
        "{}",
        &format!("{url}/ping"),
    ])
    .await;
    assert_eq!(reply.json()["service"], "listener", "{}", reply.body);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_api_and_event_handlers() {
    let services = services().await;
    let env = services.env();
    // meta (the default): rpc unless the endpoint says otherwise (Example.Page says api).
    let (_meta, url) = gateway(&env, &["--namespace", "go.micro.srv"]);
    let reply = curl(&[
        "-XPOST",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"name":"M"}"#,
        &format!("{url}/example/call"),
    ])
    .await;
    assert_eq!(reply.json()["msg"], "Hello M");
    let reply = curl(&["-XPUT", "-d", "hello", &format!("{url}/example/page?q=7")]).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body, "PUT /example/page q=7 body=hello");
    assert_eq!(reply.header("x-seen-method"), Some("PUT"));
    // api for every request.
    let (_api, url) = gateway(&env, &["--handler", "api", "--namespace", "go.micro.srv"]);
    let reply = curl(&[&format!("{url}/example/page?q=x")]).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (201, "GET /example/page q=x body=")
    );
    // event: published on namespace.<first segment>, the rest is the name.
    let (_event, url) = gateway(&env, &["--handler", "event", "--namespace", "go.micro.evt"]);
    let reply = curl(&[
        "-XPOST",
        "-H",
        "X-Source: test",
        "-d",
        r#"{"id": 1}"#,
        &format!("{url}/orders/created"),
    ])
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let event = loop {
        if let Some(event) = services.events.lock().unwrap().first().cloned() {
            break event;
        }
        assert!(tokio::time::Instant::now() < deadline, "no event arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(event["name"], "created");
    assert_eq!(event["data"], r#"{"id": 1}"#);
    assert_eq!(event["header"]["X-Source"]["values"][0], "test");
    assert!(event["timestamp"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(event["id"].as_str().unwrap().len(), 36);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_endpoint_and_cors() {
    let services = services().await;
    let (_api, url) = gateway(&services.env(), &["--enable_rpc", "--enable_cors"]);
    let rpc = format!("{url}/rpc");
    let body = r#"{"service": "go.micro.srv.example", "endpoint": "Example.Call", "request": {"name": "Rpc"}}"#;
    let reply = curl(&[
        "-XPOST",
        "-H",
        "Content-Type: application/json",
        "-d",
        body,
        &rpc,
    ])
    .await;
    assert_eq!(reply.json()["msg"], "Hello Rpc");
    let form =
        "service=go.micro.srv.example&endpoint=Example.Call&request=%7B%22name%22%3A%22F%22%7D";
    let reply = curl(&["-XPOST", "-d", form, &rpc]).await;
    assert_eq!(reply.json()["msg"], "Hello F", "{}", reply.body);
    let reply = curl(&[
        "-XPOST",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"service": "x"}"#,
        &rpc,
    ])
    .await;
    assert_eq!(reply.status, 400);
    // CORS: a preflight is answered at once, the origin echoed.
    let reply = curl(&[
        "-XOPTIONS",
        "-H",
        "Origin: http://app.test",
        &format!("{url}/anything/at/all"),
    ])
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("http://app.test")
    );
    assert_eq!(
        reply.header("access-control-allow-methods"),
        Some("POST, PATCH, GET, OPTIONS, PUT, DELETE")
    );
    assert_eq!(
        reply.header("access-control-allow-headers"),
        Some("Accept, Content-Type, Content-Length, Accept-Encoding, X-CSRF-Token, Authorization")
    );
    let reply = curl(&["-H", "Origin: http://app.test", &format!("{url}/")]).await;
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("http://app.test")
    );
    services.stop().await;
}

/// Refuses every request.
struct DenyAll;

#[micro::__private::async_trait]
impl AuthHook for DenyAll {
    async fn check(&self, request: &axum::http::request::Parts) -> Result<(), Error> {
        Err(Error::unauthorized(
            "test",
            format!("{} is not allowed", request.uri.path()),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auth_hook_runs_before_dispatch() {
    let services = services().await;
    let client = micro::Service::builder()
        .name("gateway")
        .args(["gateway"])
        .env(services.env())
        .only_components(&["client", "broker"])
        .build()
        .unwrap();
    let commands = Commands::from_components(client.components()).unwrap();
    let options = ApiOptions {
        handler: HandlerKind::Rpc,
        namespace: "go.micro.srv".into(),
        ..ApiOptions::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // Allowed: the library router in an app's own server.
    let open = Gateway::new(commands.clone(), options.clone());
    let server = tokio::spawn(async move { open.serve(listener, std::future::pending()).await });
    let reply = curl(&[
        "-XPOST",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"name":"A"}"#,
        &format!("{url}/example/call"),
    ])
    .await;
    assert_eq!(reply.json()["msg"], "Hello A");
    server.abort();
    // Denied: the hook's 401, and the service never called.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let closed = Gateway::with_auth(commands, options, Arc::new(DenyAll));
    let server = tokio::spawn(async move { closed.serve(listener, std::future::pending()).await });
    let reply = curl(&[
        "-XPOST",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"name":"A"}"#,
        &format!("{url}/example/call"),
    ])
    .await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["detail"], "/example/call is not allowed");
    server.abort();
    services.stop().await;
}
