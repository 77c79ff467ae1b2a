//! The plugin's own options, in the `store:` section next to the core keys
//! (`store: { plugin: example, max_value_size: 65536 }`, flag `--store_max_value_size`,
//! env `MICRO_STORE_MAX_VALUE_SIZE`).

use serde::{Deserialize, Serialize};

/// Options of the `example` store plugin. The default scope comes from the core keys of
/// the section (`database`, `table`), not from here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, micro_derive::Component)]
#[serde(default)]
#[component(section = "store", plugin = "example")]
pub struct ExampleStoreOptions {
    /// Largest value accepted by a write, in bytes (0 = no limit); a larger one is a 413 error.
    #[component(default = 1_048_576)]
    pub max_value_size: usize,
}
