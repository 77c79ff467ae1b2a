//! The notifications service: subscribes to placed orders and remembers what it sent.

use crate::api::{Notifications, OrderPlaced, Sent};
use micro::{Context, Result};
use std::sync::{Arc, Mutex};

/// The notifications sent, shared by the subscriber and the service.
#[derive(Clone, Default)]
pub struct Outbox {
    lines: Arc<Mutex<Vec<String>>>,
}

impl Notifications for Outbox {
    async fn sent(&self, _ctx: &Context, _req: ()) -> Result<Sent> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        Ok(Sent {
            messages: lines.clone(),
        })
    }
}

/// Sends a notification for each placed order (one member of the `notifications` queue group
/// gets each order).
#[micro::subscriber(topic = "shop.orders", queue = "notifications")]
pub async fn on_order(outbox: &Outbox, _ctx: &Context, order: OrderPlaced) -> Result<()> {
    let line = format!("order {}: {} x {}", order.id, order.qty, order.item);
    outbox
        .lines
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(line);
    Ok(())
}
