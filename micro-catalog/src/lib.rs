//! The tables of micro, in one place: the component kinds (config sections, in build
//! order) and every plugin the project ships or plans, with the Cargo feature of `micro`
//! that compiles it in.
//!
//! No dependencies, so both micro-core and the proc macros (micro-derive) read the same
//! table; a test of the `micro` facade checks it against the facade's Cargo features.

#![warn(missing_docs)]

/// A kind of component, as named by its config section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ComponentKind {
    /// Service discovery.
    Registry,
    /// Load balancing over a registry.
    Selector,
    /// Connections between services.
    Transport,
    /// Pub/sub.
    Broker,
    /// Key-value store.
    Store,
    /// Event streams.
    Events,
    /// Locks and leaders.
    Sync,
    /// Identity.
    Auth,
    /// RPC client.
    Client,
    /// RPC server.
    Server,
    /// Log format.
    Logger,
}

impl ComponentKind {
    /// Every kind: those built from a plugin, in build order (a component is built after
    /// those it may use: the selector after the registry, client and server last), then the
    /// logger.
    pub const ALL: [ComponentKind; 11] = [
        ComponentKind::Registry,
        ComponentKind::Selector,
        ComponentKind::Transport,
        ComponentKind::Broker,
        ComponentKind::Store,
        ComponentKind::Events,
        ComponentKind::Sync,
        ComponentKind::Auth,
        ComponentKind::Client,
        ComponentKind::Server,
        ComponentKind::Logger,
    ];

    /// The kinds built from a plugin, in build order: [`ComponentKind::ALL`] without the
    /// logger.
    pub const BUILT: &'static [ComponentKind] = ComponentKind::ALL.split_at(10).0;

    /// The config section (`registry`).
    pub const fn section(self) -> &'static str {
        match self {
            ComponentKind::Registry => "registry",
            ComponentKind::Selector => "selector",
            ComponentKind::Transport => "transport",
            ComponentKind::Broker => "broker",
            ComponentKind::Store => "store",
            ComponentKind::Events => "events",
            ComponentKind::Sync => "sync",
            ComponentKind::Auth => "auth",
            ComponentKind::Client => "client",
            ComponentKind::Server => "server",
            ComponentKind::Logger => "logger",
        }
    }

    /// The name of its handle type in `micro` (`Registry`; `SyncHandle` for sync, which
    /// would shadow `std`'s `Sync`); `None` for the logger.
    pub const fn handle(self) -> Option<&'static str> {
        Some(match self {
            ComponentKind::Registry => "Registry",
            ComponentKind::Selector => "Selector",
            ComponentKind::Transport => "Transport",
            ComponentKind::Broker => "Broker",
            ComponentKind::Store => "Store",
            ComponentKind::Events => "Events",
            ComponentKind::Sync => "SyncHandle",
            ComponentKind::Auth => "Auth",
            ComponentKind::Client => "Client",
            ComponentKind::Server => "Server",
            ComponentKind::Logger => return None,
        })
    }

    /// The kind whose config section is `section`.
    pub fn from_section(section: &str) -> Option<ComponentKind> {
        ComponentKind::ALL
            .into_iter()
            .find(|k| k.section() == section)
    }

    /// What must be built before it: a client needs a selector and a transport, a selector
    /// a registry, a server a transport (and registers in the registry).
    pub const fn requirements(self) -> &'static [ComponentKind] {
        match self {
            ComponentKind::Client => &[
                ComponentKind::Selector,
                ComponentKind::Transport,
                ComponentKind::Registry,
            ],
            ComponentKind::Selector => &[ComponentKind::Registry],
            ComponentKind::Server => &[ComponentKind::Transport, ComponentKind::Registry],
            _ => &[],
        }
    }
}

/// Whether a plugin can be compiled in today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// Its crate exists: the Cargo feature compiles it in.
    Available,
    /// Named by the design but not written yet: no Cargo feature brings it.
    Planned,
}

/// One plugin of micro: which component it serves, under what name, and how to get it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownPlugin {
    /// The component it serves.
    pub kind: ComponentKind,
    /// The name a config's `plugin:` key uses.
    pub name: &'static str,
    /// The Cargo feature of `micro` that compiles it in (for a planned plugin: the one that
    /// will).
    pub feature: &'static str,
    /// Whether it exists yet.
    pub status: Status,
}

