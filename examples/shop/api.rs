//! The shop's service interfaces and messages, shared by the services and their callers.

use micro::{Context, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The topic orders are announced on.
pub const ORDERS_TOPIC: &str = "shop.orders";

/// Asks for `qty` of `item`.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone)]
pub struct PlaceOrder {
    /// What to buy.
    pub item: String,
    /// How many.
    pub qty: u32,
}

/// A placed order.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone)]
pub struct OrderPlaced {
    /// Order id.
    pub id: String,
    /// What was bought.
    pub item: String,
    /// How many.
    pub qty: u32,
    /// How orders reached inventory: `in-process` or `network`.
    pub inventory_via: String,
}

/// Takes `qty` of `item` out of stock.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone)]
pub struct Reserve {
    /// The item.
    pub item: String,
    /// How many.
    pub qty: u32,
}

/// What is left of an item.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
pub struct StockLevel {
    /// The item.
    pub item: String,
    /// Units left.
    pub left: u32,
}

/// The notifications sent so far.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Default)]
pub struct Sent {
    /// One line per notification.
    pub messages: Vec<String>,
}

/// Takes orders: reserves stock in inventory, then announces the order.
#[micro::service]
pub trait Orders {
    /// Places an order; 409 when there is not enough stock.
    async fn place(&self, ctx: &Context, req: PlaceOrder) -> Result<OrderPlaced>;
}

/// Keeps the stock.
#[micro::service]
pub trait Inventory {
    /// Reserves stock; 409 when there is not enough.
    async fn reserve(&self, ctx: &Context, req: Reserve) -> Result<StockLevel>;
    /// The stock of one item.
    #[micro(idempotent)]
    async fn stock(&self, ctx: &Context, item: String) -> Result<StockLevel>;
}

/// Tells customers about their orders.
#[micro::service]
pub trait Notifications {
    /// What was sent so far.
    #[micro(idempotent)]
    async fn sent(&self, ctx: &Context, req: ()) -> Result<Sent>;
}
