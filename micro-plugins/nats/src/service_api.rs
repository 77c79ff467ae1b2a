//! The NATS service API for every node registered with the nats registry, so standard NATS
//! tooling (`nats micro ls`, `nats micro info`, `nats micro stats`) lists micro services.
//!
//! Each node answers, on the registry's connection:
//! - `$SRV.PING`, `$SRV.INFO`, `$SRV.STATS` (every service),
//! - `$SRV.<VERB>.<name>` and `$SRV.<VERB>.<name>.<id>`,
//!
//! with `io.nats.micro.v1.ping_response`, `info_response` and `stats_response` JSON (the
//! types of async-nats' `service` module). `<name>` and `<id>` are the service name and
//! node id escaped with [`crate::registry::escape`] (a plain name such as `greeter` or
//! `greeter-1f3c...` stays as it is); the original name is in the metadata as `micro.name`
//! when it differs. Three subscriptions per node: `$SRV.*`, `$SRV.*.<name>`,
//! `$SRV.*.<name>.<id>`; other verbs (`SCHEMA`) get no answer.
//!
//! A node's responders start when it is first registered, take the new service data on
//! every re-registration, stop on deregistration or when the registry is dropped, and stop
//! answering once the node's TTL passes without a re-registration (as its registry record
//! expires).
//!
//! Endpoint stats are real counts: [`ServiceApi::layer`] is the registry's
//! [`micro_core::registry::Registry::handler_layer`], which the service builder puts
//! outermost around every unary handler of the service (and its in-process dispatch).
//! Streaming endpoints are not counted (the server's handler middleware covers unary
//! endpoints only).

use crate::registry::escape;
use async_nats::Client;
use async_nats::service::{Info, PingResponse, Stats, endpoint, error as service_error};
use bytes::Bytes;
use futures::StreamExt;
use micro_core::Error;
use micro_core::client::{Request, Response};
use micro_core::logger::Logger;
use micro_core::middleware::{self, RpcLayer, RpcService};
use micro_core::registry::Service;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use tokio::task::JoinHandle;

const ID: &str = "go.micro.registry";

/// Request counts of one endpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointCounts {
    /// Requests handled (finished or cut).
    pub requests: u64,
    /// Requests that ended in an error (or were cut before answering).
    pub errors: u64,
    /// Time spent on all of them.
    pub processing_time: Duration,
    /// The last error: code and detail.
    pub last_error: Option<(u16, String)>,
}

/// Request counts per `(service, endpoint)`, fed by [`ServiceApi::layer`].
#[derive(Debug, Default)]
pub struct EndpointStats {
    counts: Mutex<HashMap<(String, String), EndpointCounts>>,
}

