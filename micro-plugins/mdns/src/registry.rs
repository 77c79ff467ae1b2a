//! [`MdnsRegistry`]: registers this process's nodes with an mdns-sd daemon and keeps a
//! cache of every node seen on the network, fed by one continuous browse.

use crate::options::MdnsRegistryOptions;
use crate::{ERROR_ID, SERVICE_TYPE, record};
use micro_core::logger::Logger;
use micro_core::registry::{
    Action, RegisterOptions, Registry, Service, WatchEvent, WatchOptions, Watcher, group_versions,
};
use micro_core::{Error, Result};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;
use tokio::sync::broadcast;

/// Watch events buffered per watcher before it lags (and gets an error).
const WATCH_BUFFER: usize = 1024;

/// What the browse thread and the registry share.
struct Shared {
    state: Mutex<State>,
    events: broadcast::Sender<WatchEvent>,
    logger: Logger,
}

#[derive(Default)]
struct State {
    /// Every node known, by its mDNS instance full name; each a one-node service record,
    /// with the revision it was last changed at (newest record's metadata wins a version).
    nodes: HashMap<String, (u64, Service)>,
    /// The last revision given out.
    revision: u64,
    /// This process's registrations: full name → generation (bumped by each register, so
    /// a TTL timer knows whether it was refreshed meanwhile).
    own: HashMap<String, u64>,
    generation: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn emit(&self, action: Action, service: Service) {
        let _ = self.events.send(WatchEvent {
            action,
            service,
            timestamp: SystemTime::now(),
        });
    }

    /// Records `service` (one node) under `fullname`; Create, or Update when it changed.
    fn upsert(&self, fullname: &str, service: Service) {
        let action = {
            let mut state = self.lock();
            let action = match state.nodes.get(fullname) {
                Some((_, old)) if *old == service => return,
                Some(_) => Action::Update,
                None => Action::Create,
            };
            state.revision += 1;
            let revision = state.revision;
            state
                .nodes
                .insert(fullname.to_string(), (revision, service.clone()));
            action
        };
        self.emit(action, service);
    }

    /// Forgets the node under `fullname`; Delete with the node if it was known.
    fn remove(&self, fullname: &str) {
        let removed = self.lock().nodes.remove(fullname);
        if let Some((_, service)) = removed {
            self.emit(Action::Delete, service);
        }
    }
}

/// The mDNS registry: each node of each registered service is one mDNS service instance of
/// type `_micro._tcp.local.` whose TXT record carries the node's service record (see
/// `record`). Lookups read a cache kept by a continuous browse; a watch sees the changes
/// of that cache. Dropping it unregisters this process's nodes (goodbye packets) and stops
/// the daemon.
pub struct MdnsRegistry {
    daemon: mdns_sd::ServiceDaemon,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MdnsRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MdnsRegistry").finish_non_exhaustive()
    }
}

fn mdns_error(what: &str, error: mdns_sd::Error) -> Error {
    Error::internal(ERROR_ID, format!("mdns: {what}: {error}"))
}

impl MdnsRegistry {
    /// Starts an mDNS daemon on the interfaces the options choose and browses for micro
    /// nodes. Fails when the daemon cannot start (no usable socket).
    pub fn new(options: &MdnsRegistryOptions, logger: Logger) -> Result<Self> {
        let daemon = mdns_sd::ServiceDaemon::new().map_err(|e| mdns_error("starting", e))?;
        if options.interface.is_empty() {
            // Loopback too, so processes of one host find each other without a network.
            daemon
                .enable_interface(mdns_sd::IfKind::LoopbackV4)
                .and_then(|()| daemon.enable_interface(mdns_sd::IfKind::LoopbackV6))
                .map_err(|e| mdns_error("enabling loopback", e))?;
        } else {
            daemon
                .disable_interface(mdns_sd::IfKind::All)
                .and_then(|()| {
                    daemon.enable_interface(mdns_sd::IfKind::Name(options.interface.clone()))
                })
                .map_err(|e| mdns_error("choosing the interface", e))?;
        }
        if !options.ipv6 {
            daemon
                .disable_interface(mdns_sd::IfKind::IPv6)
                .map_err(|e| mdns_error("turning IPv6 off", e))?;
        }
        let browse = daemon
            .browse(SERVICE_TYPE)
            .map_err(|e| mdns_error("browsing", e))?;
        let (events, _) = broadcast::channel(WATCH_BUFFER);
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            events,
            logger,
        });
        let feed = shared.clone();
        std::thread::Builder::new()
            .name("micro-mdns-browse".into())
            .spawn(move || browse_loop(browse, feed))
            .map_err(|e| {
                Error::internal(ERROR_ID, format!("mdns: starting the browse thread: {e}"))
            })?;
        Ok(MdnsRegistry { daemon, shared })
    }

    /// Unregisters `fullname` from the network and the cache.
    fn withdraw(&self, fullname: &str) {
        let _ = self.daemon.unregister(fullname);
        self.shared.lock().own.remove(fullname);
        self.shared.remove(fullname);
    }
}

impl Drop for MdnsRegistry {
    fn drop(&mut self) {
        let own: Vec<String> = self.shared.lock().own.keys().cloned().collect();
        for fullname in own {
            let _ = self.daemon.unregister(&fullname);
        }
        let _ = self.daemon.shutdown();
    }
}

