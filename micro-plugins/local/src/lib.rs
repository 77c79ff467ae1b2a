//! micro-local: a host-local registry. Zero configuration, no network: services running in
//! separate processes of one user on one machine find each other through a directory.
//!
//! - Directory: option `registry.dir` (flag `--registry_dir`, env `MICRO_REGISTRY_DIR`);
//!   empty = `$XDG_RUNTIME_DIR/micro/registry`, else `{tmp}/micro-{uid}/registry`, created
//!   with mode 0700.
//! - One JSON file per node, `{dir}/{service}/{version}/{node}.json` (names escaped so they
//!   cannot leave the directory), holding the service record with that node plus
//!   `expires_at` (Unix milliseconds, `null` = no TTL). Written atomically (temp + rename).
//! - Reads skip (and remove) expired nodes and skip foreign or corrupt files; a crashed
//!   process's nodes vanish when their TTL passes.
//! - Watch: `notify` on the directory plus a timed re-scan (at the next expiry, at least
//!   every second), snapshots diffed into create/update/delete events; changes made through
//!   the watched value itself are reported at once, none missed.
//!
//! See the crate's README.md for the full format.

mod dir;
mod files;
mod record_file;
mod registry;
mod shared;
mod watch;

pub use dir::resolve_dir;
pub use registry::LocalRegistry;

use micro_core::{Plugin, Plugins};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Options of the `local` registry plugin, in the `registry:` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, micro_derive::Component)]
#[serde(default)]
#[component(section = "registry", plugin = "local")]
pub struct LocalRegistryOptions {
    /// Directory of the local registry; empty = $XDG_RUNTIME_DIR/micro/registry, else {tmp}/micro-{uid}/registry.
    pub dir: String,
}

/// The plugin-table entry of the `local` registry.
pub fn plugin() -> Plugin {
    Plugin::registry("local", "local", |ctx| {
        let options: LocalRegistryOptions = ctx.options()?;
        let dir = resolve_dir(&options.dir, ctx.env("XDG_RUNTIME_DIR"), ctx.env("TMPDIR"))?;
        let registry = LocalRegistry::new(dir)?.with_logger(ctx.logger.clone());
        Ok(Arc::new(registry))
    })
    .with_options::<LocalRegistryOptions>()
}

/// The plugins of this crate: the `local` registry.
pub fn plugins() -> Plugins {
    Plugins::new().with(plugin())
}
