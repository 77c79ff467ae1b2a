//! The `file` store's options (`store: { plugin: file, dir: ... }`) and its default directory.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Options of the `file` store plugin, read from the `store:` section (flag `--store_dir`,
/// env `MICRO_STORE_DIR`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, micro_derive::Component)]
#[serde(default)]
#[component(section = "store", plugin = "file")]
pub struct FileStoreOptions {
    /// Directory of the database files (one `<database>.redb` per database); empty =
    /// $XDG_DATA_HOME/micro/store, else $HOME/.local/share/micro/store.
    pub dir: String,
}

/// The directory used when `dir` is empty, from the environment the application gave the
/// builder (never the process's): `$XDG_DATA_HOME/micro/store`, else
/// `$HOME/.local/share/micro/store`, else `micro-store` in the system temporary directory.
pub fn default_dir<'a>(env: impl Fn(&str) -> Option<&'a str>) -> PathBuf {
    let set = |name: &str| env(name).filter(|value| !value.is_empty());
    if let Some(data) = set("XDG_DATA_HOME") {
        return PathBuf::from(data).join("micro").join("store");
    }
    if let Some(home) = set("HOME") {
        return PathBuf::from(home)
            .join(".local")
            .join("share")
            .join("micro")
            .join("store");
    }
    std::env::temp_dir().join("micro-store")
}

impl FileStoreOptions {
    /// The directory these options select, resolving an empty `dir` with [`default_dir`].
    pub fn resolve_dir<'a>(&self, env: impl Fn(&str) -> Option<&'a str>) -> PathBuf {
        if self.dir.is_empty() {
            default_dir(env)
        } else {
            PathBuf::from(&self.dir)
        }
    }
}
