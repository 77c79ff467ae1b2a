//! `micro cli` driven through a pseudo-terminal: a `list services`, a `call`, completion of
//! service and endpoint names, and the history.

use micro::Context;
use rexpect::session::{PtySession, spawn_command};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::process::Command;

#[derive(Serialize, Deserialize, JsonSchema, Debug)]
struct HelloRequest {
    name: String,
}

#[derive(Serialize, Deserialize, JsonSchema, Debug)]
struct HelloReply {
    msg: String,
}

#[micro::service]
trait Greeter {
    async fn hello(&self, ctx: &Context, req: HelloRequest) -> micro::Result<HelloReply>;
}

struct MyGreeter;

impl Greeter for MyGreeter {
    async fn hello(&self, _: &Context, req: HelloRequest) -> micro::Result<HelloReply> {
        Ok(HelloReply {
            msg: format!("Hello {}", req.name),
        })
    }
}

fn prompt(session: &mut PtySession) {
    session.exp_string("micro> ").expect("the prompt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prompt_lists_calls_completes_and_remembers() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let registry_dir = dir.path().display().to_string();
    let service = micro::Service::builder()
        .name("greeter")
        .version("1.0.0")
        .args(["greeter"])
        .env([
            ("MICRO_REGISTRY_DIR", registry_dir.as_str()),
            ("MICRO_LOGGER_LEVEL", "error"),
        ])
        .handler(GreeterServer::new(MyGreeter))
        .build()
        .unwrap();
    service.start().await.unwrap();

    let home_path = home.path().to_path_buf();
    let session = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_micro"));
        cmd.arg("cli")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &home_path)
            .env("TERM", "xterm")
            .env("MICRO_REGISTRY_DIR", &registry_dir);
        let mut s = spawn_command(cmd, Some(30_000)).expect("micro cli starts in a pty");
        prompt(&mut s);
        s.send_line("list services").unwrap();
        s.exp_string("greeter").unwrap();
        prompt(&mut s);
        s.send_line(r#"call greeter Greeter.Hello '{"name": "John"}'"#)
            .unwrap();
        s.exp_string("\"msg\": \"Hello John\"").unwrap();
        prompt(&mut s);
        // Tab completes the service, then the endpoint, from the registry.
        s.send("call gree").unwrap();
        s.send("\t").unwrap();
        s.flush().unwrap();
        s.exp_string("greeter").unwrap();
        s.send(" Greeter.H\t").unwrap();
        s.flush().unwrap();
        s.exp_string("Greeter.Hello").unwrap();
        s.send_line(r#" '{"name": "Tab"}'"#).unwrap();
        s.exp_string("\"msg\": \"Hello Tab\"").unwrap();
        prompt(&mut s);
        // A bad command is reported and the prompt goes on.
        s.send_line("call greeter Greeter.Hello '{bad'").unwrap();
        s.exp_string("not valid JSON").unwrap();
        prompt(&mut s);
        // Up arrow: the previous line again.
        s.send("\x1b[A").unwrap();
        s.flush().unwrap();
        s.exp_string("{bad").unwrap();
        s.send("\x15").unwrap(); // Ctrl-U: clear the line.
        s.send_line("exit").unwrap();
        s.exp_eof().unwrap();
    })
    .await;
    service.stop().await.unwrap();
    session.expect("the session went as expected");
    let history = std::fs::read_to_string(home.path().join(".micro_history")).unwrap();
    assert!(history.contains("list services"), "{history}");
}