impl EndpointStats {
    fn lock(&self) -> MutexGuard<'_, HashMap<(String, String), EndpointCounts>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The counts of `endpoint` of `service` (zeros when it was never called).
    pub fn get(&self, service: &str, endpoint: &str) -> EndpointCounts {
        self.lock()
            .get(&(service.to_string(), endpoint.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    fn record(&self, service: &str, endpoint: &str, took: Duration, error: Option<&Error>) {
        let mut counts = self.lock();
        let entry = counts
            .entry((service.to_string(), endpoint.to_string()))
            .or_default();
        entry.requests += 1;
        entry.processing_time += took;
        if let Some(err) = error {
            entry.errors += 1;
            entry.last_error = Some((err.code, err.detail.clone()));
        }
    }
}

/// Counts one request when dropped: as an error when it never finished (deadline passed,
/// caller gone).
struct Counting {
    stats: Arc<EndpointStats>,
    service: String,
    endpoint: String,
    started: Instant,
    outcome: Option<Option<Error>>,
}

impl Drop for Counting {
    fn drop(&mut self) {
        let cut;
        let error = match &self.outcome {
            Some(outcome) => outcome.as_ref(),
            None => {
                cut = Error::timeout(
                    ID,
                    "the request was cut before it was answered (deadline passed or caller gone)",
                );
                Some(&cut)
            }
        };
        self.stats
            .record(&self.service, &self.endpoint, self.started.elapsed(), error);
    }
}

/// Subscriptions answering the service API, one set per registered node.
pub struct ServiceApi {
    stats: Arc<EndpointStats>,
    responders: Mutex<HashMap<(String, String), Responder>>,
    logger: Logger,
}

impl std::fmt::Debug for ServiceApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceApi")
            .field("nodes", &self.lock().len())
            .finish()
    }
}

/// One node's answers: what it says and the task answering.
struct Responder {
    current: Arc<Mutex<Current>>,
    task: JoinHandle<()>,
}

/// The node's current registration.
#[derive(Clone)]
struct Current {
    /// The service with this one node.
    service: Service,
    expires: Option<SystemTime>,
    started: SystemTime,
}

impl Drop for ServiceApi {
    fn drop(&mut self) {
        for (_, responder) in self.lock().drain() {
            responder.task.abort();
        }
    }
}

impl ServiceApi {
    /// No responders yet; warnings go to `logger`.
    pub fn new(logger: Logger) -> Self {
        ServiceApi {
            stats: Arc::new(EndpointStats::default()),
            responders: Mutex::new(HashMap::new()),
            logger,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<(String, String), Responder>> {
        self.responders.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The request counts the STATS answers report.
    pub fn stats(&self) -> &Arc<EndpointStats> {
        &self.stats
    }

    /// Middleware counting every request per `(service, endpoint)`, outermost: the time
    /// includes the inner middleware; a request cut by its deadline counts as an error.
    pub fn layer(&self) -> RpcLayer {
        let stats = self.stats.clone();
        RpcLayer::new(tower::layer::layer_fn(move |inner: RpcService| {
            let stats = stats.clone();
            middleware::service_fn(move |request: Request| {
                let (stats, inner) = (stats.clone(), inner.clone());
                async move {
                    let mut counting = Counting {
                        stats,
                        service: request.service.clone(),
                        endpoint: request.endpoint.clone(),
                        started: Instant::now(),
                        outcome: None,
                    };
                    let result: micro_core::Result<Response> =
                        middleware::call(&inner, request).await;
                    counting.outcome = Some(result.as_ref().err().cloned());
                    result
                }
            })
        }))
    }

    /// Starts answering for every node of `service` (or takes its new data when it already
    /// answers), until `expires` passes without another call.
    pub async fn register(
        &self,
        client: &Client,
        service: &Service,
        expires: Option<SystemTime>,
    ) -> micro_core::Result<()> {
        let mut started = false;
        for node in &service.nodes {
            let key = (service.name.clone(), node.id.clone());
            let current = Current {
                service: Service {
                    nodes: vec![node.clone()],
                    ..service.clone()
                },
                expires,
                started: SystemTime::now(),
            };
            {
                let mut responders = self.lock();
                if let Some(responder) = responders.get(&key)
                    && !responder.task.is_finished()
                {
                    let mut slot = responder.current.lock().unwrap_or_else(|e| e.into_inner());
                    let started = slot.started;
                    *slot = Current { started, ..current };
                    continue;
                }
                responders.remove(&key);
            }
            let responder = self.start(client, current).await?;
            started = true;
            // A concurrent register of the same node may have started one too: keep ours.
            if let Some(old) = self.lock().insert(key, responder) {
                old.task.abort();
            }
        }
        if started {
            // The server has the subscriptions once the flush returns: a request sent right
            // after `register` returns is answered.
            client.flush().await.map_err(|e| {
                Error::unavailable(
                    ID,
                    format!("service API: flushing the $SRV subscriptions failed: {e}"),
                )
            })?;
        }
        Ok(())
    }

    /// Stops answering for the nodes of `service`.
    pub fn deregister(&self, service: &Service) {
        let mut responders = self.lock();
        for node in &service.nodes {
            if let Some(responder) = responders.remove(&(service.name.clone(), node.id.clone())) {
                responder.task.abort();
            }
        }
    }

    async fn start(&self, client: &Client, current: Current) -> micro_core::Result<Responder> {
        let name = escape(&current.service.name);
        let id = escape(&current.service.nodes[0].id);
        let mut subscriptions = Vec::new();
        for subject in [
            "$SRV.*".to_string(),
            format!("$SRV.*.{name}"),
            format!("$SRV.*.{name}.{id}"),
        ] {
            let subscription = client.subscribe(subject.clone()).await.map_err(|e| {
                Error::unavailable(
                    ID,
                    format!("service API: subscribing to {subject} failed: {e}; is the NATS connection up?"),
                )
            })?;
            subscriptions.push(subscription);
        }
        let current = Arc::new(Mutex::new(current));
        let task = tokio::spawn(answer(
            client.clone(),
            futures::stream::select_all(subscriptions),
            current.clone(),
            self.stats.clone(),
            self.logger.clone(),
        ));
        Ok(Responder { current, task })
    }
}

/// Answers the node's service API requests until its registration expires.
async fn answer(
    client: Client,
    mut requests: futures::stream::SelectAll<async_nats::Subscriber>,
    current: Arc<Mutex<Current>>,
    stats: Arc<EndpointStats>,
    logger: Logger,
) {
    while let Some(message) = requests.next().await {
        let now = current.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if now.expires.is_some_and(|at| at <= SystemTime::now()) {
            return;
        }
        let Some(reply) = message.reply else {
            continue;
        };
        let verb = message.subject.split('.').nth(1).unwrap_or_default();
        let body = match verb {
            "PING" => serde_json::to_vec(&ping(&now.service)),
            "INFO" => serde_json::to_vec(&info(&now.service)),
            "STATS" => serde_json::to_vec(&stats_of(&now, &stats)),
            _ => continue,
        };
        let sent = match body {
            Ok(body) => client
                .publish(reply, Bytes::from(body))
                .await
                .err()
                .map(|e| e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(err) = sent {
            logger.in_scope(|| {
                tracing::warn!(
                    subject = %message.subject,
                    service = %now.service.name,
                    error = %err,
                    "service API: answering {} failed: {err}",
                    message.subject
                )
            });
        }
    }
}

/// The name on the service API, and the metadata with `micro.name` when it had to change.
fn identity(service: &Service) -> (String, HashMap<String, String>) {
    let name = escape(&service.name);
    let mut metadata: HashMap<String, String> = service.metadata.clone().into_iter().collect();
    if name != service.name {
        metadata.insert("micro.name".into(), service.name.clone());
    }
    if let Some(node) = service.nodes.first() {
        metadata.insert("micro.address".into(), node.address.clone());
    }
    (name, metadata)
}

fn node_id(service: &Service) -> String {
    service
        .nodes
        .first()
        .map(|n| escape(&n.id))
        .unwrap_or_default()
}

/// The `io.nats.micro.v1.ping_response` of `service`'s node.
pub fn ping(service: &Service) -> PingResponse {
    let (name, metadata) = identity(service);
    PingResponse {
        kind: "io.nats.micro.v1.ping_response".into(),
        name,
        id: node_id(service),
        version: service.version.clone(),
        metadata,
    }
}

/// The `io.nats.micro.v1.info_response` of `service`'s node: its endpoints, each with its
/// name as subject and the service name as queue group.
pub fn info(service: &Service) -> Info {
    let (name, metadata) = identity(service);
    Info {
        kind: "io.nats.micro.v1.info_response".into(),
        name,
        id: node_id(service),
        description: service
            .metadata
            .get("description")
            .cloned()
            .unwrap_or_default(),
        version: service.version.clone(),
        metadata,
        endpoints: service
            .endpoints
            .iter()
            .map(|e| endpoint::Info {
                name: e.name.clone(),
                subject: e.name.clone(),
                queue_group: service.name.clone(),
                metadata: e.metadata.clone().into_iter().collect(),
            })
            .collect(),
    }
}

/// The `io.nats.micro.v1.stats_response` of the node, with the counts of its endpoints.
fn stats_of(current: &Current, stats: &EndpointStats) -> Stats {
    let service = &current.service;
    let (name, _) = identity(service);
    Stats {
        kind: "io.nats.micro.v1.stats_response".into(),
        name,
        id: node_id(service),
        version: service.version.clone(),
        started: current.started.into(),
        endpoints: service
            .endpoints
            .iter()
            .map(|e| {
                let counts = stats.get(&service.name, &e.name);
                endpoint::Stats {
                    name: e.name.clone(),
                    subject: e.name.clone(),
                    queue_group: service.name.clone(),
                    requests: counts.requests as usize,
                    errors: counts.errors as usize,
                    processing_time: counts.processing_time,
                    average_processing_time: average(counts.processing_time, counts.requests),
                    last_error: counts
                        .last_error
                        .map(|(code, status)| service_error::Error {
                            code: code as usize,
                            status,
                        }),
                    data: None,
                }
            })
            .collect(),
    }
}

/// `total / count`, zero when nothing was counted.
fn average(total: Duration, count: u64) -> Duration {
    match u128::from(count) {
        0 => Duration::ZERO,
        n => Duration::from_nanos(u64::try_from(total.as_nanos() / n).unwrap_or(u64::MAX)),
    }
}
