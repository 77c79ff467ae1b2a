//! `micro new NAME`: a new service crate that builds and runs as generated.
//!
//! Files: Cargo.toml, src/main.rs, src/handler.rs (a `#[micro::service]` trait and its
//! implementation), src/subscriber.rs (a subscriber of topic NAME), configs/NAME.yaml,
//! Dockerfile, README.md, .gitignore; with `--proto`, proto/NAME.proto and a build.rs that
//! generates the trait and messages from it with micro-build.
//!
//! Types: `service` (endpoints `Call` and `Stream`, and the subscriber), `function` (one
//! endpoint, `Call`, no subscriber), `api` and `web` (as `service`, with node metadata
//! `type=api`/`type=web` for the gateway to route by). `--plugin registry=nats:broker=nats`
//! writes those choices into configs/NAME.yaml and turns on the Cargo features they need.
//! The crate depends on micro by path when this `micro` was built from a checkout that is
//! still there (`--micro_path` to choose another), else on the published version.

use crate::commands::ID;
use micro::{Error, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The templates.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kind {
    /// Endpoints and a subscriber.
    #[default]
    Service,
    /// One endpoint.
    Function,
    /// A service the API gateway routes to (`type=api`).
    Api,
    /// A service the gateway's web handler routes to (`type=web`).
    Web,
}

/// What to generate.
#[derive(clap::Args, Debug, Clone)]
pub struct NewArgs {
    /// The service's name, or a path whose last part is the name (`services/greeter`).
    pub name: String,
    /// The template.
    #[arg(long = "type", value_enum, default_value_t)]
    pub kind: Kind,
    /// Plugins, `component=plugin` joined by `:` (e.g. `registry=nats:broker=nats`).
    #[arg(long)]
    pub plugin: Option<String>,
    /// Generate the service from a .proto file (proto/NAME.proto, built by micro-build).
    #[arg(long)]
    pub proto: bool,
    /// The micro checkout to depend on by path (default: the one this tool was built from,
    /// when it is there; else the published crate).
    #[arg(long = "micro_path")]
    pub micro_path: Option<PathBuf>,
}

/// A generated project: where it is and its files, relative to it.
#[derive(Debug)]
pub struct Generated {
    /// The project's directory.
    pub dir: PathBuf,
    /// The files written.
    pub files: Vec<String>,
    /// What to run next.
    pub next_steps: String,
}

/// Names derived from the service name.
#[derive(Debug)]
struct Names {
    /// `my-service` (crate, service, topic).
    name: String,
    /// `MyService` (trait).
    camel: String,
    /// `my_service` (proto package).
    snake: String,
}

fn names(raw: &str) -> Result<Names> {
    let valid = raw.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        return Err(Error::bad_request(
            ID,
            format!(
                "{raw:?} cannot name a service crate: use lowercase letters, digits, - and _, \
                 starting with a letter (e.g. greeter, order-history)"
            ),
        ));
    }
    let camel = raw
        .split(['-', '_'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut chars = p.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    Ok(Names {
        name: raw.to_string(),
        camel,
        snake: raw.replace('-', "_"),
    })
}

/// `(section, plugin)` pairs.
type Choices = Vec<(String, String)>;

/// The `--plugin` choices as (section, plugin), and the Cargo features they need.
fn plugins(spec: Option<&str>) -> Result<(Choices, Vec<String>)> {
    let mut choices = Vec::new();
    let mut features: Vec<String> = Vec::new();
    for part in spec
        .unwrap_or("")
        .split(':')
        .filter(|p| !p.trim().is_empty())
    {
        let Some((section, plugin)) = part.split_once('=') else {
            return Err(Error::bad_request(
                ID,
                format!("--plugin {part:?} is not component=plugin (e.g. registry=nats)"),
            ));
        };
        let (section, plugin) = (section.trim(), plugin.trim());
        let Some(known) = micro::catalog::find(section, plugin) else {
            let names: Vec<&str> = micro::catalog::available(section).collect();
            return Err(Error::bad_request(
                ID,
                if names.is_empty() {
                    format!("--plugin: there is no component {section:?}")
                } else {
                    format!(
                        "--plugin: {section} has no plugin {plugin:?}; choose from {}",
                        names.join(", ")
                    )
                },
            ));
        };
        if known.status != micro::catalog::Status::Available {
            return Err(Error::bad_request(
                ID,
                format!("--plugin: the {section} plugin {plugin:?} is not written yet"),
            ));
        }
        let default_features = [
            "memory", "local", "tcp", "http", "mucp", "selector", "file", "",
        ];
        if !default_features.contains(&known.feature)
            && !features.iter().any(|f| f == known.feature)
        {
            features.push(known.feature.to_string());
        }
        choices.push((section.to_string(), plugin.to_string()));
    }
    Ok((choices, features))
}

/// The checkout of micro this tool was built from, if it is still there.
fn own_checkout() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    dir.join("micro-core").is_dir().then(|| dir.to_path_buf())
}

/// `{ path = "..." }` or `"0.1"` with `features`.
fn dependency(path: Option<&Path>, sub: &str, features: &[String]) -> String {
    let features = if features.is_empty() {
        String::new()
    } else {
        let quoted: Vec<String> = features.iter().map(|f| format!("{f:?}")).collect();
        format!(", features = [{}]", quoted.join(", "))
    };
    match path {
        Some(path) => {
            let path = if sub.is_empty() {
                path.to_path_buf()
            } else {
                path.join(sub)
            };
            format!("{{ path = {:?}{features} }}", path.display().to_string())
        }
        None => format!("{{ version = \"0.1\"{features} }}"),
    }
}

/// Writes the project for `args` into `base`/NAME (the name may be a path); fails without
/// writing anything when the directory exists.
pub fn generate(args: &NewArgs, base: &Path) -> Result<Generated> {
    let raw = Path::new(&args.name);
    let last = raw
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let names = names(&last)?;
    let dir = base.join(raw);
    if dir.exists() {
        return Err(Error::conflict(
            ID,
            format!("{} exists: choose another name or remove it", dir.display()),
        ));
    }
    let (choices, features) = plugins(args.plugin.as_deref())?;
    let micro_path = args.micro_path.clone().or_else(own_checkout);
    let mut files: Vec<(String, String)> = vec![
        (
            "Cargo.toml".into(),
            cargo_toml(&names, args, micro_path.as_deref(), &features),
        ),
        ("src/main.rs".into(), main_rs(&names, args)),
        ("src/handler.rs".into(), handler_rs(&names, args)),
        (
            format!("configs/{}.yaml", names.name),
            config_yaml(&names, &choices),
        ),
        ("Dockerfile".into(), dockerfile(&names, &features)),
        ("README.md".into(), readme(&names, args)),
        (".gitignore".into(), "/target\n".into()),
    ];
    if args.kind != Kind::Function {
        files.push(("src/subscriber.rs".into(), subscriber_rs(&names)));
    }
    if args.proto {
        files.push((format!("proto/{}.proto", names.name), proto(&names, args)));
        files.push(("build.rs".into(), build_rs(&names)));
    }
    for (path, text) in &files {
        let path = dir.join(path);
        let write = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, text));
        write.map_err(|e| Error::internal(ID, format!("writing {}: {e}", path.display())))?;
    }
    Ok(Generated {
        next_steps: next_steps(&names, &dir),
        dir,
        files: files.into_iter().map(|(p, _)| p).collect(),
    })
}

