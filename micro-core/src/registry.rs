//! Service discovery: where services run, with their endpoints, in go-micro's JSON shapes.

use crate::Result;
use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// A service at one version, with the nodes that run it.
///
/// `get_service` returns one `Service` per version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Service {
    /// Service name, e.g. `greeter`.
    pub name: String,
    /// Version, e.g. `1.0.0` (`latest` when none was given).
    #[serde(default)]
    pub version: String,
    /// Free-form metadata of the service.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// The endpoints it answers.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// The running instances.
    #[serde(default)]
    pub nodes: Vec<Node>,
}

/// One running instance of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Node {
    /// Unique id, by default `<name>-<uuid>`.
    pub id: String,
    /// `host:port` (or a transport-specific address) to dial.
    pub address: String,
    /// Node metadata: `transport`, `broker`, `server`, `registry`, `protocol`, ...
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// An endpoint (`Greeter.Hello`) with its request and response shapes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Endpoint {
    /// `Trait.Method`.
    pub name: String,
    /// Request shape.
    #[serde(default)]
    pub request: Option<Value>,
    /// Response shape.
    #[serde(default)]
    pub response: Option<Value>,
    /// `stream`, `subscriber`, `topic`, `description`, ...
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// A named, typed value with its fields, as go-micro's `registry.Value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Value {
    /// Field name (the type name at the top level).
    pub name: String,
    /// Type name: `string`, `int64`, `[]Item`, a message name, ...
    #[serde(rename = "type")]
    pub type_: String,
    /// Fields of a message type.
    #[serde(default)]
    pub values: Vec<Value>,
}

/// What happened to a service, as seen by [`Registry::watch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Action {
    /// A service version or node appeared.
    Create,
    /// A known service version changed (e.g. a node re-registered with new data).
    Update,
    /// Nodes (or a whole version) went away, by deregistration or TTL expiry.
    Delete,
}

/// One change delivered by a watch: the action and the service it concerns. For `Delete`
/// the service lists the nodes that went away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// What happened.
    pub action: Action,
    /// The service (one version) it happened to.
    pub service: Service,
    /// When the registry saw it.
    pub timestamp: SystemTime,
}

option_struct! {
    /// Options of [`Registry::register`].
    #[derive(Debug, Clone, Default)]
    pub struct RegisterOptions {
        /// How long the nodes live without being registered again; `None` = until deregistered.
        pub ttl: Option<Duration>,
    }
}

option_struct! {
    /// Options of [`Registry::watch`].
    #[derive(Debug, Clone, Default)]
    pub struct WatchOptions {
        /// Only report this service; `None` = every service.
        pub service: Option<String>,
    }
}

/// A stream of registry changes; ends when the registry closes it.
pub type Watcher = BoxStream<'static, Result<WatchEvent>>;

/// Service discovery backend.
#[async_trait]
pub trait Registry: Send + Sync + 'static {
    /// Plugin name, e.g. `memory`.
    fn name(&self) -> &str;

    /// Adds the service's nodes (or refreshes them, restarting their TTL).
    async fn register(&self, service: &Service, options: RegisterOptions) -> Result<()>;

    /// Removes the service's nodes; a version with no nodes left disappears.
    async fn deregister(&self, service: &Service) -> Result<()>;

    /// Every version of the named service, one entry each; a 404 error when there is none.
    async fn get_service(&self, name: &str) -> Result<Vec<Service>>;

    /// Every known service version (nodes may be left out by some backends).
    async fn list_services(&self) -> Result<Vec<Service>>;

    /// Changes from now on.
    async fn watch(&self, options: WatchOptions) -> Result<Watcher>;

    /// Middleware this registry wants around every handler of the service it is built for,
    /// outermost, e.g. to count requests per endpoint for a stats API it answers (the nats
    /// registry's `$SRV.STATS`). The service builder adds it to the handler middleware the
    /// server (and the in-process dispatch) gets. `None`, the default, adds nothing.
    fn handler_layer(&self) -> Option<crate::middleware::RpcLayer> {
        None
    }
}

/// Groups whole service records, each with the revision it was written at, into one
/// `Service` per `(name, version)`: nodes merged and sorted by id, metadata and endpoints
/// from the newest record. For registries that keep a record per node (nats, etcd).
pub fn group_versions(records: impl IntoIterator<Item = (u64, Service)>) -> Vec<Service> {
    let mut versions: BTreeMap<(String, String), (u64, Service)> = BTreeMap::new();
    for (revision, service) in records {
        let slot = versions
            .entry((service.name.clone(), service.version.clone()))
            .or_insert_with(|| {
                (
                    0,
                    Service {
                        nodes: Vec::new(),
                        ..service.clone()
                    },
                )
            });
        if revision > slot.0 {
            slot.0 = revision;
            slot.1.metadata = service.metadata.clone();
            slot.1.endpoints = service.endpoints.clone();
        }
        merge_nodes(&mut slot.1.nodes, &service.nodes);
    }
    versions
        .into_values()
        .map(|(_, mut service)| {
            service.nodes.sort_by(|a, b| a.id.cmp(&b.id));
            service
        })
        .collect()
}

/// Merges `incoming` nodes into `existing` (same id replaces); used by registries that keep
/// whole service records.
pub fn merge_nodes(existing: &mut Vec<Node>, incoming: &[Node]) {
    for node in incoming {
        match existing.iter_mut().find(|n| n.id == node.id) {
            Some(slot) => *slot = node.clone(),
            None => existing.push(node.clone()),
        }
    }
}

/// The service's version, or `latest` when it is empty.
pub fn version_or_latest(version: &str) -> &str {
    if version.is_empty() {
        "latest"
    } else {
        version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_in_go_micro_shape() {
        let service = Service {
            name: "greeter".into(),
            version: "1.0.0".into(),
            endpoints: vec![Endpoint {
                name: "Greeter.Hello".into(),
                request: Some(Value {
                    name: "HelloRequest".into(),
                    type_: "HelloRequest".into(),
                    values: vec![Value {
                        name: "name".into(),
                        type_: "string".into(),
                        values: vec![],
                    }],
                }),
                response: None,
                metadata: BTreeMap::new(),
            }],
            nodes: vec![Node {
                id: "greeter-1".into(),
                address: "127.0.0.1:8080".into(),
                metadata: BTreeMap::new(),
            }],
            metadata: BTreeMap::new(),
        };
        let json = serde_json::to_value(&service).expect("serialise");
        assert_eq!(
            json["endpoints"][0]["request"]["values"][0],
            serde_json::json!({"name": "name", "type": "string", "values": []})
        );
        assert_eq!(json["nodes"][0]["address"], "127.0.0.1:8080");
        let back: Service = serde_json::from_value(json).expect("deserialise");
        assert_eq!(back, service);
    }
}
