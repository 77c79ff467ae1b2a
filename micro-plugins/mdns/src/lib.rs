//! micro-mdns: the `mdns` registry (mdns-sd). Zero-configuration discovery on the local
//! network: each node of a registered service is an mDNS service instance of type
//! `_micro._tcp.local.` whose TXT record carries the node's service record, JSON-encoded,
//! zlib-compressed and hex-encoded as go-micro's mdns registry does. See the README for
//! the layout and what differs from go-micro (the domain is `local.`, not `micro.`).

#![warn(missing_docs)]

mod options;
mod record;
mod registry;

pub use options::MdnsRegistryOptions;
pub use registry::MdnsRegistry;

use micro_core::{Plugin, Plugins};
use std::sync::Arc;

/// The `id` of errors raised by this registry.
pub(crate) const ERROR_ID: &str = "go.micro.registry";

/// The mDNS service type of every micro node. mdns-sd only accepts types ending in
/// `._tcp.local.` or `._udp.local.`, so go-micro's `micro.` domain cannot be used.
pub const SERVICE_TYPE: &str = "_micro._tcp.local.";

/// The plugin-table entry: `registry: {plugin: mdns}`.
pub fn plugin() -> Plugin {
    Plugin::registry("mdns", "mdns", |ctx| {
        let options: MdnsRegistryOptions = ctx.options()?;
        Ok(Arc::new(MdnsRegistry::new(&options, ctx.logger.clone())?))
    })
    .with_options::<MdnsRegistryOptions>()
}

/// The plugins of this crate: the `mdns` registry.
pub fn plugins() -> Plugins {
    Plugins::new().with(plugin())
}
