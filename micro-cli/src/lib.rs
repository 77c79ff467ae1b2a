//! The `micro` command-line tool, as a library: [`commands`] holds the operations (reused by
//! the API gateway and the dashboard), [`format`] their text, [`dynamic`] the per-service
//! commands; [`run`] is the whole tool, which the `micro` binary calls.
//!
//! The tool is a micro service itself (client and broker only, no server): the component
//! flags and env vars of every service configure it (`micro --registry=nats list services`,
//! `MICRO_REGISTRY=nats micro list services`), before or after the command.

pub mod api;
pub mod commands;
pub mod dynamic;
pub mod format;
pub mod interactive;
pub mod new;

use clap::{Args, Parser, Subcommand, ValueEnum};
use commands::{CallSpec, Commands, ID, parse_json, parse_service};
use micro::{Built, Error, Result};
use std::io::{IsTerminal, Read, Write};
use std::time::Duration;

/// The `micro` command line (after the component flags are taken out).
#[derive(Parser, Debug)]
#[command(
    name = "micro",
    version,
    about = "A microservices toolchain: query the registry, call and stream endpoints, publish",
    allow_external_subcommands = true,
    after_help = "Any other COMMAND is a service: `micro greeter hello --name=John` calls \
                  Greeter.Hello; `micro greeter --help` lists its endpoints.\n\
                  The component flags of every micro service (--registry, --registry_address, \
                  --transport, --broker, --client_request_timeout, ...) and their MICRO_* env \
                  vars configure the tool; `micro --help` lists them below."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// List items in the registry: `micro list services`.
    List {
        /// What to list.
        what: Listed,
    },
    /// Get an item from the registry: `micro get service NAME`.
    Get {
        /// What to get.
        what: Item,
        /// Its name.
        name: String,
    },
    /// Call an endpoint: `micro call greeter Greeter.Hello '{"name": "John"}'`.
    Call(CallArgs),
    /// Call a streaming endpoint and print each message as it arrives.
    Stream(CallArgs),
    /// Publish a JSON message on a topic: `micro publish orders '{"id": 1}'`.
    Publish {
        /// The topic.
        topic: String,
        /// The message as JSON (read from stdin when not given).
        message: Option<String>,
    },
    /// Ask each node of a service for its health.
    Health(NodeArgs),
    /// Ask each node of a service for its stats.
    Stats(NodeArgs),
    /// Register a service record: `micro register service '{"name": ..., "nodes": [...]}'`.
    Register {
        /// What to register.
        what: Item,
        /// The service record as JSON (read from stdin when not given).
        record: Option<String>,
        /// How long the registration lives (e.g. `90s`); the registry's default when absent.
        #[arg(long, value_parser = duration)]
        ttl: Option<Duration>,
    },
    /// Deregister a service record's nodes.
    Deregister {
        /// What to deregister.
        what: Item,
        /// The service record as JSON (read from stdin when not given).
        record: Option<String>,
    },
    /// The interactive mode: these commands at a prompt, with history and completion.
    Cli,
    /// The HTTP API gateway: `micro api [--handler rpc] [--namespace go.micro.srv]`.
    Api(api::ApiOptions),
    /// Generate a service crate: `micro new greeter [--type service|function|api|web]
    /// [--plugin registry=nats:broker=nats] [--proto]`.
    New(new::NewArgs),
    /// A service of the registry as a command (see below).
    #[command(external_subcommand)]
    Dynamic(Vec<String>),
}

/// What `list` lists.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Listed {
    /// Registered services.
    Services,
}

/// What `get`, `register` and `deregister` work on.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Item {
    /// A service.
    Service,
}

/// How `call` prints the answer.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Output {
    /// Pretty JSON.
    #[default]
    Json,
    /// The body as the server sent it.
    Raw,
}