/// Turns browse events into cache changes until the daemon stops.
fn browse_loop(browse: mdns_sd::Receiver<mdns_sd::ServiceEvent>, shared: Arc<Shared>) {
    while let Ok(event) = browse.recv() {
        match event {
            mdns_sd::ServiceEvent::ServiceResolved(info) => {
                let strings = info.get_properties().iter().map(|p| (p.key(), p.val_str()));
                match record::decode(strings) {
                    Ok(service) if service.nodes.len() == 1 => {
                        shared.upsert(info.get_fullname(), service)
                    }
                    Ok(_) => {}
                    Err(error) => shared.logger.in_scope(|| {
                        tracing::debug!(
                            instance = info.get_fullname(),
                            %error,
                            "mdns: ignoring an instance whose TXT record is not micro's"
                        )
                    }),
                }
            }
            mdns_sd::ServiceEvent::ServiceRemoved(_, fullname) => shared.remove(&fullname),
            _ => {}
        }
    }
}

/// The mDNS instance name of a node: a hash of service name, version and node id (16 hex
/// digits: unique, and well within a DNS label's 63 bytes whatever the names are).
fn instance(service: &Service, node_id: &str) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (service.name.as_str(), service.version.as_str(), node_id).hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// The port of a `host:port` address (0 when there is none: the TXT record has the address).
fn port(address: &str) -> u16 {
    address
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or(0)
}

#[async_trait::async_trait]
impl Registry for MdnsRegistry {
    fn name(&self) -> &str {
        "mdns"
    }

    async fn register(&self, service: &Service, options: RegisterOptions) -> Result<()> {
        for node in &service.nodes {
            let single = Service {
                nodes: vec![node.clone()],
                ..service.clone()
            };
            let name = instance(service, &node.id);
            let fullname = format!("{name}.{SERVICE_TYPE}");
            let known = {
                let state = self.shared.lock();
                state.own.contains_key(&fullname)
                    && state.nodes.get(&fullname).map(|(_, s)| s) == Some(&single)
            };
            if !known {
                let strings = record::encode(&single)
                    .map_err(|e| Error::bad_request(ERROR_ID, format!("mdns: {e}")))?;
                let mut info = mdns_sd::ServiceInfo::new(
                    SERVICE_TYPE,
                    &name,
                    &format!("{name}.local."),
                    "",
                    port(&node.address),
                    &strings[..],
                )
                .map_err(|e| mdns_error("describing the node", e))?
                .enable_addr_auto();
                // The instance name is a hash of what identifies the node: no conflict to
                // probe for, and registering is immediate.
                info.set_requires_probe(false);
                self.daemon
                    .register(info)
                    .map_err(|e| mdns_error("registering", e))?;
                self.shared.upsert(&fullname, single);
            }
            let generation = {
                let mut state = self.shared.lock();
                state.generation += 1;
                let generation = state.generation;
                state.own.insert(fullname.clone(), generation);
                generation
            };
            if let Some(ttl) = options.ttl {
                // Not refreshed within the TTL: withdrawn (goodbye packet, Delete event).
                let shared = self.shared.clone();
                let daemon = self.daemon.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(ttl).await;
                    let expired = shared.lock().own.get(&fullname) == Some(&generation);
                    if expired {
                        let _ = daemon.unregister(&fullname);
                        shared.lock().own.remove(&fullname);
                        shared.remove(&fullname);
                    }
                });
            }
        }
        Ok(())
    }

    async fn deregister(&self, service: &Service) -> Result<()> {
        for node in &service.nodes {
            let fullname = format!("{}.{SERVICE_TYPE}", instance(service, &node.id));
            let own = self.shared.lock().own.contains_key(&fullname);
            if own {
                self.withdraw(&fullname);
            }
        }
        Ok(())
    }

    async fn get_service(&self, name: &str) -> Result<Vec<Service>> {
        let services = {
            let state = self.shared.lock();
            group_versions(
                state
                    .nodes
                    .values()
                    .filter(|(_, s)| s.name == name)
                    .cloned(),
            )
        };
        if services.is_empty() {
            return Err(Error::not_found(
                ERROR_ID,
                format!("service {name}: not found on mDNS"),
            ));
        }
        Ok(services)
    }

    async fn list_services(&self) -> Result<Vec<Service>> {
        let state = self.shared.lock();
        Ok(group_versions(state.nodes.values().cloned()))
    }

    async fn watch(&self, options: WatchOptions) -> Result<Watcher> {
        let receiver = self.shared.events.subscribe();
        let filter = options.service;
        let stream =
            futures::stream::unfold((receiver, filter), |(mut receiver, filter)| async move {
                loop {
                    match receiver.recv().await {
                        Ok(event) => {
                            if filter.as_ref().is_some_and(|f| *f != event.service.name) {
                                continue;
                            }
                            return Some((Ok(event), (receiver, filter)));
                        }
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            let error = Error::internal(
                                ERROR_ID,
                                format!(
                                    "mdns watch fell behind and missed {missed} events; \
                                     watch again and re-read the services"
                                ),
                            );
                            return Some((Err(error), (receiver, filter)));
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            });
        Ok(Box::pin(stream))
    }
}
