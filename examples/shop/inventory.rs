//! The inventory service: stock per item, reserved by orders, kept in the service's store.
//!
//! Layout: table `inventory` of the store's database (`store.database`, default `micro`),
//! one record per item, key = the item, value = the units left as decimal text (`"7"`). An
//! item with no record yet has its starting level. On redis that is the key
//! `micro:inventory:apple`; on postgres the row `key = 'apple'` of `micro.inventory`.

use crate::api::{Inventory, Reserve, StockLevel};
use micro::store::{ReadOptions, Record, Scope, Store, WriteOptions};
use micro::{Context, Error, Result};
use std::collections::HashMap;
use std::sync::Arc;

/// The store table of the stock levels.
pub const TABLE: &str = "inventory";

/// Stock levels in a store, with the levels of items never written yet.
#[derive(Clone)]
pub struct Stock {
    store: Option<Arc<dyn Store>>,
    starting: Arc<HashMap<String, u32>>,
    /// One reservation at a time (a read, then a write): this process is the only writer.
    reserving: Arc<tokio::sync::Mutex<()>>,
}

impl Stock {
    /// Stock in `store` (the service's; `None` when its store is disabled), starting at
    /// `items` for items not yet in the store.
    pub fn new(store: Option<Arc<dyn Store>>, items: &[(&str, u32)]) -> Self {
        let starting = items.iter().map(|(i, n)| (i.to_string(), *n)).collect();
        Stock {
            store,
            starting: Arc::new(starting),
            reserving: Arc::default(),
        }
    }

    fn store(&self) -> Result<&dyn Store> {
        self.store.as_deref().ok_or_else(|| {
            Error::unavailable(
                "inventory",
                "the inventory keeps its stock in the store: enable store",
            )
        })
    }

    fn scope() -> Scope {
        Scope::new("", TABLE)
    }

    async fn level(&self, item: &str) -> Result<u32> {
        let options = ReadOptions::default().scope(Self::scope());
        match self.store()?.read(item, options).await {
            Ok(records) => match records.first() {
                Some(record) => std::str::from_utf8(&record.value)
                    .ok()
                    .and_then(|text| text.trim().parse().ok())
                    .ok_or_else(|| {
                        Error::internal(
                            "inventory",
                            format!(
                                "the stock of {item:?} in table {TABLE} is not a number: \
                                 write the units left as decimal text"
                            ),
                        )
                    }),
                None => Ok(self.starting_level(item)),
            },
            Err(e) if e.code == 404 => Ok(self.starting_level(item)),
            Err(e) => Err(e),
        }
    }

    fn starting_level(&self, item: &str) -> u32 {
        self.starting.get(item).copied().unwrap_or(0)
    }
}

impl Inventory for Stock {
    async fn reserve(&self, _ctx: &Context, req: Reserve) -> Result<StockLevel> {
        let _one_at_a_time = self.reserving.lock().await;
        let left = self.level(&req.item).await?;
        if left < req.qty {
            return Err(Error::conflict(
                "inventory",
                format!("only {left} {} left, {} asked", req.item, req.qty),
            ));
        }
        let record = Record::new(req.item.clone(), (left - req.qty).to_string());
        let options = WriteOptions::default().scope(Self::scope());
        self.store()?.write(record, options).await?;
        Ok(StockLevel {
            item: req.item,
            left: left - req.qty,
        })
    }

    async fn stock(&self, _ctx: &Context, item: String) -> Result<StockLevel> {
        let left = self.level(&item).await?;
        Ok(StockLevel { item, left })
    }
}