/// A call's target and options.
#[derive(Args, Debug)]
pub struct CallArgs {
    /// Service name.
    pub service: String,
    /// Endpoint, e.g. `Greeter.Hello`.
    pub endpoint: String,
    /// The request as JSON (read from stdin when not given and stdin is not a terminal).
    pub request: Option<String>,
    /// Call this node (`host:port`) instead of one from the registry.
    #[arg(long)]
    pub address: Option<String>,
    /// Call metadata, `key=value`; repeat for more.
    #[arg(long = "metadata", value_name = "KEY=VALUE", value_parser = pair)]
    pub metadata: Vec<(String, String)>,
    /// How to print the answer.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    /// Deadline of the call (e.g. `5s`); the client's request_timeout when absent.
    #[arg(long, value_parser = duration)]
    pub timeout: Option<Duration>,
}

/// A service whose nodes are asked one by one.
#[derive(Args, Debug)]
pub struct NodeArgs {
    /// Service name.
    pub service: String,
    /// Deadline of each node's answer (e.g. `2s`).
    #[arg(long, value_parser = duration)]
    pub timeout: Option<Duration>,
}

fn duration(text: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration ({e}); e.g. 5s, 250ms"))
}

fn pair(text: &str) -> std::result::Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

/// Where the tool writes: its answers and its errors.
pub struct Io<'a> {
    /// Answers.
    pub out: &'a mut dyn Write,
    /// Errors.
    pub err: &'a mut dyn Write,
}

/// The builder of the tool's own service: client and broker (with the registry, selector
/// and transport they need), no server.
pub fn service_builder() -> micro::ServiceBuilder {
    micro::Service::builder()
        .name("micro")
        .only_components(&["client", "broker"])
}

/// Runs the tool with `args` (the program name first); returns the exit status.
pub async fn run(args: Vec<String>, io: &mut Io<'_>) -> i32 {
    let builder = service_builder();
    let (component_args, rest) = builder.split_args(&args);
    let cli = match Cli::try_parse_from(&rest) {
        Ok(cli) => cli,
        Err(e) => return clap_exit(e, io),
    };
    if let Command::New(args) = &cli.command {
        return match new_project(args, io) {
            Ok(()) => 0,
            Err(e) => fail(&e, io),
        };
    }
    let service = match builder.args(component_args).try_build() {
        Ok(Built::Service(service)) => service,
        Ok(_) => return 0,
        Err(e) => {
            // A plugin that could not start (its server unreachable) is a 503; bad config 400.
            let code = match &e {
                micro::BuildError::Start { .. } => 503,
                _ => 400,
            };
            return fail(&Error::new(ID, code, one_line(&e.to_string())), io);
        }
    };
    let commands = match Commands::from_components(service.components()) {
        Ok(commands) => commands,
        Err(e) => return fail(&e, io),
    };
    if matches!(cli.command, Command::Cli) {
        let runtime = tokio::runtime::Handle::current();
        let prompt = tokio::task::spawn_blocking(move || interactive::run(commands, runtime));
        return match prompt.await {
            Ok(Ok(())) => 0,
            Ok(Err(e)) => fail(&Error::internal(ID, format!("the prompt failed: {e}")), io),
            Err(e) => fail(&Error::internal(ID, format!("the prompt failed: {e}")), io),
        };
    }
    if let Command::Api(options) = cli.command {
        return match serve_api(commands, options, io).await {
            Ok(()) => 0,
            Err(e) => fail(&e, io),
        };
    }
    match execute(&commands, cli.command, io).await {
        Ok(()) => 0,
        Err(e) => fail(&e, io),
    }
}

/// Prints `error` as micro error JSON on one line; status 1.
fn fail(error: &Error, io: &mut Io<'_>) -> i32 {
    let _ = writeln!(io.err, "{}", error.to_json());
    1
}

fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Help and version print in full (with the component flags under the help); a usage
/// error is one line.
fn clap_exit(e: clap::Error, io: &mut Io<'_>) -> i32 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = write!(io.out, "{}", e.render());
            if let Ok(Built::Help(flags)) = service_builder().args(["micro", "--help"]).try_build()
            {
                let _ = write!(io.out, "\nComponent flags:\n{flags}");
            }
            if e.kind() == ErrorKind::DisplayHelp {
                0
            } else {
                2
            }
        }
        ErrorKind::DisplayVersion => {
            let _ = write!(io.out, "{}", e.render());
            0
        }
        _ => {
            let text = e.render().to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("error")
                .trim_start_matches("error: ");
            let _ = writeln!(io.err, "micro: {first} (see micro --help)");
            2
        }
    }
}

/// The request text given, or stdin's when it is not a terminal, or nothing.
fn given_or_stdin(given: Option<String>) -> Result<String> {
    if let Some(text) = given {
        return Ok(text);
    }
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok(String::new());
    }
    let mut text = String::new();
    stdin
        .read_to_string(&mut text)
        .map_err(|e| Error::bad_request(ID, format!("reading the request from stdin: {e}")))?;
    Ok(text)
}

/// Runs one command against `commands`, writing its answer to `io.out`.
pub async fn execute(commands: &Commands, command: Command, io: &mut Io<'_>) -> Result<()> {
    let write_error = |e: std::io::Error| Error::internal(ID, format!("writing the answer: {e}"));
    match command {
        Command::List {
            what: Listed::Services,
        } => {
            for name in commands.list_services().await? {
                writeln!(io.out, "{name}").map_err(write_error)?;
            }
        }
        Command::Get { name, .. } => {
            let versions = commands.get_service(&name).await?;
            write!(io.out, "{}", format::service(&versions)).map_err(write_error)?;
        }
        Command::Call(args) => {
            let request = parse_json(&given_or_stdin(args.request.clone())?, "request")?;
            let response = commands.call(&spec(&args), &request).await?;
            let text = match args.output {
                Output::Json => format::pretty_json(&response.body),
                Output::Raw => String::from_utf8_lossy(&response.body).into_owned(),
            };
            writeln!(io.out, "{text}").map_err(write_error)?;
        }
        Command::Stream(args) => {
            let request = parse_json(&given_or_stdin(args.request.clone())?, "request")?;
            let responses = commands.stream(&spec(&args), &request).await?;
            print_stream(responses, args.output, io).await?;
        }
        Command::Publish { topic, message } => {
            let message = parse_json(&given_or_stdin(message)?, "message")?;
            commands.publish(&topic, &message).await?;
            writeln!(io.out, "ok").map_err(write_error)?;
        }
        Command::Health(args) => {
            let answers = commands.health(&args.service, args.timeout).await?;
            write!(io.out, "{}", format::health(&args.service, &answers)).map_err(write_error)?;
            let failing = answers.iter().filter(|a| a.answer.is_err()).count();
            if failing > 0 {
                return Err(Error::unavailable(
                    ID,
                    format!(
                        "{failing} of {} nodes of {} are not healthy",
                        answers.len(),
                        args.service
                    ),
                ));
            }
        }
        Command::Stats(args) => {
            let answers = commands.stats(&args.service, args.timeout).await?;
            write!(io.out, "{}", format::stats(&args.service, &answers)).map_err(write_error)?;
        }
        Command::Register { record, ttl, .. } => {
            let service = parse_service(&given_or_stdin(record)?)?;
            commands.register(&service, ttl).await?;
            writeln!(io.out, "ok").map_err(write_error)?;
        }
        Command::Deregister { record, .. } => {
            let service = parse_service(&given_or_stdin(record)?)?;
            commands.deregister(&service).await?;
            writeln!(io.out, "ok").map_err(write_error)?;
        }
        Command::Dynamic(words) => run_dynamic(commands, &words, io).await?,
        Command::New(args) => new_project(&args, io)?,
        Command::Cli | Command::Api(_) => {
            return Err(Error::bad_request(
                ID,
                "the interactive mode and the gateway run from the command line (micro cli, micro api)",
            ));
        }
    }
    Ok(())
}