fn next_steps(names: &Names, dir: &Path) -> String {
    format!(
        "Build and run it, then call it from another terminal:\n\n  cd {dir} && cargo run\n  micro call {name} {camel}.Call '{{\"name\": \"John\"}}'\n",
        dir = dir.display(),
        name = names.name,
        camel = names.camel
    )
}

fn cargo_toml(names: &Names, args: &NewArgs, path: Option<&Path>, features: &[String]) -> String {
    let mut out = format!(
        "[package]\nname = \"{}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[dependencies]\n\
         micro = {}\nschemars = \"1\"\nserde = {{ version = \"1\", features = [\"derive\"] }}\n\
         tokio = {{ version = \"1\", features = [\"macros\", \"rt-multi-thread\"] }}\n",
        names.name,
        dependency(path, "", features),
    );
    if args.proto {
        let _ = write!(
            out,
            "prost = \"0.14\"\n\n[build-dependencies]\nmicro-build = {}\n",
            dependency(path, "micro-build", &[])
        );
    }
    out.push_str(
        "\n# A project of its own, not a member of an enclosing workspace.\n[workspace]\n",
    );
    out
}

fn main_rs(names: &Names, args: &NewArgs) -> String {
    let subscriber = if args.kind == Kind::Function {
        ""
    } else {
        "\nmod subscriber;"
    };
    let subscribe = if args.kind == Kind::Function {
        ""
    } else {
        "\n        .subscriber(subscriber::subscription())"
    };
    let kind = match args.kind {
        Kind::Api => "\n        .metadata(\"type\", \"api\")",
        Kind::Web => "\n        .metadata(\"type\", \"web\")",
        _ => "",
    };
    format!(
        r#"//! {name}: a micro service generated by `micro new`.

mod handler;{subscriber}

use handler::{{{camel}Handler, {camel}Server}};

/// Its config file, read when the service runs from this directory.
const CONFIG: &str = "configs/{name}.yaml";

#[tokio::main]
async fn main() -> micro::Result<()> {{
    let mut builder = micro::Service::builder()
        .name("{name}")
        .version("latest"){kind}
        .handler({camel}Server::new({camel}Handler)){subscribe};
    if std::path::Path::new(CONFIG).exists() {{
        builder = builder.config_file(CONFIG);
    }}
    builder.build()?.run().await
}}
"#,
        name = names.name,
        camel = names.camel,
    )
}

