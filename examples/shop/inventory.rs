//! The inventory service: stock per item, reserved by orders.

use crate::api::{Inventory, Reserve, StockLevel};
use micro::{Context, Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Stock in memory.
#[derive(Clone, Default)]
pub struct Stock {
    levels: Arc<Mutex<HashMap<String, u32>>>,
}

impl Stock {
    /// A stock of `items`.
    pub fn with(items: &[(&str, u32)]) -> Self {
        let levels = items.iter().map(|(i, n)| (i.to_string(), *n)).collect();
        Stock {
            levels: Arc::new(Mutex::new(levels)),
        }
    }

    fn levels(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.levels.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inventory for Stock {
    async fn reserve(&self, _ctx: &Context, req: Reserve) -> Result<StockLevel> {
        let mut levels = self.levels();
        let left = levels.get(&req.item).copied().unwrap_or(0);
        if left < req.qty {
            return Err(Error::conflict(
                "inventory",
                format!("only {left} {} left, {} asked", req.item, req.qty),
            ));
        }
        levels.insert(req.item.clone(), left - req.qty);
        Ok(StockLevel {
            item: req.item,
            left: left - req.qty,
        })
    }

    async fn stock(&self, _ctx: &Context, item: String) -> Result<StockLevel> {
        let left = self.levels().get(&item).copied().unwrap_or(0);
        Ok(StockLevel { item, left })
    }
}
