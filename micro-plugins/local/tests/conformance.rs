//! The generic registry conformance suite against the local registry, a fresh directory per
//! registry instance.

#[path = "../../../tests/conformance/registry.rs"]
mod suite;

use micro_core::registry::Registry;
use micro_local::LocalRegistry;
use std::sync::{Arc, Mutex};

#[tokio::test(flavor = "multi_thread")]
async fn conformance() {
    // The directories live as long as the test.
    let dirs: Arc<Mutex<Vec<tempfile::TempDir>>> = Arc::default();
    suite::run(|| {
        let dirs = dirs.clone();
        async move {
            let dir = tempfile::tempdir().unwrap();
            let registry = LocalRegistry::new(dir.path()).unwrap();
            dirs.lock().unwrap().push(dir);
            Arc::new(registry) as Arc<dyn Registry>
        }
    })
    .await;
}