/// `micro api`: binds, says where, serves until Ctrl-C.
async fn serve_api(commands: Commands, options: api::ApiOptions, io: &mut Io<'_>) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(&options.address)
        .await
        .map_err(|e| {
            Error::unavailable(
                ID,
                format!(
                    "cannot listen on {} ({e}): choose another --address",
                    options.address
                ),
            )
        })?;
    let address = listener
        .local_addr()
        .map_err(|e| Error::internal(ID, format!("the listening address: {e}")))?;
    writeln!(io.out, "micro api listening on http://{address}")
        .and_then(|()| io.out.flush())
        .map_err(|e| Error::internal(ID, format!("writing the answer: {e}")))?;
    let gateway = api::Gateway::new(commands, options);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    gateway
        .serve(listener, shutdown)
        .await
        .map_err(|e| Error::internal(ID, format!("the gateway stopped: {e}")))
}

/// Generates a project in the current directory and says what it wrote and what to run.
fn new_project(args: &new::NewArgs, io: &mut Io<'_>) -> Result<()> {
    let here = std::env::current_dir()
        .map_err(|e| Error::internal(ID, format!("the current directory: {e}")))?;
    let generated = new::generate(args, &here)?;
    let mut text = format!(
        "Creating service {} in {}\n\n",
        args.name,
        generated.dir.display()
    );
    for file in &generated.files {
        text.push_str(&format!("  {file}\n"));
    }
    text.push('\n');
    text.push_str(&generated.next_steps);
    write!(io.out, "{text}").map_err(|e| Error::internal(ID, format!("writing the answer: {e}")))
}

fn spec(args: &CallArgs) -> CallSpec {
    CallSpec {
        address: args.address.clone(),
        metadata: args.metadata.clone(),
        timeout: args.timeout,
        ..CallSpec::new(&args.service, &args.endpoint)
    }
}

/// Prints each message of a stream as it arrives; an error in the stream ends it.
async fn print_stream(
    mut responses: micro::Streaming<serde_json::Value>,
    output: Output,
    io: &mut Io<'_>,
) -> Result<()> {
    while let Some(message) = responses.next().await {
        let message = message?;
        let text = match output {
            Output::Json => format::pretty_json(message.to_string().as_bytes()),
            Output::Raw => message.to_string(),
        };
        writeln!(io.out, "{text}")
            .and_then(|()| io.out.flush())
            .map_err(|e| Error::internal(ID, format!("writing the answer: {e}")))?;
    }
    Ok(())
}

/// `micro SERVICE [TRAIT] METHOD [--field=value ...]`, or `micro SERVICE --help`.
async fn run_dynamic(commands: &Commands, words: &[String], io: &mut Io<'_>) -> Result<()> {
    let Some((name, rest)) = words.split_first() else {
        return Err(Error::bad_request(
            ID,
            "no command given (see micro --help)",
        ));
    };
    let versions = commands.get_service(name).await?;
    let service = &versions[0];
    let wants_help = rest.iter().any(|a| a == "--help" || a == "-h");
    let parts = dynamic::split(rest)?;
    if wants_help || parts.words.is_empty() {
        write!(io.out, "{}", dynamic::help(service))
            .map_err(|e| Error::internal(ID, format!("writing the help: {e}")))?;
        return Ok(());
    }
    let endpoint = dynamic::endpoint(service, &parts.words)?;
    let request = dynamic::request(endpoint, &parts.fields, parts.positional.as_deref())?;
    let spec = CallSpec::new(name.clone(), endpoint.name.clone());
    if endpoint.metadata.get("stream").is_some_and(|s| s == "true") {
        let responses = commands.stream(&spec, &request).await?;
        return print_stream(responses, Output::Json, io).await;
    }
    let response = commands.call(&spec, &request).await?;
    writeln!(io.out, "{}", format::pretty_json(&response.body))
        .map_err(|e| Error::internal(ID, format!("writing the answer: {e}")))
}
