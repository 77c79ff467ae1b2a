//! The orders service: reserves stock through inventory's typed client (in-process in a
//! monolith, over the network when split), keeps the order in its store, then announces it
//! on the broker.
//!
//! Layout: table `orders` of the store's database (`store.database`, default `micro`), key =
//! the order id, value = the order as JSON (`{"id":…,"item":"apple","qty":3,…}`).

use crate::api::{
    Inventory, InventoryClient, ORDERS_TOPIC, OrderPlaced, Orders, PlaceOrder, Reserve,
};
use micro::in_process::Caller;
use micro::store::{Record, Scope, Store, WriteOptions};
use micro::{Context, Error, Result};
use std::sync::Arc;

/// The store table of the orders.
pub const TABLE: &str = "orders";

/// Places orders.
pub struct Shop {
    caller: Caller,
    inventory: InventoryClient,
    store: Option<Arc<dyn Store>>,
}

impl Shop {
    /// Orders that reach inventory and the broker through `caller` and are kept in `store`
    /// (the service's; `None` when its store is disabled).
    pub fn new(caller: &Caller, store: Option<Arc<dyn Store>>) -> Self {
        Shop {
            caller: caller.clone(),
            inventory: InventoryClient::new(caller.clone(), "inventory"),
            store,
        }
    }

    async fn keep(&self, order: &OrderPlaced) -> Result<()> {
        let store = self.store.as_deref().ok_or_else(|| {
            Error::unavailable("orders", "orders are kept in the store: enable store")
        })?;
        let json = serde_json::to_vec(order)
            .map_err(|e| Error::internal("orders", format!("encoding the order: {e}")))?;
        let options = WriteOptions::default().scope(Scope::new("", TABLE));
        store
            .write(Record::new(order.id.clone(), json), options)
            .await
    }
}

impl Orders for Shop {
    async fn place(&self, ctx: &Context, req: PlaceOrder) -> Result<OrderPlaced> {
        let reserve = Reserve {
            item: req.item.clone(),
            qty: req.qty,
        };
        self.inventory.reserve(ctx, reserve).await?;
        let in_process = self.caller.local.get("inventory", "Inventory").is_some();
        let order = OrderPlaced {
            id: uuid::Uuid::new_v4().to_string(),
            item: req.item,
            qty: req.qty,
            inventory_via: if in_process { "in-process" } else { "network" }.into(),
        };
        self.keep(&order).await?;
        micro::client::publish(self.caller.client()?, ORDERS_TOPIC, &order).await?;
        Ok(order)
    }
}
