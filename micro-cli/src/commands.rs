//! What the `micro` commands do, as a library the API gateway and a dashboard reuse: each
//! operation returns data or a micro error; turning it into text is [`crate::format`]'s job.

use micro::client::{CallOptions, Client, Request, Response};
use micro::registry::{Node, RegisterOptions, Registry, Service};
use micro::{Components, Context, Error, Result, Streaming};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The error id of the tool's own errors.
pub const ID: &str = "micro";

/// One call: where it goes and how.
#[derive(Debug, Clone, Default)]
pub struct CallSpec {
    /// Service name, e.g. `greeter`.
    pub service: String,
    /// Endpoint, e.g. `Greeter.Hello`.
    pub endpoint: String,
    /// Call this node (`host:port`) instead of selecting one from the registry.
    pub address: Option<String>,
    /// Call metadata (headers).
    pub metadata: Vec<(String, String)>,
    /// Deadline of the call; `None` = the client's `request_timeout`.
    pub timeout: Option<Duration>,
}

impl CallSpec {
    /// A call of `endpoint` on `service` with the client's defaults.
    pub fn new(service: impl Into<String>, endpoint: impl Into<String>) -> Self {
        CallSpec {
            service: service.into(),
            endpoint: endpoint.into(),
            ..Default::default()
        }
    }

    fn context(&self) -> Context {
        let mut ctx = Context::new();
        if let Some(timeout) = self.timeout {
            ctx = ctx.with_timeout(timeout);
        }
        for (k, v) in &self.metadata {
            ctx = ctx.with_metadata(k.clone(), v.clone());
        }
        ctx
    }

    fn options(&self) -> CallOptions {
        let mut options = CallOptions::default();
        if let Some(address) = &self.address {
            options = options.address(address.clone());
        }
        if let Some(timeout) = self.timeout {
            options = options.request_timeout(timeout);
        }
        options
    }
}

/// How one node answered `Debug.Health` or `Debug.Stats`.
#[derive(Debug, Clone)]
pub struct NodeAnswer {
    /// The version of the service the node runs.
    pub version: String,
    /// The node.
    pub node: Node,
    /// Its answer, or the error of asking it.
    pub answer: Result<Value>,
}

/// The operations, over a registry and an RPC client.
#[derive(Clone)]
pub struct Commands {
    registry: Arc<dyn Registry>,
    client: Arc<dyn Client>,
}

impl Commands {
    /// Operations over `registry` and `client`.
    pub fn new(registry: Arc<dyn Registry>, client: Arc<dyn Client>) -> Self {
        Commands { registry, client }
    }

    /// Operations over a built service's registry and client; an error says which is off.
    pub fn from_components(components: &Components) -> Result<Self> {
        let missing = |what: &str| {
            Error::bad_request(
                ID,
                format!("the {what} is disabled: enable {what} to use the micro commands"),
            )
        };
        let registry = components
            .registry
            .clone()
            .ok_or_else(|| missing("registry"))?;
        let client = components.client.clone().ok_or_else(|| missing("client"))?;
        Ok(Commands::new(registry, client))
    }

    /// The client the commands call through.
    pub fn client(&self) -> &Arc<dyn Client> {
        &self.client
    }

    /// The registry the commands read.
    pub fn registry(&self) -> &Arc<dyn Registry> {
        &self.registry
    }

