//! Load balancing: picks a node of a service for each call, with filters and a strategy.

use crate::registry::{Node, Service};
use crate::{Error, Result};
use async_trait::async_trait;
use std::sync::Arc;

/// How a node is picked among the candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Strategy {
    /// Uniformly at random (default).
    #[default]
    Random,
    /// In turn, rotating across calls.
    RoundRobin,
}

impl Strategy {
    /// The name it is configured by (`random`, `roundrobin`).
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Random => "random",
            Strategy::RoundRobin => "roundrobin",
        }
    }
}

impl std::str::FromStr for Strategy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "random" | "" => Ok(Strategy::Random),
            "roundrobin" | "round_robin" => Ok(Strategy::RoundRobin),
            other => Err(Error::bad_request(
                "go.micro.selector",
                format!("unknown selector strategy {other:?}: use random or roundrobin"),
            )),
        }
    }
}

/// Narrows the candidate nodes of a selection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Filter {
    /// Only this service version.
    Version(String),
    /// Only nodes whose metadata has `key=value`.
    Metadata(String, String),
    /// Only service versions that declare this endpoint.
    Endpoint(String),
}

impl std::fmt::Display for Filter {
    /// As an error message names it: `version 1.0`, `metadata zone=a`, `endpoint Greeter.Hello`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Filter::Version(v) => write!(f, "version {v}"),
            Filter::Metadata(k, v) => write!(f, "metadata {k}={v}"),
            Filter::Endpoint(e) => write!(f, "endpoint {e}"),
        }
    }
}

impl Filter {
    /// Keeps the services and nodes this filter allows; services left without nodes go.
    pub fn apply(&self, services: Vec<Service>) -> Vec<Service> {
        services
            .into_iter()
            .filter_map(|mut s| {
                match self {
                    Filter::Version(v) => {
                        if &s.version != v {
                            return None;
                        }
                    }
                    Filter::Endpoint(e) => {
                        if !s.endpoints.iter().any(|ep| &ep.name == e) {
                            return None;
                        }
                    }
                    Filter::Metadata(k, v) => {
                        s.nodes
                            .retain(|n| n.metadata.get(k).is_some_and(|x| x == v));
                    }
                }
                (!s.nodes.is_empty()).then_some(s)
            })
            .collect()
    }
}

option_struct! {
    /// Options of one selection.
    #[derive(Debug, Clone, Default)]
    pub struct SelectOptions {
        /// Filters applied in order.
        pub filters: Vec<Filter>,
        /// Overrides the selector's strategy for this call.
        pub strategy: Option<Strategy>,
        /// Only nodes that speak this transport (see [`speaks`]); an RPC client sets its own.
        pub transport: Option<Arc<str>>,
    }
}

/// Whether `node` can be reached over `transport`: its `transport` metadata names it, or the
/// node does not say (e.g. registered by another framework).
pub fn speaks(node: &Node, transport: Option<&str>) -> bool {
    match (transport, node.metadata.get("transport")) {
        (Some(wanted), Some(has)) => has == wanted,
        _ => true,
    }
}

/// The error detail when every node of `services` speaks another transport than
/// `transport`, naming what they speak and what to do; `None` otherwise.
pub fn transport_mismatch(
    service: &str,
    services: &[Service],
    transport: Option<&str>,
) -> Option<String> {
    let wanted = transport?;
    let mut spoken: Vec<&str> = services
        .iter()
        .flat_map(|s| &s.nodes)
        .filter_map(|n| n.metadata.get("transport").map(String::as_str))
        .filter(|t| *t != wanted)
        .collect();
    if spoken.is_empty() {
        return None;
    }
    spoken.sort_unstable();
    spoken.dedup();
    Some(format!(
        "service {service}: no node speaks transport {wanted} (its nodes speak {}): \
         run the client on the same transport as the service (transport.plugin, --transport)",
        spoken.join(", ")
    ))
}

/// Picks nodes for calls.
#[async_trait]
pub trait Selector: Send + Sync + 'static {
    /// Plugin name, e.g. `cache`.
    fn name(&self) -> &str;
    /// A node of `service`; a 503 error when none is available.
    async fn select(&self, service: &str, options: &SelectOptions) -> Result<Node>;
    /// Reports how a call to `node` went, so a failing node can be skipped for a while.
    fn mark(&self, service: &str, node: &Node, outcome: std::result::Result<(), &Error>);
    /// Forgets what is cached about `service`.
    async fn reset(&self, service: &str);
}
