//! An admin service the plugin can host next to the store: `#[micro_derive::service]` in
//! a crate that depends on micro-core and micro-derive only. An application serves it with
//! `ServiceBuilder::handler(StoreAdminServer::new(store))` and calls it with
//! `StoreAdminClient`, in-process or over RPC.

use crate::store::ExampleStore;
use micro_core::store::{ListOptions, Scope, Store};
use micro_core::{Context, Result, Streaming};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Names a scope; empty parts are the store's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ScopeRequest {
    /// Database name.
    pub database: String,
    /// Table name.
    pub table: String,
}

impl ScopeRequest {
    fn scope(&self) -> Scope {
        Scope::new(&self.database, &self.table)
    }
}

/// What a scope holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ScopeStats {
    /// Live records.
    pub records: u64,
    /// Bytes of their values.
    pub bytes: u64,
    /// Largest value a write accepts, in bytes (0 = no limit).
    pub max_value_size: u64,
}

/// Looks into an [`ExampleStore`] from outside the process.
#[micro_derive::service]
pub trait StoreAdmin {
    /// Counts the live records of a scope and the bytes of their values.
    #[micro(idempotent)]
    async fn stats(&self, ctx: &Context, req: ScopeRequest) -> Result<ScopeStats>;

    /// Streams the live keys of a scope, in key order.
    async fn keys(&self, ctx: &Context, req: ScopeRequest) -> Result<Streaming<String>>;
}

impl StoreAdmin for ExampleStore {
    async fn stats(&self, _ctx: &Context, req: ScopeRequest) -> Result<ScopeStats> {
        let usage = self.usage(&req.scope());
        Ok(ScopeStats {
            records: usage.records,
            bytes: usage.bytes,
            max_value_size: self.max_value_size() as u64,
        })
    }

    async fn keys(&self, _ctx: &Context, req: ScopeRequest) -> Result<Streaming<String>> {
        let options = ListOptions::default().scope(req.scope());
        let keys = self.list(options).await?;
        Ok(Streaming::from_values(keys))
    }
}
