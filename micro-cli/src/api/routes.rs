//! Endpoints that declare their HTTP route in their registry metadata, matched before the
//! resolver: `path` (a regular expression the whole path must match), `method` (methods,
//! comma-separated; any when absent), `host` (hosts, comma-separated; any when absent),
//! and `handler` for the `meta` handler. They are read from the registry at most once a
//! second, so new and gone services show within a second.

use super::resolver::Route;
use crate::commands::Commands;
use regex::Regex;
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

/// The declared routes of every registered endpoint, re-read when a second old.
#[derive(Default)]
pub(super) struct RouteTable {
    cached: Mutex<Option<(Instant, Arc<Vec<Declared>>)>>,
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
    async fn routes(&self, commands: &Commands) -> Arc<Vec<Declared>> {
        if let Some((at, routes)) = &*self.cached.lock().unwrap_or_else(|e| e.into_inner())
            && at.elapsed() < FRESH
        {
            return routes.clone();
        }
        let mut declared = Vec::new();
        for name in commands.list_services().await.unwrap_or_default() {
            for service in commands.get_service(&name).await.unwrap_or_default() {
                for endpoint in &service.endpoints {
                    let Some(pattern) = endpoint.metadata.get("path") else {
                        continue;
                    };
                    // A pattern that does not compile is left out (and so not matched).
                    let Ok(path) = Regex::new(&format!("^(?:{pattern})$")) else {
                        continue;
                    };
                    declared.push(Declared {
                        path,
                        methods: list(endpoint.metadata.get("method")),
                        hosts: list(endpoint.metadata.get("host")),
                        route: Route {
                            service: service.name.clone(),
                            endpoint: endpoint.name.clone(),
                        },
                        handler: endpoint.metadata.get("handler").cloned(),
                    });
                }
            }
        }
        let routes = Arc::new(declared);
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), routes.clone()));
        routes
    }

    /// The declared route matching the request, with its `handler` metadata.
    pub(super) async fn find(
        &self,
        commands: &Commands,
        method: &str,
        host: &str,
        path: &str,
    ) -> Option<(Route, Option<String>)> {
        let routes = self.routes(commands).await;
        let method = method.to_ascii_lowercase();
        let host = host
            .rsplit_once(':')
            .map_or(host, |(h, _)| h)
            .to_ascii_lowercase();
        routes
            .iter()
            .find(|d| {
                d.path.is_match(path)
                    && (d.methods.is_empty() || d.methods.contains(&method))
                    && (d.hosts.is_empty() || d.hosts.contains(&host))
            })
            .map(|d| (d.route.clone(), d.handler.clone()))
    }
}
