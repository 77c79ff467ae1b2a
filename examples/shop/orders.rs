//! The orders service: reserves stock through inventory's typed client (in-process in a
//! monolith, over the network when split), then announces the order on the broker.

use crate::api::{
    Inventory, InventoryClient, ORDERS_TOPIC, OrderPlaced, Orders, PlaceOrder, Reserve,
};
use micro::in_process::Caller;
use micro::{Context, Result};

/// Places orders.
pub struct Shop {
    caller: Caller,
    inventory: InventoryClient,
}

impl Shop {
    /// Orders that reach inventory and the broker through `caller`.
    pub fn new(caller: &Caller) -> Self {
        Shop {
            caller: caller.clone(),
            inventory: InventoryClient::new(caller.clone(), "inventory"),
        }
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
        micro::client::publish(self.caller.client()?, ORDERS_TOPIC, &order).await?;
        Ok(order)
    }
}
