//! micro-selector: the selector of micro, picking a node for each call from a registry
//! cache kept fresh by a watch. Any RPC client plugin (mucp, grpc, ...) uses it through the
//! `Selector` contract of micro-core; it depends on no RPC crate.
//!
//! Behaviour of [`CacheSelector`]:
//! - **Cache.** The first `select` of a service reads `registry.get_service`; later selects
//!   use the cached versions. An entry is read again when it is older than the TTL
//!   ([`DEFAULT_TTL`]) or when the watch could have missed changes.
//! - **Watch.** On first use one watch of every service is opened (the first select waits
//!   up to 2 s for it, so nothing between the watch and the first read is missed) and a
//!   background task applies its events: `Create`/`Update` merge the event's nodes into the
//!   cached version and replace its endpoints and metadata; `Delete` removes the listed
//!   nodes (an empty list removes the whole version); a version without nodes goes. Events of
//!   services not cached are ignored. When the stream fails or ends the task opens it again
//!   with backoff (100 ms doubling to 10 s) and marks every entry for refresh. The task holds
//!   the selector weakly and is aborted when the selector is dropped.
//! - **Single flight.** Concurrent selects of a service that needs a read share one
//!   `get_service` call.
//! - **Stale data.** When a refresh fails and an entry exists, the old entry is served (one
//!   warning per failure streak) and the registry is asked again after `min(TTL, 5 s)`.
//!   Without an entry the registry's error is returned as is, except a 404, which becomes a
//!   503 `service X: no nodes available`. A 404 on refresh is trusted: the entry is dropped.
//! - **Strategies.** Random (uniform) or round-robin with one counter per service, so calls
//!   rotate across calls; `SelectOptions::strategy` overrides the selector's per call.
//! - **Filters** of `SelectOptions` run first; no node left is a 503 naming the filters.
//! - **Cool-down.** `mark(.., Err(_))` skips the node for the cool-down while other nodes are
//!   available; when every candidate is cooling down the least recently failed one is
//!   picked. `mark(.., Ok(()))` clears it; a node leaving the registry leaves the table.

mod cache;
mod watch;

pub use cache::{CacheSelector, DEFAULT_TTL};

use micro_core::config::SelectorConfig;
use micro_core::selector::{Selector, Strategy};
use micro_core::{Error, Plugin, PluginContext, Plugins, Result};
use std::sync::Arc;

/// The Cargo feature of `micro` that compiles these plugins in.
const FEATURE: &str = "selector";

/// The selector plugins: `random` (also named `cache`) and `roundrobin` (also
/// `round_robin`), both a [`CacheSelector`] over the service's registry.
pub fn plugins() -> Plugins {
    Plugins::new()
        .with(
            Plugin::selector("random", FEATURE, |ctx| build(ctx, Strategy::Random)).alias("cache"),
        )
        .with(
            Plugin::selector("roundrobin", FEATURE, |ctx| {
                build(ctx, Strategy::RoundRobin)
            })
            .alias("round_robin"),
        )
}

fn build(ctx: &PluginContext<'_>, strategy: Strategy) -> Result<Arc<dyn Selector>> {
    let registry = ctx.components.registry.clone().ok_or_else(|| {
        Error::bad_request(
            cache::ID,
            "the selector needs a registry: enable the registry (registry.enabled: true) \
             or disable the selector (selector.enabled: false)",
        )
    })?;
    let config: SelectorConfig = ctx.options()?;
    Ok(Arc::new(
        CacheSelector::new(registry, strategy, config.cooldown).with_logger(ctx.logger.clone()),
    ))
}