fn handler_rs(names: &Names, args: &NewArgs) -> String {
    let function = args.kind == Kind::Function;
    let (trait_and_types, stream_impl) = if args.proto {
        (
            format!(
                "/// `package {snake}.v1;`: the messages and the `{camel}` trait, generated from\n\
                 /// proto/{name}.proto by build.rs.\npub mod proto {{\n    \
                 include!(concat!(env!(\"OUT_DIR\"), \"/{snake}.v1.rs\"));\n}}\n\n\
                 pub use proto::{{{camel}, {camel}Server}};\nuse proto::{{CallRequest, CallResponse{stream_types}}};\n",
                snake = names.snake,
                camel = names.camel,
                name = names.name,
                stream_types = if function {
                    ""
                } else {
                    ", StreamRequest, StreamResponse"
                },
            ),
            "\n    async fn stream(&self, _ctx: &Context, req: StreamRequest) -> micro::Result<Streaming<StreamResponse>> {\n        \
             Ok(Streaming::from_values((1..=req.count).map(|n| StreamResponse { count: n })))\n    }\n",
        )
    } else {
        let stream_method = if function {
            String::new()
        } else {
            "    /// Counts from 1 up to the number given, one message each.\n    \
             async fn stream(&self, ctx: &Context, count: u32) -> micro::Result<Streaming<u32>>;\n"
                .to_string()
        };
        (
            format!(
                "/// What `{camel}.Call` takes.\n#[derive(Serialize, Deserialize, JsonSchema, Debug)]\n\
                 pub struct CallRequest {{\n    /// Who to greet.\n    pub name: String,\n}}\n\n\
                 /// What `{camel}.Call` answers.\n#[derive(Serialize, Deserialize, JsonSchema, Debug)]\n\
                 pub struct CallResponse {{\n    /// The greeting.\n    pub msg: String,\n}}\n\n\
                 /// The {name} service.\n#[micro::service]\npub trait {camel} {{\n    \
                 /// Says hello to `name`.\n    \
                 async fn call(&self, ctx: &Context, req: CallRequest) -> micro::Result<CallResponse>;\n{stream_method}}}\n",
                camel = names.camel,
                name = names.name,
            ),
            "\n    async fn stream(&self, _ctx: &Context, count: u32) -> micro::Result<Streaming<u32>> {\n        \
             Ok(Streaming::from_values(1..=count))\n    }\n",
        )
    };
    let imports = match (args.proto, function) {
        (true, true) => "use micro::Context;\n",
        (true, false) => "use micro::{Context, Streaming};\n",
        (false, true) => {
            "use micro::Context;\nuse schemars::JsonSchema;\nuse serde::{Deserialize, Serialize};\n"
        }
        (false, false) => {
            "use micro::{Context, Streaming};\nuse schemars::JsonSchema;\nuse serde::{Deserialize, Serialize};\n"
        }
    };
    format!(
        "//! The {name} service's endpoints.\n\n{imports}\n{trait_and_types}\n\
         /// The implementation.\n#[derive(Debug, Clone, Copy, Default)]\npub struct {camel}Handler;\n\n\
         impl {camel} for {camel}Handler {{\n    \
         async fn call(&self, _ctx: &Context, req: CallRequest) -> micro::Result<CallResponse> {{\n        \
         Ok(CallResponse {{\n            msg: format!(\"Hello {{}}\", req.name),\n        }})\n    }}\n{stream}}}\n",
        name = names.name,
        camel = names.camel,
        stream = if function { "" } else { stream_impl },
    )
}

fn subscriber_rs(names: &Names) -> String {
    format!(
        r#"//! Messages on topic `{name}`: `micro publish {name} '{{"say": "hi"}}'`.

use micro::Context;
use micro::server::Subscription;
use schemars::JsonSchema;
use serde::{{Deserialize, Serialize}};

/// A message of topic `{name}`.
#[derive(Serialize, Deserialize, JsonSchema, Debug)]
pub struct Message {{
    /// What to say.
    pub say: String,
}}

/// The subscription to topic `{name}`.
pub fn subscription() -> Subscription {{
    Subscription::new("{name}", None, |_ctx: Context, message: Message| async move {{
        println!("{name} received: {{}}", message.say);
        Ok(())
    }})
}}
"#,
        name = names.name
    )
}

