//! The generic registry conformance suite against the local registry, a fresh directory per
//! registry instance (kept until its case ends).

use micro_core::registry::Registry;
use micro_local::LocalRegistry;
use std::sync::Arc;

micro_conformance::registry_suite!(async || {
    let dir = tempfile::tempdir().unwrap();
    let registry = LocalRegistry::new(dir.path()).unwrap();
    (Arc::new(registry) as Arc<dyn Registry>, dir)
});
