//! Placeholder for micro-local.

/// The plugins of this crate.
pub fn plugins() -> micro_core::Plugins {
    micro_core::Plugins::new()
}
