//! The micro grpc system: the `Echo.Echo` handler served by micro's grpc plugin at
//! `/bench.Echo/Echo` (the tonic peer's path, protobuf messages), called by micro's grpc
//! client, both built with the `micro` facade as an application would.

use crate::{BoxError, Caller, PAYLOAD, check_echo};
use micro::client::{self, CallOptions, Client};
use micro::codec::Proto;
use micro::server::Handler;
use micro::{Context, Service};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The request and the response: `bench.EchoMessage` of `proto/echo.proto`.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
pub struct EchoMessage {
    /// The payload.
    #[prost(string, tag = "1")]
    pub data: String,
}

fn env(server: bool) -> Vec<(String, String)> {
    let mut env = vec![
        ("MICRO_SERVER", "grpc"),
        ("MICRO_CLIENT", "grpc"),
        ("MICRO_CLIENT_CONTENT_TYPE", "application/protobuf"),
        ("MICRO_REGISTRY", "memory"),
        ("MICRO_BROKER_ENABLED", "false"),
        ("MICRO_SERVER_ADDRESS", "127.0.0.1:0"),
        ("MICRO_LOGGER_LEVEL", "warn"),
    ];
    if !server {
        env.push(("MICRO_SERVER_ENABLED", "false"));
    }
    env.into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Builds and starts the echo service; returns it with the address its server listens on.
pub async fn serve() -> Result<(Service, String), BoxError> {
    let echo = Handler::unary(
        "Echo.Echo",
        |_ctx: Context, req: Proto<EchoMessage>| async move { Ok(req) },
    )
    .with_metadata("package", "bench");
    let service = Service::builder()
        .name("bench")
        .args(["bench"])
        .env(env(true))
        .handler(echo)
        .build()?;
    service.start().await?;
    let address = service
        .components()
        .server
        .as_ref()
        .and_then(|server| server.address())
        .ok_or("the grpc server has no address")?;
    Ok((service, address))
}

/// A micro grpc client (one HTTP/2 channel) calling the server at a fixed address.
pub struct GrpcCaller {
    _service: Service,
    client: Arc<dyn Client>,
    options: CallOptions,
    request: Proto<EchoMessage>,
}

impl GrpcCaller {
    /// A client of the server at `address`.
    pub async fn connect(address: &str) -> Result<Self, BoxError> {
        let service = Service::builder()
            .name("bench-client")
            .args(["bench-client"])
            .env(env(false))
            .build()?;
        let client = service
            .components()
            .client
            .clone()
            .ok_or("the micro client is disabled")?;
        Ok(GrpcCaller {
            _service: service,
            client,
            options: CallOptions::default()
                .address(address)
                .package("bench")
                .content_type(micro::codec::PROTOBUF),
            request: Proto(EchoMessage {
                data: PAYLOAD.to_string(),
            }),
        })
    }
}

impl Caller for GrpcCaller {
    async fn call(&self) -> Result<(), String> {
        let reply: Proto<EchoMessage> = client::call(
            self.client.as_ref(),
            &Context::new(),
            "bench",
            "Echo.Echo",
            &self.request,
            self.options.clone(),
        )
        .await
        .map_err(|e| e.to_string())?;
        check_echo(reply.0.data.as_bytes())
    }
}
