//! Shared by the gateway tests: the services they call, `micro api` started on a spare port,
//! and curl.
#![allow(dead_code)]

use micro::server::{Handler, Subscription};
use micro::{Context, Error};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// A process killed when dropped.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The services of the tests, on a registry of their own.
pub struct Services {
    pub services: Vec<micro::Service>,
    pub registry: tempfile::TempDir,
    pub events: Arc<Mutex<Vec<Value>>>,
}

impl Services {
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "MICRO_REGISTRY_DIR".into(),
                self.registry.path().display().to_string(),
            ),
            ("MICRO_LOGGER_LEVEL".into(), "error".into()),
        ]
    }

    pub async fn stop(self) {
        for service in self.services {
            service.stop().await.unwrap();
        }
    }
}

pub fn echo_name(
    service: &'static str,
) -> impl Fn(Context, Value) -> std::future::Ready<micro::Result<Value>> + Clone {
    move |ctx: Context, req: Value| {
        std::future::ready(Ok(json!({
            "msg": format!("Hello {}", req.get("name").and_then(Value::as_str).unwrap_or("")),
            "service": service,
            "team": ctx.metadata.get("x-team").unwrap_or(""),
            "request": req,
        })))
    }
}

pub async fn start(
    name: &str,
    registry: &std::path::Path,
    handlers: Vec<Handler>,
    subscriber: Option<Subscription>,
) -> micro::Service {
    let mut builder = micro::Service::builder()
        .name(name)
        .args([name])
        .env([
            ("MICRO_REGISTRY_DIR", registry.display().to_string()),
            ("MICRO_LOGGER_LEVEL", "error".to_string()),
        ])
        .handler(handlers);
    if let Some(subscriber) = subscriber {
        builder = builder.subscriber(subscriber);
    }
    let service = builder.build().unwrap();
    service.start().await.unwrap();
    service
}

pub async fn services() -> Services {
    let registry = tempfile::tempdir().unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let example = start(
        "go.micro.srv.example",
        registry.path(),
        vec![
            Handler::unary("Example.Call", echo_name("example")),
            Handler::unary("Example.Fail", |_: Context, _: Value| async {
                Err::<Value, _>(Error::conflict("example", "always conflicts"))
            }),
            Handler::unary("Example.Zero", |_: Context, _: Value| async {
                Err::<Value, _>(Error::new("example", 0, "no code"))
            }),
            // The api handler's envelope in, an api.Response out.
            Handler::unary("Example.Page", |_: Context, req: Value| async move {
                Ok::<_, Error>(json!({
                    "statusCode": 201,
                    "header": {"X-Seen-Method": {"key": "X-Seen-Method", "values": [req["method"]]}},
                    "body": format!("{} {} q={} body={}", req["method"].as_str().unwrap_or(""), req["path"].as_str().unwrap_or(""),
                        req["get"]["q"]["values"][0].as_str().unwrap_or(""), req["body"].as_str().unwrap_or("")),
                }))
            })
            .with_metadata("handler", "api"),
        ],
        None,
    )
    .await;
    let versioned = start(
        "v1.foo",
        registry.path(),
        vec![Handler::unary("Foo.Bar", echo_name("v1.foo"))],
        None,
    )
    .await;
    let grpc = start(
        "greeter.v1",
        registry.path(),
        vec![Handler::unary("Greeter.Hello", echo_name("greeter.v1"))],
        None,
    )
    .await;
    let subscriber = Subscription::new(
        "go.micro.evt.orders",
        None,
        move |_: Context, event: Value| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(event);
                Ok(())
            }
        },
    );
    let listener = start(
        "listener",
        registry.path(),
        vec![Handler::unary("Listener.Ping", echo_name("listener"))],
        Some(subscriber),
    )
    .await;
    Services {
        services: vec![example, versioned, grpc, listener],
        registry,
        events,
    }
}

/// Starts `micro api` with `env` and `args` on a kernel-picked port; returns it and its URL.
pub fn gateway(env: &[(String, String)], args: &[&str]) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_micro"))
        .arg("api")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MICRO_API_ADDRESS", "127.0.0.1:0")
        .envs(env.iter().cloned())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("micro api listening on ")
        .unwrap_or_else(|| panic!("micro api said {line:?}"))
        .to_string();
    (Running(child), url)
}

/// A curl exchange: status, headers (lowercase names), body.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

pub async fn curl(args: &[&str]) -> Reply {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(["-s", "-i", "--max-time", "20"])
            .args(&args)
            .output()
            .expect("curl is installed")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}
