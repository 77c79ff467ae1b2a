//! Placeholder for micro-file.

/// The plugins of this crate.
pub fn plugins() -> micro_core::Plugins {
    micro_core::Plugins::new()
}
