//! The pool of PostgreSQL connections a store uses. A factory is synchronous, so the pool is
//! made without connecting; connections are opened on first use (and again after a server
//! restart: deadpool checks a connection before handing it out and replaces a closed one).

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use micro_core::{Error, Result};
use std::time::Duration;
use tokio_postgres::NoTls;

/// The server used when a section gives no `addresses`.
pub const DEFAULT_ADDRESS: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// How long opening one connection may take before the operation fails with a 503.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Error id of the connection.
const ID: &str = "go.micro.store.postgres";

/// A component's PostgreSQL address and its pool of connections.
#[derive(Clone)]
pub struct Connector {
    /// The address as shown in errors: `host:port` (never the password).
    address: String,
    /// What the connection is for (`store`): named in errors.
    purpose: String,
    pool: Pool,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("address", &self.address)
            .field("purpose", &self.purpose)
            .finish()
    }
}

impl Connector {
    /// A pool of at most `pool_size` connections to the first of `addresses` (a
    /// `postgres://user@host:port/dbname` URL, a `key=value` connection string, or
    /// `host:port`; empty = [`DEFAULT_ADDRESS`]), for the component `purpose`. Nothing is
    /// contacted yet; a malformed address is a 400.
    pub fn new(addresses: &[String], purpose: &str, pool_size: usize) -> Result<Self> {
        let raw = addresses
            .iter()
            .flat_map(|a| a.split(','))
            .map(str::trim)
            .find(|a| !a.is_empty())
            .map(|a| {
                if a.contains("://") || a.contains('=') {
                    a.to_string()
                } else {
                    format!("postgres://postgres@{a}/postgres")
                }
            })
            .unwrap_or_else(|| DEFAULT_ADDRESS.to_string());
        let bad = |why: String| {
            Error::bad_request(
                ID,
                format!(
                    "{purpose}: {why}; give postgres://user@host:port/dbname in \
                     {purpose}.addresses"
                ),
            )
        };
        let mut config: tokio_postgres::Config = raw.parse().map_err(|e| {
            bad(format!(
                "'{}' is not a PostgreSQL address ({e})",
                redact(&raw)
            ))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("micro");
        }
        let address = shown_address(&config);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT + Duration::from_secs(1)))
            .build()
            .map_err(|e| bad(format!("cannot make a pool for {address} ({e})")))?;
        Ok(Connector {
            address,
            purpose: purpose.to_string(),
            pool,
        })
    }

    /// The server address, `host:port` (no credentials).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// A connection from the pool, opened if none is idle; failing to open one is a 503
    /// naming the address.
    pub async fn connection(&self) -> Result<Object> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => self.unreachable(&with_causes(&e)),
            other => self.unreachable(&other.to_string()),
        })
    }

    /// The error for a server that cannot be reached or dropped the connection.
    pub fn unreachable(&self, why: &str) -> Error {
        Error::unavailable(
            ID,
            format!(
                "{}: cannot reach PostgreSQL at {}: {why}; is the server running there? set \
                 {}.addresses (MICRO_{}_ADDRESS) to where it is",
                self.purpose,
                self.address,
                self.purpose,
                self.purpose.to_uppercase()
            ),
        )
    }

    /// Closes the pool: its idle connections are dropped, and later operations fail.
    pub fn close(&self) {
        self.pool.close();
    }
}

/// `e` and its causes, `: `-separated (tokio-postgres keeps "connection refused" in the
/// cause of "error connecting to server").
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// `host:port` of every host of `config`, comma-separated.
fn shown_address(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let host = match host {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            };
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `raw` with any password in a URL's user part replaced by `***`.
fn redact(raw: &str) -> String {
    let Some((scheme, rest)) = raw.split_once("://") else {
        return raw.to_string();
    };
    let Some((user, host)) = rest.split_once('@') else {
        return raw.to_string();
    };
    match user.split_once(':') {
        Some((name, _)) => format!("{scheme}://{name}:***@{host}"),
        None => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_parsed_and_shown_without_credentials() {
        let c = Connector::new(
            &["postgres://u:secret@db.example:6543/x".into()],
            "store",
            2,
        )
        .unwrap();
        assert_eq!(c.address(), "db.example:6543");
        let c = Connector::new(&["10.0.0.1:5433".into()], "store", 2).unwrap();
        assert_eq!(c.address(), "10.0.0.1:5433");
        let c = Connector::new(&[], "store", 2).unwrap();
        assert_eq!(c.address(), "127.0.0.1:5432");
    }

    #[test]
    fn a_malformed_address_is_a_400_without_the_password() {
        let err =
            Connector::new(&["postgres://u:secret@h:notaport/x".into()], "store", 1).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(!err.detail.contains("secret"), "{err}");
        assert!(err.detail.contains("store.addresses"), "{err}");
    }
}
