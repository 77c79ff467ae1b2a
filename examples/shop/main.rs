//! The shop: three services written once — orders (calls inventory, publishes each order),
//! inventory, and notifications (subscribes to orders) — run as a monolith or split.
//!
//! ```sh
//! cargo run --example shop                          # all three in one process
//! cargo run --example shop -- --services orders     # one of them (or a comma-separated list)
//! ```
//!
//! In one process the typed clients call each other directly (no socket, no encoding, still
//! through middleware and under deadlines); split, they find each other through the registry.
//!
//! Inventory and orders keep their data in the service's store (memory by default): run with
//! `MICRO_STORE=redis` or `MICRO_STORE=postgres` (features `redis`, `postgres`) and the stock
//! and the orders are in redis (`micro:inventory:apple`, `micro:orders:<id>`) or postgres
//! (tables `micro.inventory`, `micro.orders`); see inventory.rs and orders.rs.

mod api;
mod inventory;
mod notifications;
mod orders;

use api::{InventoryServer, NotificationsServer, OrdersServer};
use micro::in_process::LocalServices;

const ALL: [&str; 3] = ["inventory", "notifications", "orders"];

/// Units of each item before any order (items not yet in inventory's store).
const STARTING_STOCK: &[(&str, u32)] = &[("apple", 10), ("pear", 5)];

/// Builds service `name` with the command line `args` and the process's in-process table.
fn build(name: &str, args: &[String], table: &LocalServices) -> micro::Result<micro::Service> {
    let builder = micro::Service::builder()
        .name(name)
        .version("1.0.0")
        .args(args.iter().cloned())
        .local_services(table.clone())
        .flag(
            "services",
            "Services to run here, comma-separated (default: all)",
        );
    let builder = match name {
        "inventory" => builder.handler_with_components(|_, components| {
            let stock = inventory::Stock::new(components.store.clone(), STARTING_STOCK);
            InventoryServer::new(stock)
        }),
        "notifications" => {
            let outbox = notifications::Outbox::default();
            builder
                .handler(NotificationsServer::new(outbox.clone()))
                .subscriber(notifications::on_order_subscription(outbox))
        }
        _ => builder.handler_with_components(|caller, components| {
            OrdersServer::new(orders::Shop::new(caller, components.store.clone()))
        }),
    };
    Ok(builder.build()?)
}

/// The services asked for with `--services a,b` (all when absent).
fn chosen(args: &[String]) -> Vec<String> {
    let mut list = None;
    for (i, arg) in args.iter().enumerate() {
        if let Some(v) = arg.strip_prefix("--services=") {
            list = Some(v.to_string());
        } else if arg == "--services" {
            list = args.get(i + 1).cloned();
        }
    }
    match list {
        Some(list) => list
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        None => ALL.iter().map(|s| s.to_string()).collect(),
    }
}

#[tokio::main]
async fn main() -> micro::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let names = chosen(&args);
    if let Some(bad) = names.iter().find(|n| !ALL.contains(&n.as_str())) {
        return Err(micro::Error::bad_request(
            "shop",
            format!("unknown service {bad:?}: choose from {}", ALL.join(", ")),
        ));
    }
    let table = LocalServices::new();
    let mut services = Vec::new();
    for name in &names {
        services.push(build(name, &args, &table)?);
    }
    for service in &services {
        service.start().await?;
    }
    println!("READY {}", names.join(","));
    let _ = tokio::signal::ctrl_c().await;
    for service in services.iter().rev() {
        service.stop().await?;
    }
    Ok(())
}