macro_rules! plugins {
    ($($kind:ident $name:literal => $feature:literal $status:ident,)*) => {
        /// Every plugin micro ships or plans, by component.
        pub const PLUGINS: &[KnownPlugin] = &[$(
            KnownPlugin {
                kind: ComponentKind::$kind,
                name: $name,
                feature: $feature,
                status: Status::$status,
            },
        )*];
    };
}

plugins! {
    Registry "memory" => "memory" Available,
    Registry "local" => "local" Available,
    Registry "mdns" => "mdns" Available,
    Registry "nats" => "nats" Available,
    Registry "etcd" => "etcd" Available,
    Selector "random" => "selector" Available,
    Selector "roundrobin" => "selector" Available,
    Selector "cache" => "selector" Available,
    Transport "memory" => "memory" Available,
    Transport "tcp" => "tcp" Available,
    Transport "http" => "http" Available,
    Transport "nats" => "nats" Available,
    Transport "grpc" => "grpc" Planned,
    Transport "quic" => "quic" Available,
    Broker "memory" => "memory" Available,
    Broker "http" => "http" Available,
    Broker "nats" => "nats" Available,
    Broker "redis" => "redis" Available,
    Store "memory" => "memory" Available,
    Store "file" => "file" Available,
    Store "nats" => "nats" Available,
    Store "redis" => "redis" Available,
    Store "postgres" => "postgres" Available,
    Events "memory" => "memory" Available,
    Events "nats" => "nats" Available,
    Events "redis" => "redis" Available,
    Sync "memory" => "memory" Available,
    Sync "redis" => "redis" Available,
    Sync "etcd" => "etcd" Available,
    Auth "jwt" => "jwt" Planned,
    Client "mucp" => "mucp" Available,
    Client "rpc" => "mucp" Available,
    Client "grpc" => "grpc" Available,
    Server "mucp" => "mucp" Available,
    Server "rpc" => "mucp" Available,
    Server "grpc" => "grpc" Available,
    Logger "default" => "" Available,
    Logger "text" => "" Available,
    Logger "zap" => "zap" Available,
    Logger "json" => "zap" Available,
}

/// The plugin of `section` named `name`, if micro ships or plans one.
pub fn find(section: &str, name: &str) -> Option<&'static KnownPlugin> {
    PLUGINS
        .iter()
        .find(|p| p.kind.section() == section && p.name == name)
}

/// The plugins of `section` that exist, by name.
pub fn available(section: &str) -> impl Iterator<Item = &'static str> {
    PLUGINS
        .iter()
        .filter(move |p| p.kind.section() == section && p.status == Status::Available)
        .map(|p| p.name)
}

/// Every Cargo feature that brings an available plugin, once each.
pub fn available_features() -> Vec<&'static str> {
    let mut features: Vec<&str> = PLUGINS
        .iter()
        .filter(|p| p.status == Status::Available && !p.feature.is_empty())
        .map(|p| p.feature)
        .collect();
    features.sort_unstable();
    features.dedup();
    features
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_section_and_back() {
        for kind in ComponentKind::ALL {
            assert_eq!(ComponentKind::from_section(kind.section()), Some(kind));
        }
        assert_eq!(ComponentKind::from_section("registy"), None);
        assert!(ComponentKind::BUILT.iter().all(|k| k.handle().is_some()));
    }

    #[test]
    fn requirements_come_earlier_in_build_order() {
        let place = |k: ComponentKind| ComponentKind::BUILT.iter().position(|b| *b == k);
        for &kind in ComponentKind::BUILT {
            for needed in kind.requirements() {
                assert!(place(*needed) < place(kind), "{kind:?} needs {needed:?}");
            }
        }
    }

    #[test]
    fn the_table_names_each_plugin_once() {
        for (i, a) in PLUGINS.iter().enumerate() {
            for b in &PLUGINS[i + 1..] {
                assert!(!(a.kind == b.kind && a.name == b.name), "{a:?} twice");
            }
        }
        assert_eq!(find("auth", "jwt").map(|p| p.status), Some(Status::Planned));
        assert_eq!(
            find("selector", "cache").map(|p| p.feature),
            Some("selector")
        );
        assert_eq!(find("registry", "nope"), None);
        assert!(available_features().contains(&"tcp"));
        assert!(available_features().contains(&"nats"));
        assert!(available_features().contains(&"grpc"));
        assert!(!available_features().contains(&"jwt"));
    }
}
