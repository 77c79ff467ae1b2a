//! The micro systems: a service with an `Echo.Echo` unary handler, built with the `micro`
//! facade exactly as an application would (`mucp` client and server, JSON body), over the
//! `tcp`, `http`, `quic` or `nats` transport (the nats plugin is added to the service's plugin
//! table, as the facade's `nats` feature does).

use crate::{BoxError, Caller, PAYLOAD, check_echo};
use micro::client::{self, CallOptions, Client};
use micro::server::Handler;
use micro::{Context, Service};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The request and the response of `Echo.Echo`.
#[derive(Serialize, Deserialize)]
pub struct Echo {
    /// The payload.
    pub data: String,
}

/// The environment of a benchmark service on `transport` (`tcp` or `http`): the settings
/// below, then every `MICRO_*` variable of the process's environment on top (to try options,
/// e.g. `MICRO_CLIENT_CONTENT_TYPE=application/protobuf`; server children inherit it).
fn env(transport: &str, server: bool) -> Vec<(String, String)> {
    let mut env = vec![
        ("MICRO_TRANSPORT", transport),
        ("MICRO_REGISTRY", "memory"),
        ("MICRO_BROKER_ENABLED", "false"),
        ("MICRO_SERVER_ADDRESS", "127.0.0.1:0"),
        ("MICRO_LOGGER_LEVEL", "warn"),
    ];
    let nats = crate::raw_nats::nats_url();
    if transport == "nats" {
        env.push(("MICRO_TRANSPORT_ADDRESS", &nats));
    }
    if transport == "quic" && !server {
        // The server serves its self-signed development certificate; verification costs
        // only at the handshake, not per call.
        env.push(("MICRO_TRANSPORT_INSECURE_SKIP_VERIFY", "true"));
    }
    if !server {
        env.push(("MICRO_SERVER_ENABLED", "false"));
        env.push(("MICRO_CLIENT_POOL_SIZE", "1"));
    }
    let mut env: Vec<(String, String)> = env
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (key, value) in std::env::vars().filter(|(k, _)| k.starts_with("MICRO_")) {
        env.retain(|(k, _)| *k != key);
        env.push((key, value));
    }
    env
}

/// The `MICRO_*` variables of the process's environment (they override the benchmark's).
pub fn overrides() -> Vec<String> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("MICRO_"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

/// Builds and starts the echo service; returns it with the address its server listens on.
pub async fn serve(transport: &str) -> Result<(Service, String), BoxError> {
    let service = Service::builder()
        .name("bench")
        .args(["bench"])
        .env(env(transport, true))
        .handler(Handler::unary(
            "Echo.Echo",
            |_ctx: Context, req: Echo| async move { Ok(req) },
        ))
        .build()?;
    service.start().await?;
    let address = service
        .components()
        .server
        .as_ref()
        .and_then(|server| server.address())
        .ok_or("the micro server has no address")?;
    Ok((service, address))
}

/// A micro client with one pooled connection, calling the server at a fixed address.
pub struct MicroCaller {
    // Kept alive: the client's components belong to it.
    _service: Service,
    client: Arc<dyn Client>,
    address: String,
    request: Echo,
}

impl MicroCaller {
    /// A client on `transport` of the server at `address`.
    pub async fn connect(transport: &str, address: &str) -> Result<Self, BoxError> {
        let service = Service::builder()
            .name("bench-client")
            .args(["bench-client"])
            .env(env(transport, false))
            .build()?;
        let client = service
            .components()
            .client
            .clone()
            .ok_or("the micro client is disabled")?;
        Ok(MicroCaller {
            _service: service,
            client,
            address: address.to_string(),
            request: Echo {
                data: PAYLOAD.to_string(),
            },
        })
    }
}

impl Caller for MicroCaller {
    async fn call(&self) -> Result<(), String> {
        let reply: Echo = client::call(
            self.client.as_ref(),
            &Context::new(),
            "bench",
            "Echo.Echo",
            &self.request,
            CallOptions::default().address(self.address.clone()),
        )
        .await
        .map_err(|e| e.to_string())?;
        check_echo(reply.data.as_bytes())
    }
}