    /// Names of the registered services, sorted, each once.
    pub async fn list_services(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .registry
            .list_services()
            .await?
            .into_iter()
            .map(|s| s.name)
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Every version of service `name`; a 404 naming the closest known names when unknown.
    pub async fn get_service(&self, name: &str) -> Result<Vec<Service>> {
        match self.registry.get_service(name).await {
            Ok(found) if !found.is_empty() => Ok(found),
            Ok(_) => Err(self.unknown_service(name).await),
            Err(e) if e.code == 404 => Err(self.unknown_service(name).await),
            Err(e) => Err(e),
        }
    }

    /// The 404 for an unknown service, listing known names close to it.
    async fn unknown_service(&self, name: &str) -> Error {
        let known = self.list_services().await.unwrap_or_default();
        let mut close: Vec<(f64, &String)> = known
            .iter()
            .map(|k| (strsim::jaro_winkler(k, name), k))
            .filter(|(score, k)| *score > 0.7 || k.contains(name) || name.contains(k.as_str()))
            .collect();
        close.sort_by(|a, b| b.0.total_cmp(&a.0));
        let hint = if !close.is_empty() {
            let names: Vec<&str> = close.iter().take(3).map(|(_, k)| k.as_str()).collect();
            format!("; did you mean {}?", names.join(", "))
        } else if known.is_empty() {
            "; no service is registered: is it running, on this registry?".to_string()
        } else {
            "; `micro list services` shows the registered ones".to_string()
        };
        Error::not_found(ID, format!("service {name} not found{hint}"))
    }

    /// A unary call with a JSON `body`; the response as the server encoded it.
    pub async fn call(&self, spec: &CallSpec, body: &Value) -> Result<Response> {
        let body = serde_json::to_vec(body)
            .map_err(|e| Error::bad_request(ID, format!("encoding the request: {e}")))?;
        let mut request = Request::new(spec.service.clone(), spec.endpoint.clone(), body);
        request.context = spec.context();
        self.client.call(request, spec.options()).await
    }

    /// Opens a stream, sends `request` as its one message and returns the responses as
    /// they arrive.
    pub async fn stream(&self, spec: &CallSpec, request: &Value) -> Result<Streaming<Value>> {
        micro::client::server_stream(
            self.client.as_ref(),
            &spec.context(),
            &spec.service,
            &spec.endpoint,
            request,
            spec.options(),
        )
        .await
    }

    /// Publishes a JSON message on `topic` through the broker.
    pub async fn publish(&self, topic: &str, message: &Value) -> Result<()> {
        micro::client::publish(self.client.as_ref(), topic, message).await
    }

    /// Asks every node of `name` for `Debug.Health`.
    pub async fn health(&self, name: &str, timeout: Option<Duration>) -> Result<Vec<NodeAnswer>> {
        self.ask_each_node(name, "Debug.Health", timeout).await
    }

    /// Asks every node of `name` for `Debug.Stats`.
    pub async fn stats(&self, name: &str, timeout: Option<Duration>) -> Result<Vec<NodeAnswer>> {
        self.ask_each_node(name, "Debug.Stats", timeout).await
    }

    async fn ask_each_node(
        &self,
        name: &str,
        endpoint: &str,
        timeout: Option<Duration>,
    ) -> Result<Vec<NodeAnswer>> {
        let mut answers = Vec::new();
        for service in self.get_service(name).await? {
            for node in &service.nodes {
                let spec = CallSpec {
                    address: Some(node.address.clone()),
                    timeout,
                    ..CallSpec::new(name, endpoint)
                };
                let answer = match self.call(&spec, &Value::Object(Default::default())).await {
                    Ok(response) => serde_json::from_slice(&response.body).map_err(|e| {
                        Error::internal(ID, format!("{endpoint} answered with bad JSON: {e}"))
                    }),
                    Err(e) => Err(e),
                };
                answers.push(NodeAnswer {
                    version: service.version.clone(),
                    node: node.clone(),
                    answer,
                });
            }
        }
        Ok(answers)
    }

    /// Registers `service` (with its nodes) for `ttl` (`None` = the registry's default).
    pub async fn register(&self, service: &Service, ttl: Option<Duration>) -> Result<()> {
        check_service(service)?;
        let mut options = RegisterOptions::default();
        if let Some(ttl) = ttl {
            options = options.ttl(ttl);
        }
        self.registry.register(service, options).await
    }

    /// Deregisters `service`'s nodes.
    pub async fn deregister(&self, service: &Service) -> Result<()> {
        check_service(service)?;
        self.registry.deregister(service).await
    }
}

/// A service record given by hand must name the service and at least one node.
fn check_service(service: &Service) -> Result<()> {
    if service.name.trim().is_empty() {
        return Err(Error::bad_request(
            ID,
            "the service has no name: give {\"name\": ..., \"nodes\": [{\"id\": ..., \"address\": ...}]}",
        ));
    }
    if service.nodes.is_empty() {
        return Err(Error::bad_request(
            ID,
            format!(
                "service {} has no nodes: give \"nodes\": [{{\"id\": ..., \"address\": ...}}]",
                service.name
            ),
        ));
    }
    Ok(())
}

/// Parses the JSON of a request or message; the error says what is wrong and what to give.
pub fn parse_json(text: &str, what: &str) -> Result<Value> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_str(text).map_err(|e| {
        Error::bad_request(
            ID,
            format!(
                "the {what} is not valid JSON ({e}): give JSON such as '{{\"name\": \"John\"}}'"
            ),
        )
    })
}

/// Parses a service record (`register service` / `deregister service`).
pub fn parse_service(text: &str) -> Result<Service> {
    serde_json::from_str(text.trim()).map_err(|e| {
        Error::bad_request(
            ID,
            format!(
                "the service is not a valid service record ({e}): give \
                 {{\"name\": \"greeter\", \"nodes\": [{{\"id\": \"greeter-1\", \"address\": \"127.0.0.1:9090\"}}]}}"
            ),
        )
    })
}