fn proto(names: &Names, args: &NewArgs) -> String {
    let stream = if args.kind == Kind::Function {
        ""
    } else {
        "  // Counts from 1 up to `count`, one message each.\n  rpc Stream(StreamRequest) returns (stream StreamResponse);\n"
    };
    let stream_messages = if args.kind == Kind::Function {
        ""
    } else {
        "\nmessage StreamRequest {\n  uint32 count = 1;\n}\n\nmessage StreamResponse {\n  uint32 count = 1;\n}\n"
    };
    format!(
        "syntax = \"proto3\";\n\npackage {snake}.v1;\n\n// The {name} service.\nservice {camel} {{\n  \
         // Says hello to `name`.\n  rpc Call(CallRequest) returns (CallResponse);\n{stream}}}\n\n\
         message CallRequest {{\n  string name = 1;\n}}\n\nmessage CallResponse {{\n  string msg = 1;\n}}\n{stream_messages}",
        snake = names.snake,
        name = names.name,
        camel = names.camel,
    )
}

fn build_rs(names: &Names) -> String {
    format!(
        "//! Generates the messages and the service trait from proto/{name}.proto.\n\n\
         fn main() {{\n    \
         if let Err(error) = micro_build::compile_protos(&[\"proto/{name}.proto\"], &[\"proto\"]) {{\n        \
         panic!(\"{{error}}\");\n    }}\n}}\n",
        name = names.name
    )
}

fn config_yaml(names: &Names, choices: &[(String, String)]) -> String {
    let mut out = format!(
        "# {name}'s components, one section each; flags (--registry ...) and MICRO_* env vars\n\
         # override what is here. `cargo run -- --dump_config` prints the effective config.\n\
         logger:\n  level: info\n",
        name = names.name
    );
    for (section, plugin) in choices {
        let _ = write!(out, "{section}:\n  plugin: {plugin}\n");
    }
    out
}

fn dockerfile(names: &Names, features: &[String]) -> String {
    let features = if features.is_empty() {
        String::new()
    } else {
        format!(" --features micro/{}", features.join(",micro/"))
    };
    format!(
        "# Builds {name} and runs it on a slim image.\nFROM rust:1 AS build\nWORKDIR /src\nCOPY . .\n\
         RUN cargo build --release{features}\n\nFROM debian:bookworm-slim\n\
         COPY --from=build /src/target/release/{name} /usr/local/bin/{name}\n\
         COPY configs /configs\nWORKDIR /\nENTRYPOINT [\"/usr/local/bin/{name}\"]\n",
        name = names.name
    )
}

fn readme(names: &Names, args: &NewArgs) -> String {
    let stream = if args.kind == Kind::Function {
        String::new()
    } else {
        format!(
            "micro stream {name} {camel}.Stream 3\nmicro publish {name} '{{\"say\": \"hi\"}}'\n",
            name = names.name,
            camel = names.camel
        )
    };
    format!(
        "# {name}\n\nA micro service generated by `micro new` (type {kind:?}{proto}).\n\n\
         ```sh\ncargo run                      # runs it, registered in the registry\n\
         micro call {name} {camel}.Call '{{\"name\": \"John\"}}'\n{stream}\
         micro get service {name}\n```\n\n\
         - `src/handler.rs`: the `{camel}` service (its endpoints){proto_note}\n\
         - `src/main.rs`: builds and runs the service\n\
         - `configs/{name}.yaml`: its components (flags and `MICRO_*` env vars override it)\n\
         - `Dockerfile`: `docker build -t {name} .`\n",
        name = names.name,
        camel = names.camel,
        kind = args.kind,
        proto = if args.proto { ", from a .proto" } else { "" },
        proto_note = if args.proto {
            format!(", generated from `proto/{}.proto` by build.rs", names.name)
        } else {
            String::new()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_plugins_are_checked() {
        let n = names("order-history").unwrap();
        assert_eq!(
            (n.camel.as_str(), n.snake.as_str()),
            ("OrderHistory", "order_history")
        );
        assert!(names("Bad Name").unwrap_err().detail.contains("lowercase"));
        let (choices, features) = plugins(Some("registry=nats:broker=nats:store=file")).unwrap();
        assert_eq!(choices.len(), 3);
        assert_eq!(features, ["nats"]);
        let err = plugins(Some("registry=consul")).unwrap_err();
        assert!(err.detail.contains("choose from"), "{err}");
        assert!(plugins(Some("registry")).is_err());
    }
}
