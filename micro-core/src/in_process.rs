//! In-process calls: services started in this process publish their typed implementations
//! in a [`LocalServices`] table, and generated clients call them directly — no socket, no
//! serialization — while still running the middleware and honouring deadlines.
//!
//! The table is a value, not a global: services share one by being built with the same table
//! ([`crate::ServiceBuilder::local_services`]); a monolith passes one table to all its
//! services, a split deployment gets one per process.

use crate::client::{Client, Request, Response};
use crate::middleware::{self, Middleware, RpcLayer};
use crate::{Context, Error, Result};
use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};

/// A typed implementation of a service interface, as a server adapter offers it.
#[derive(Clone)]
pub struct LocalImpl {
    /// The interface (trait) name, e.g. `Greeter`.
    pub interface: &'static str,
    /// The implementation, as the generated code boxes it (`Arc<dyn GreeterDyn>`).
    pub implementation: Arc<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for LocalImpl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalImpl")
            .field("interface", &self.interface)
            .finish()
    }
}

/// One started service's implementation of one interface.
#[derive(Clone)]
pub struct LocalEntry {
    /// The implementation.
    pub implementation: Arc<dyn Any + Send + Sync>,
    /// The serving service's handler middleware.
    pub handler_layers: Vec<RpcLayer>,
}

impl LocalEntry {
    /// The implementation as `T` (the generated code's boxed trait object).
    pub fn get<T: Clone + 'static>(&self) -> Option<T> {
        self.implementation.downcast_ref::<T>().cloned()
    }
}

type Key = (String, &'static str);

/// Implementations of services running in this process. Cheap to clone; clones share.
#[derive(Clone, Default)]
pub struct LocalServices {
    entries: Arc<RwLock<HashMap<Key, LocalEntry>>>,
}

impl std::fmt::Debug for LocalServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        f.debug_list().entries(entries.keys()).finish()
    }
}

impl LocalServices {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Publishes `service`'s implementations (when it starts).
    pub fn publish(&self, service: &str, impls: &[LocalImpl], handler_layers: &[RpcLayer]) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        for imp in impls {
            entries.insert(
                (service.to_string(), imp.interface),
                LocalEntry {
                    implementation: imp.implementation.clone(),
                    handler_layers: handler_layers.to_vec(),
                },
            );
        }
    }

    /// Withdraws every implementation of `service` (when it stops).
    pub fn withdraw(&self, service: &str) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries.retain(|(name, _), _| name != service);
    }

    /// The implementation of `interface` by `service`, if that service runs here.
    pub fn get(&self, service: &str, interface: &'static str) -> Option<LocalEntry> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.get(&(service.to_string(), interface)).cloned()
    }
}

/// What generated clients need to call a service: the RPC client for remote calls, the
/// in-process table, and the caller's middleware.
#[derive(Clone)]
pub struct Caller {
    /// The RPC client (`None` when the client component is disabled).
    pub client: Option<Arc<dyn Client>>,
    /// Services in this process.
    pub local: LocalServices,
    /// The calling service's middleware (its `call` layers run on in-process calls too).
    pub middleware: Middleware,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("local", &self.local)
            .finish()
    }
}

impl Caller {
    /// The RPC client, or the error saying how to get one.
    pub fn client(&self) -> Result<&dyn Client> {
        self.client.as_deref().ok_or_else(|| {
            Error::bad_request(
                "go.micro.client",
                "the client is disabled: enable client to call remote services",
            )
        })
    }
}

/// Runs `work` under `ctx`'s deadline (see [`crate::context::under_deadline`]), dropping it
/// at once when the deadline passes.
pub async fn until_deadline<T>(ctx: &Context, work: impl Future<Output = Result<T>>) -> Result<T> {
    crate::context::under_deadline(ctx, work, std::time::Duration::ZERO).await
}

/// Calls an in-process implementation: the caller's `call` layers and the server's handler
/// layers run around it (seeing the service, endpoint, metadata and deadline; the body stays
/// typed and is not encoded), all under the context's deadline.
pub async fn call_local<Resp, Fut>(
    caller: &Caller,
    entry: &LocalEntry,
    service: &str,
    endpoint: &str,
    ctx: &Context,
    call: impl FnOnce(Context) -> Fut + Send + 'static,
) -> Result<Resp>
where
    Resp: Send + 'static,
    Fut: Future<Output = Result<Resp>> + Send + 'static,
{
    let layers: Vec<RpcLayer> = caller
        .middleware
        .call
        .iter()
        .chain(entry.handler_layers.iter())
        .cloned()
        .collect();
    if layers.is_empty() {
        let ctx = ctx.clone();
        return until_deadline(&ctx.clone(), call(ctx)).await;
    }
    let call = Arc::new(Mutex::new(Some(call)));
    let slot: Arc<Mutex<Option<Resp>>> = Arc::new(Mutex::new(None));
    let (call_in, slot_in) = (call.clone(), slot.clone());
    let inner = middleware::service_fn(move |request: Request| {
        let taken = call_in.lock().unwrap_or_else(|e| e.into_inner()).take();
        let slot = slot_in.clone();
        async move {
            let call = taken.ok_or_else(|| {
                Error::internal(
                    "go.micro.client",
                    "middleware called an in-process handler twice",
                )
            })?;
            let ctx = request.context;
            let response = until_deadline(&ctx.deadline_only(), call(ctx)).await?;
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(response);
            Ok(Response::default())
        }
    });
    let request = Request {
        service: service.to_string(),
        endpoint: endpoint.to_string(),
        content_type: String::new(),
        body: Default::default(),
        context: ctx.clone(),
        stream: false,
    };
    until_deadline(
        ctx,
        middleware::call(&middleware::stack(&layers, inner), request),
    )
    .await?;
    let response = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    response.ok_or_else(|| {
        Error::internal(
            "go.micro.client",
            "middleware answered without calling the handler",
        )
    })
}
