//! What the nats registry keeps per node: the KV key naming it, the JSON record under it,
//! and the reversible escaping that fits any service name, version or node id into a KV key
//! token or a subject token.

use micro_core::registry::{Node, Service};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Escapes `raw` into one KV key / subject token: `A-Z a-z 0-9 _ -` stay, every other byte
/// of the UTF-8 text becomes `=XX` (upper-case hex), and the empty text becomes `=`. The
/// result is never empty, holds no `.`, `*`, `>` or space, and [`unescape`] gives `raw` back.
pub fn escape(raw: &str) -> String {
    crate::escape::escape_nonempty(raw, b'=', |_, byte| {
        byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
    })
}

/// Reverses [`escape`]; `None` when `token` is not something [`escape`] makes.
pub fn unescape(token: &str) -> Option<String> {
    crate::escape::unescape_nonempty(token, b'=')
}

/// The KV key of one node: `<service>.<version>.<node>`, each part [`escape`]d.
pub fn node_key(service: &str, version: &str, node: &str) -> String {
    format!("{}.{}.{}", escape(service), escape(version), escape(node))
}

/// The `(service, version, node)` a key made by [`node_key`] names; `None` for any other key.
pub fn parse_key(key: &str) -> Option<(String, String, String)> {
    let mut parts = key.split('.');
    let (service, version, node) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some((unescape(service)?, unescape(version)?, unescape(node)?))
}

/// The key prefix of every node of `service` (its versions included).
pub fn service_prefix(service: &str) -> String {
    format!("{}.", escape(service))
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis().min(u128::from(u64::MAX)) as u64)
        .unwrap_or(0)
}

/// The value stored under a node's key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The service version with this one node.
    pub service: Service,
    /// When the node expires, in milliseconds since the Unix epoch (the writer's clock);
    /// `None` = until deregistered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

impl Record {
    /// The record of `node` of `service`, expiring `ttl` after `now` (no TTL, or zero, = never).
    pub fn new(service: &Service, node: &Node, ttl: Option<Duration>, now: SystemTime) -> Self {
        Record {
            service: Service {
                name: service.name.clone(),
                version: service.version.clone(),
                metadata: service.metadata.clone(),
                endpoints: service.endpoints.clone(),
                nodes: vec![node.clone()],
            },
            expires_at: ttl
                .filter(|ttl| !ttl.is_zero())
                .and_then(|ttl| now.checked_add(ttl))
                .map(unix_millis),
        }
    }

    /// Reads the record stored under `key`, or says what is wrong with it.
    pub fn parse(key: &str, value: &[u8]) -> Result<Self, String> {
        let record: Record = serde_json::from_slice(value).map_err(|e| {
            format!("not a registry record (JSON of a service and expires_at): {e}")
        })?;
        let [node] = record.service.nodes.as_slice() else {
            return Err(format!(
                "a registry record holds exactly one node, this one {}",
                record.service.nodes.len()
            ));
        };
        if record.service.name.is_empty() {
            return Err("the record's service has no name".to_string());
        }
        let expected = node_key(&record.service.name, &record.service.version, &node.id);
        if expected != key {
            return Err(format!(
                "the record describes the node stored under key {expected}, not this key"
            ));
        }
        Ok(record)
    }

    /// The one node.
    pub fn node(&self) -> &Node {
        &self.service.nodes[0]
    }

    /// Whether the node is past its expiry at `now`.
    pub fn expired(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|at| at <= unix_millis(now))
    }

    /// When the node expires, if ever.
    pub fn expiry(&self) -> Option<SystemTime> {
        self.expires_at
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
    }

    /// Whether `other` says the same as this record, expiry aside (a pure refresh).
    pub fn same_data(&self, other: &Record) -> bool {
        self.service == other.service
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips_and_fits_a_token() {
        for raw in [
            "",
            "greeter",
            "go.micro.srv.greeter",
            "1.0.0",
            "a b*c>d=e/f",
            "ünïcode-✓",
            "=",
            "=2E",
        ] {
            let token = escape(raw);
            assert!(!token.is_empty());
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-=".contains(&b)),
                "{token}"
            );
            assert_eq!(unescape(&token).as_deref(), Some(raw), "{token}");
        }
        assert_eq!(escape("greeter-1_a"), "greeter-1_a");
        assert_eq!(node_key("greeter", "1.0.0", "n1"), "greeter.1=2E0=2E0.n1");
        assert_eq!(unescape("=zz"), None);
        assert_eq!(unescape("=4"), None);
    }

    #[test]
    fn malformed_records_are_errors_not_panics() {
        let key = node_key("s", "v", "n");
        for bad in [
            &b"garbage"[..],
            b"{}",
            b"{\"service\":{\"name\":\"s\",\"nodes\":[]}}",
            b"{\"service\":{\"name\":\"other\",\"version\":\"v\",\"nodes\":[{\"id\":\"n\",\"address\":\"\"}]}}",
            b"\xff\xfe",
        ] {
            assert!(Record::parse(&key, bad).is_err());
        }
        let good = br#"{"service":{"name":"s","version":"v","nodes":[{"id":"n","address":"a"}]}}"#;
        assert_eq!(Record::parse(&key, good).unwrap().node().address, "a");
    }
}
