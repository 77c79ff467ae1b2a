//! The gateway's `/openapi.json` from the registry's JSON Schemas, declared routes, and a
//! schemathesis run against it (no 5xx the backend did not return on purpose, no crash).

use micro::{Context, Error};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How the greeting sounds.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Mood {
    Happy,
    Grumpy,
}

/// Who to greet, how often and how.
#[derive(Serialize, Deserialize, JsonSchema, Debug)]
struct HelloRequest {
    /// The name.
    name: String,
    /// How many times (default once).
    #[serde(default)]
    times: Option<u8>,
    /// The mood.
    mood: Mood,
}

#[derive(Serialize, Deserialize, JsonSchema, Debug)]
struct HelloReply {
    msg: String,
}

#[micro::service]
trait Greeter {
    /// Greets; 409 for the name "conflict", on purpose.
    async fn hello(&self, ctx: &Context, req: HelloRequest) -> micro::Result<HelloReply>;
    /// Counts (a stream: not in the document).
    async fn count(&self, ctx: &Context, to: u32) -> micro::Result<micro::Streaming<u32>>;
}

struct MyGreeter;

impl Greeter for MyGreeter {
    async fn hello(&self, _: &Context, req: HelloRequest) -> micro::Result<HelloReply> {
        if req.name == "conflict" {
            return Err(Error::conflict("greeter", "conflict, on purpose"));
        }
        let times = usize::from(req.times.unwrap_or(1)).min(10);
        let word = match req.mood {
            Mood::Happy => "Hello",
            Mood::Grumpy => "Hmpf",
        };
        Ok(HelloReply {
            msg: vec![format!("{word} {}", req.name); times].join(" "),
        })
    }

    async fn count(&self, _: &Context, to: u32) -> micro::Result<micro::Streaming<u32>> {
        Ok(micro::Streaming::from_values(1..=to.min(100)))
    }
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn greeter(registry: &std::path::Path) -> micro::Service {
    let item = micro::server::Handler::unary("Greeter.Item", |_: Context, req: Value| async move {
        Ok::<_, Error>(serde_json::json!({"item": req}))
    })
    .with_metadata("path", "/items/[0-9]+")
    .with_metadata("method", "GET");
    let service = micro::Service::builder()
        .name("greeter")
        .args(["greeter"])
        .env([
            ("MICRO_REGISTRY_DIR", registry.display().to_string()),
            ("MICRO_LOGGER_LEVEL", "error".to_string()),
        ])
        .handler(GreeterServer::new(MyGreeter))
        .handler(item)
        .build()
        .unwrap();
    service.start().await.unwrap();
    service
}

fn gateway(registry: &std::path::Path) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_micro"))
        .args(["api", "--address", "127.0.0.1:0"])
        .env("MICRO_REGISTRY_DIR", registry)
        .env("MICRO_LOGGER_LEVEL", "error")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("micro api listening on ")
        .unwrap()
        .to_string();
    (Running(child), url)
}

async fn get(url: String) -> (u16, String) {
    let out = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", &url])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_follows_the_registry_and_declared_routes_match_first() {
    let registry = tempfile::tempdir().unwrap();
    let (_api, url) = gateway(registry.path());
    let (status, body) = get(format!("{url}/openapi.json")).await;
    assert_eq!(status, 200);
    let empty: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(empty["openapi"], "3.1.0");
    assert_eq!(empty["paths"], serde_json::json!({}));

    let service = greeter(registry.path()).await;
    let (_, body) = get(format!("{url}/openapi.json")).await;
    let doc: Value = serde_json::from_str(&body).unwrap();
    let hello = &doc["paths"]["/greeter/hello"]["post"];
    assert_eq!(
        hello["description"],
        "Greets; 409 for the name \"conflict\", on purpose."
    );
    let request = &hello["requestBody"]["content"]["application/json"]["schema"];
    let required: Vec<&str> = request["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        required.contains(&"name") && required.contains(&"mood") && !required.contains(&"times"),
        "{request}"
    );
    let mood = request["properties"]["mood"]["$ref"].as_str().unwrap();
    let mood = mood.strip_prefix("#/components/schemas/").unwrap();
    assert_eq!(
        doc["components"]["schemas"][mood]["enum"],
        serde_json::json!(["happy", "grumpy"])
    );
    assert!(
        doc["paths"]["/greeter/debug/health"]["post"].is_object(),
        "{}",
        doc["paths"]
    );
    assert!(
        doc["paths"].get("/greeter/count").is_none(),
        "streams are left out"
    );
    assert!(
        doc["paths"].get("/items/[0-9]+").is_none(),
        "a regex is no path"
    );

    // A declared route matches before the resolver: GET /items/42 → Greeter.Item.
    let (status, body) = get(format!("{url}/items/42?colour=red")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["item"]["colour"],
        "red"
    );

    // The service goes: so do its paths.
    service.stop().await.unwrap();
    let (_, body) = get(format!("{url}/openapi.json")).await;
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["paths"], serde_json::json!({}), "{body}");
}

/// schemathesis from the venv scripts/test.sh makes (`MICRO_VENV`, default
/// `$HOME/.cache/micro/venv`).
fn schemathesis() -> Option<std::path::PathBuf> {
    let venv = std::env::var_os("MICRO_VENV")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache/micro/venv"))
        })?;
    let st = venv.join("bin/st");
    st.is_file().then_some(st)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error() {
    let Some(st) = schemathesis() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "schemathesis is missing: scripts/test.sh installs it into $HOME/.cache/micro/venv"
        );
        eprintln!("schemathesis is not installed (scripts/test.sh installs it): not run");
        return;
    };
    let registry = tempfile::tempdir().unwrap();
    let service = greeter(registry.path()).await;
    let (_api, url) = gateway(registry.path());
    let report = tempfile::tempdir().unwrap();
    let args = [
        "run".to_string(),
        format!("{url}/openapi.json"),
        "--checks".into(),
        "not_a_server_error,response_schema_conformance".into(),
        "--max-examples".into(),
        "30".into(),
        "--seed".into(),
        "7".into(),
        "--request-timeout".into(),
        "10".into(),
        "--phases".into(),
        "examples,coverage,fuzzing".into(),
        "--report-dir".into(),
        report.path().display().to_string(),
        "--generation-database".into(),
        "none".into(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        Command::new(st)
            .args(&args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    });
    let out = tokio::time::timeout(Duration::from_secs(300), out)
        .await
        .expect("schemathesis ends within 5 minutes")
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It found the greeter's operations (hello, item, debug health and stats).
    let selected = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Operations:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse::<u32>().ok());
    assert_eq!(selected, Some(4), "{text}");
    service.stop().await.unwrap();
}
