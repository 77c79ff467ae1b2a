//! Endpoints that declare their HTTP route in their registry metadata, matched before the
//! resolver: `path` (a regular expression the whole path must match), `method` (methods,
//! comma-separated; any when absent), `host` (hosts, comma-separated; any when absent),
//! and `handler` for the `meta` handler. The table also keeps every endpoint's `handler`
//! metadata and every service's node addresses, so neither the `meta` handler nor the
//! proxying ones read the registry per request. Both are read from the
//! registry at most once a second, so new and gone services show within a second.

use super::resolver::Route;
use crate::commands::Commands;
use regex::Regex;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a read of the routes is used.
const FRESH: Duration = Duration::from_secs(1);

/// One declared route.
#[derive(Debug)]
struct Declared {
    path: Regex,
    methods: Vec<String>,
    hosts: Vec<String>,
    route: Route,
    handler: Option<String>,
}

/// What one read of the registry gave.
#[derive(Default)]
struct Snapshot {
    declared: Vec<Declared>,
    /// `handler` metadata by (service, endpoint), for every endpoint that has it.
    handlers: HashMap<(String, String), String>,
    /// Node addresses by service (every version), for the proxying handlers.
    nodes: HashMap<String, Vec<String>>,
}

/// The declared routes and `handler` metadata of every registered endpoint, re-read when a
/// second old.
#[derive(Default)]
pub(super) struct RouteTable {
    cached: Mutex<Option<(Instant, Arc<Snapshot>)>>,
}

fn list(text: Option<&String>) -> Vec<String> {
    text.map(|t| {
        t.split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

impl RouteTable {
    async fn snapshot(&self, commands: &Commands) -> Arc<Snapshot> {
        if let Some((at, snapshot)) = &*self.cached.lock().unwrap_or_else(|e| e.into_inner())
            && at.elapsed() < FRESH
        {
            return snapshot.clone();
        }
        let mut snapshot = Snapshot::default();
        for name in commands.list_services().await.unwrap_or_default() {
            for service in commands.get_service(&name).await.unwrap_or_default() {
                snapshot
                    .nodes
                    .entry(service.name.clone())
                    .or_default()
                    .extend(service.nodes.iter().map(|n| n.address.clone()));
                for endpoint in &service.endpoints {
                    let handler = endpoint.metadata.get("handler").cloned();
                    if let Some(handler) = &handler {
                        snapshot.handlers.insert(
                            (service.name.clone(), endpoint.name.clone()),
                            handler.clone(),
                        );
                    }
                    let Some(pattern) = endpoint.metadata.get("path") else {
                        continue;
                    };
                    // A pattern that does not compile is left out (and so not matched).
                    let Ok(path) = Regex::new(&format!("^(?:{pattern})$")) else {
                        continue;
                    };
                    snapshot.declared.push(Declared {
                        path,
                        methods: list(endpoint.metadata.get("method")),
                        hosts: list(endpoint.metadata.get("host")),
                        route: Route {
                            service: service.name.clone(),
                            endpoint: endpoint.name.clone(),
                        },
                        handler,
                    });
                }
            }
        }
        let snapshot = Arc::new(snapshot);
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), snapshot.clone()));
        snapshot
    }

    /// The declared route matching the request, with its `handler` metadata.
    pub(super) async fn find(
        &self,
        commands: &Commands,
        method: &str,
        host: &str,
        path: &str,
    ) -> Option<(Route, Option<String>)> {
        let snapshot = self.snapshot(commands).await;
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
        snapshot
            .declared
            .iter()
            .find(|d| {
                d.path.is_match(path)
                    && (d.methods.is_empty()
                        || d.methods.iter().any(|m| m.eq_ignore_ascii_case(method)))
                    && (d.hosts.is_empty() || d.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)))
            })
            .map(|d| (d.route.clone(), d.handler.clone()))
    }

    /// The node addresses of `service` (empty when it is unknown or has none).
    pub(super) async fn nodes(&self, commands: &Commands, service: &str) -> Vec<String> {
        let snapshot = self.snapshot(commands).await;
        snapshot.nodes.get(service).cloned().unwrap_or_default()
    }

    /// The `handler` metadata of `route`'s endpoint, if it has one.
    pub(super) async fn handler(&self, commands: &Commands, route: &Route) -> Option<String> {
        let snapshot = self.snapshot(commands).await;
        snapshot
            .handlers
            .get(&(route.service.clone(), route.endpoint.clone()))
            .cloned()
    }
}
