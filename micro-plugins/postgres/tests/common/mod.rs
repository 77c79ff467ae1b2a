//! What the postgres tests share: where the shared server is, and dropping the schemas a
//! test made.
#![allow(dead_code)]

use micro_postgres::PostgresStore;
use std::time::Duration;

/// The shared PostgreSQL server the tests use (`MICRO_TEST_POSTGRES` overrides it).
pub fn postgres_address() -> String {
    std::env::var("MICRO_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A plain client of the shared server, for looking at what a store wrote.
pub async fn raw() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&postgres_address(), tokio_postgres::NoTls)
        .await
        .expect("the shared PostgreSQL server is reachable");
    tokio::spawn(connection);
    client
}

/// Drops, when dropped, every schema the store made or wrote to, and `extra` ones.
pub struct Cleanup {
    pub store: PostgresStore,
    pub extra: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let mut schemas = self.store.schemas();
        schemas.append(&mut self.extra);
        if schemas.is_empty() {
            return;
        }
        // Dropped inside (or after) the test's runtime: drop from a runtime of our own.
        let dropping = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let clean = async {
                    let (client, connection) =
                        tokio_postgres::connect(&postgres_address(), tokio_postgres::NoTls)
                            .await
                            .ok()?;
                    tokio::spawn(connection);
                    for schema in schemas {
                        let sql = format!(
                            "DROP SCHEMA IF EXISTS {} CASCADE",
                            micro_postgres::names::quote(&schema)
                        );
                        let _ = client.batch_execute(&sql).await;
                    }
                    Some(())
                };
                let _ = tokio::time::timeout(Duration::from_secs(10), clean).await;
            });
        });
        let _ = dropping.join();
    }
}
