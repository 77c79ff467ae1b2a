//! The etcd keys of the plugins, and the escaping that keeps any name inside its one path
//! segment.
//!
//! Registry: `<prefix><service>/<node-id>` (go-micro's `/micro/registry/greeter/greeter-1`).
//! Sync: a lock `<prefix>lock/<id>`, an election `<prefix>leader/<id>`; etcd's Lock and
//! Election APIs add `/<lease id in hex>` for each holder or candidate.
//!
//! Each name is [`escape`]d: `%` becomes `%25` and `/` becomes `%2F`, nothing else changes.
//! So a name without those two characters is stored as go-micro stores it, and a `/` in a
//! name can never add a level to the layout (go-micro replaces `/` by `-`, which loses
//! information; `a/b` and `a-b` stay two services here).

/// Escapes `raw` into one key segment: `%` → `%25`, `/` → `%2F`.
pub fn escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            c => out.push(c),
        }
    }
    out
}

/// Reverses [`escape`]; `None` for a segment [`escape`] does not make.
pub fn unescape(segment: &str) -> Option<String> {
    let mut out = String::with_capacity(segment.len());
    let mut rest = segment;
    while let Some(at) = rest.find(['%', '/']) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if tail.starts_with("%25") {
            out.push('%');
        } else if tail.starts_with("%2F") {
            out.push('/');
        } else {
            return None;
        }
        rest = &tail[3..];
    }
    out.push_str(rest);
    Some(out)
}

/// Ends `prefix` with one `/` (an empty prefix stays empty: keys start at the root).
pub fn normalize_prefix(prefix: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    }
}

/// The key of node `node` of `service` under the registry prefix `prefix` (ending in `/`).
pub fn node_key(prefix: &str, service: &str, node: &str) -> String {
    format!("{prefix}{}/{}", escape(service), escape(node))
}

/// The prefix of every node key of `service`.
pub fn service_prefix(prefix: &str, service: &str) -> String {
    format!("{prefix}{}/", escape(service))
}

/// The `(service, node id)` a key made by [`node_key`] names; `None` for any other key.
pub fn parse_node_key(prefix: &str, key: &str) -> Option<(String, String)> {
    let (service, node) = key.strip_prefix(prefix)?.split_once('/')?;
    Some((unescape(service)?, unescape(node)?))
}

/// The name given to etcd's Lock API for lock `id` (the sync prefix ends in `/`).
pub fn lock_name(prefix: &str, id: &str) -> String {
    format!("{prefix}lock/{}", escape(id))
}

/// The name given to etcd's Election API for election `id`.
pub fn election_name(prefix: &str, id: &str) -> String {
    format!("{prefix}leader/{}", escape(id))
}

/// The key etcd's Lock API (and a `Mutex` of etcd's Go client) makes for the holder or
/// waiter with lease `lease` of the lock named `name`: `<name>/<lease in hex>`.
pub fn holder_key(name: &str, lease: i64) -> String {
    format!("{name}/{lease:x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips_and_keeps_one_segment() {
        for raw in [
            "",
            "greeter",
            "go.micro.srv.greeter",
            "a/b",
            "%2F",
            "a%b/c/",
            "ünï✓",
        ] {
            let segment = escape(raw);
            assert!(!segment.contains('/'), "{segment}");
            assert_eq!(unescape(&segment).as_deref(), Some(raw), "{segment}");
        }
        assert_eq!(escape("greeter-1"), "greeter-1");
        assert_eq!(
            node_key("/micro/registry/", "a/b", "n/1"),
            "/micro/registry/a%2Fb/n%2F1"
        );
        assert_eq!(unescape("%zz"), None);
        assert_eq!(unescape("%2"), None);
        assert_eq!(unescape("a/b"), None);
    }

    #[test]
    fn node_keys_parse_back() {
        let prefix = "/micro/registry/";
        let key = node_key(prefix, "a/b%", "n/1");
        assert_eq!(
            parse_node_key(prefix, &key),
            Some(("a/b%".to_string(), "n/1".to_string()))
        );
        assert_eq!(parse_node_key(prefix, "/micro/registry/a/b/c"), None);
        assert_eq!(parse_node_key(prefix, "/other/a/b"), None);
        assert!(service_prefix(prefix, "a").starts_with(prefix));
        assert!(!node_key(prefix, "ab", "x").starts_with(&service_prefix(prefix, "a")));
    }

    #[test]
    fn prefixes_end_in_one_slash() {
        assert_eq!(normalize_prefix("/micro/registry"), "/micro/registry/");
        assert_eq!(normalize_prefix("/micro/registry/"), "/micro/registry/");
        assert_eq!(normalize_prefix(""), "");
        assert_eq!(
            holder_key("/micro/sync/lock/a", 255),
            "/micro/sync/lock/a/ff"
        );
    }
}
