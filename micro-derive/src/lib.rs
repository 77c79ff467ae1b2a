//! Procedural macros of micro.
//!
//! - `#[micro::service]` and `#[micro::subscriber]` generate service servers, clients and
//!   subscriptions (see their docs).
//! - `#[derive(Component)]` turns a component's (or a plugin's) config struct into option
//!   specs (flags, env vars, help from doc comments, defaults) and a `Default` impl.

extern crate proc_macro;

mod component;
mod paths;
mod service;
mod subscriber;
mod wire;

use proc_macro::TokenStream;

/// Derives `micro::config::Component` and `Default` for a config struct.
///
/// Struct attributes: `#[component(section = "store")]` (required), `#[component(plugin =
/// "file")]` for the options of one plugin. Field attributes: `#[component(default = EXPR)]`
/// (a string literal becomes a `String`), `#[component(flag = "register_ttl")]` to choose the
/// flag name, `#[component(alias = "client_retries")]` for an extra flag name,
/// `#[component(nested)]` for a sub-section such as `logger`, `#[component(skip)]` for a field
/// with no flag. The doc comment of a field is its help text.
#[proc_macro_derive(Component, attributes(component))]
pub fn derive_component(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    component::expand(input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Derives typed component wiring for an application struct whose fields are component
/// handles (`micro::Client`, `micro::Broker`, ...): `App::builder()` builds only those
/// components, `App::wire(&service)` hands them out. `#[wire(config = "configs/app.yaml")]`
/// reads the YAML at compile time and fails the build when it names a plugin whose Cargo
/// feature is off.
#[proc_macro_derive(Wire, attributes(wire))]
pub fn derive_wire(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    wire::expand(input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Turns a trait into a micro service: endpoints `Trait.Method`, a server adapter and a
/// typed client.
///
/// Each method is `async fn name(&self, ctx: &micro::Context, req: Req) ->
/// micro::Result<Resp>`; `micro::Streaming<T>` as the request and/or inside the result makes
/// a client, server or bidirectional stream. Generated next to the trait (which gains
/// `Send + Sync + 'static` and `Send` futures, so implementations still write `async fn`):
/// `TraitServer<T>` (`TraitServer::new(impl)`, for `ServiceBuilder::handler`) and
/// `TraitClient` (`TraitClient::new(service.caller(), "name")`), which implements the trait,
/// in-process when the service runs in this process and over RPC otherwise.
///
/// Options: `#[micro::service(codec = "protobuf")]` or `#[micro(protobuf)]` on the trait puts
/// prost messages on the wire (as `micro::codec::Proto<T>`);
/// `#[micro::service(package = "greeter.v1")]` names the protobuf package (micro-build writes
/// it from the `.proto`): the endpoints publish it as `package` metadata and the client passes
/// it in `CallOptions::package`, so the grpc plugin's method path is
/// `/greeter.v1.Greeter/Hello`; on a method,
/// `#[micro(name = "Count")]` renames the endpoint (`Trait.Count`) and `#[micro(idempotent)]`
/// lets the client retry it after any failure. A method's doc comment becomes its
/// `description` metadata; request/response types that implement `schemars::JsonSchema`
/// publish their shapes in the registry.
#[proc_macro_attribute]
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    service::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Makes an `async fn handler(ctx: &micro::Context, message: T) -> micro::Result<()>` a
/// topic subscriber: `#[micro::subscriber(topic = "orders.placed", queue = "mailer")]`
/// (`queue` optional: without it every instance gets every message; `codec = "protobuf"`
/// for prost messages) keeps the function and adds `handler_subscription()`, the
/// `micro::server::Subscription` for `ServiceBuilder::subscriber`.
#[proc_macro_attribute]
pub fn subscriber(attr: TokenStream, item: TokenStream) -> TokenStream {
    subscriber::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
