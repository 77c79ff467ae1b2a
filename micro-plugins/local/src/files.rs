//! The on-disk format: escaped names, one JSON record per node, atomic writes and directory
//! scans. Everything here is blocking and runs inside `spawn_blocking`.
//!
//! Layout: `{dir}/{service}/{version}/{node}.json`, each component escaped by [`escape`].
//! Names starting with `.` are temporary files (`.tmp*` while writing, `.reap*` while
//! removing an expired record) and are never read as records.

use crate::record_file::{self, MAX_RECORD_SIZE};
use micro_core::logger::Logger;
use micro_core::registry::{Node, Service, version_or_latest};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest escaped path component kept whole; longer ones are cut and given a hash suffix
/// (file systems limit a name to 255 bytes).
const MAX_COMPONENT: usize = 200;
/// Where a long escaped component is cut before its hash suffix.
const CUT_AT: usize = 180;
/// Temporary files older than this were left by a crashed writer and are removed.
const STALE_TEMP: Duration = Duration::from_secs(60);
/// Suffix of record files.
const SUFFIX: &str = ".json";

/// What one node file holds: the service record of one version with just this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NodeRecord {
    /// The service (one version) with exactly one node.
    pub service: Service,
    /// Unix milliseconds after which the node is gone; `None` = until deregistered.
    pub expires_at: Option<u64>,
    /// Unix milliseconds of the last registration; the freshest record of a version gives
    /// the version's metadata and endpoints.
    #[serde(default)]
    pub registered_at: u64,
}

impl NodeRecord {
    /// The node (a valid record has exactly one).
    pub fn node(&self) -> Option<&Node> {
        self.service.nodes.first()
    }

    /// `(service, version, node id)`.
    pub fn key(&self) -> (String, String, String) {
        (
            self.service.name.clone(),
            self.service.version.clone(),
            self.node().map(|n| n.id.clone()).unwrap_or_default(),
        )
    }

    fn expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Escapes a name into one safe path component.
///
/// ASCII lowercase letters, digits, `-`, `_` and `.` (except in first place) stay; an
/// uppercase letter becomes `^` + its lowercase form (safe on case-insensitive file systems);
/// every other byte becomes `%XX`. The empty name is `%`. So `/`, `..` or a leading `.` can
/// never appear, and distinct names give distinct components. A component longer than 200
/// bytes is cut at 180 and suffixed with `~` and a 64-bit FNV-1a hash of the whole name.
pub(crate) fn escape(raw: &str) -> String {
    if raw.is_empty() {
        return "%".to_string();
    }
    let mut out = String::with_capacity(raw.len());
    for (i, b) in raw.bytes().enumerate() {
        match b {
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => out.push(char::from(b)),
            b'.' if i > 0 => out.push('.'),
            b'A'..=b'Z' => {
                out.push('^');
                out.push(char::from(b.to_ascii_lowercase()));
            }
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    if out.len() > MAX_COMPONENT {
        out.truncate(CUT_AT);
        let _ = write!(out, "~{:016x}", fnv1a(raw.as_bytes()));
    }
    out
}

/// 64-bit FNV-1a: stable across processes, builds and Rust versions.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `{dir}/{service}`.
pub(crate) fn service_dir(base: &Path, name: &str) -> PathBuf {
    base.join(escape(name))
}

/// `{dir}/{service}/{version}/{node}.json`.
pub(crate) fn node_path(base: &Path, name: &str, version: &str, node_id: &str) -> PathBuf {
    service_dir(base, name)
        .join(escape(version_or_latest(version)))
        .join(format!("{}{SUFFIX}", escape(node_id)))
}

/// Creates `path` and its missing parents with mode 0700.
pub(crate) fn create_dir_private(path: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// Writes a record atomically: a temporary file in the same directory, renamed over the
/// record. Readers see the old record or the new one, never part of one.
pub(crate) fn write_record(base: &Path, record: &NodeRecord) -> io::Result<PathBuf> {
    let node_id = record.node().map(|n| n.id.as_str()).unwrap_or_default();
    let path = node_path(base, &record.service.name, &record.service.version, node_id);
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("record path has no parent"))?;
    let bytes = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
    if bytes.len() as u64 > MAX_RECORD_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!(
                "the record of {} is {} bytes, over the {MAX_RECORD_SIZE}-byte limit of the \
                 local registry: publish fewer or smaller endpoint schemas",
                record.service.name,
                bytes.len()
            ),
        ));
    }
    // A concurrent deregister or scan may remove the (empty) version directory between our
    // mkdir and the temp file's creation: create it again and retry.
    let mut attempt = 0;
    loop {
        create_dir_private(dir)?;
        match write_once(dir, &path, &bytes) {
            Err(err) if err.kind() == io::ErrorKind::NotFound && attempt < 5 => attempt += 1,
            other => return other.map(|()| path),
        }
    }
}

fn write_once(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp")
        .suffix(".part")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.flush()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Removes a node's record (absent is fine) and then its version and service directories
/// when they are empty.
pub(crate) fn remove_record(
    base: &Path,
    name: &str,
    version: &str,
    node_id: &str,
) -> io::Result<()> {
    let path = node_path(base, name, version, node_id);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    if let Some(version_dir) = path.parent() {
        // Fails (harmlessly) while the directory still holds other nodes.
        let _ = std::fs::remove_dir(version_dir);
        if let Some(service_dir) = version_dir.parent() {
            let _ = std::fs::remove_dir(service_dir);
        }
    }
    Ok(())
}

/// Reads every live record under `base` (of one service when `service` is given). Expired
/// records are removed, stale temporary files too; unreadable, corrupt or foreign files are
/// skipped with a debug log.
pub(crate) fn scan(
    base: &Path,
    service: Option<&str>,
    logger: &Logger,
) -> io::Result<Vec<NodeRecord>> {
    let now = now_millis();
    let mut records = Vec::new();
    match service {
        Some(name) => scan_service(base, &service_dir(base, name), now, logger, &mut records),
        None => {
            let entries = match std::fs::read_dir(base) {
                Ok(entries) => entries,
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(records),
                Err(err) => return Err(err),
            };
            for entry in entries.flatten() {
                if is_hidden(&entry.path()) {
                    continue;
                }
                scan_service(base, &entry.path(), now, logger, &mut records);
            }
        }
    }
    Ok(records)
}

fn scan_service(base: &Path, dir: &Path, now: u64, logger: &Logger, out: &mut Vec<NodeRecord>) {
    let Some(versions) = read_dir_logged(dir, logger) else {
        return;
    };
    for version in versions.flatten() {
        let version_dir = version.path();
        if is_hidden(&version_dir) {
            continue;
        }
        let Some(files) = read_dir_logged(&version_dir, logger) else {
            continue;
        };
        for file in files.flatten() {
            let path = file.path();
            if is_hidden(&path) {
                remove_if_stale(&path, logger);
                continue;
            }
            let Some(record) = read_record(base, &path, logger) else {
                continue;
            };
            if record.expired(now) {
                reap(&path, logger);
            } else {
                out.push(record);
            }
        }
    }
}

fn read_dir_logged(dir: &Path, logger: &Logger) -> Option<std::fs::ReadDir> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Some(entries),
        // Gone meanwhile, or a plain file where a directory was expected: nothing to read.
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            None
        }
        Err(err) => {
            logger.in_scope(|| {
                tracing::debug!(dir = %dir.display(), error = %err, "local registry: skipping unreadable directory")
            });
            None
        }
    }
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.'))
}

/// Reads and checks one record file; `None` (with a debug log) for anything that is not a
/// record of ours at its expected place.
pub(crate) fn read_record(base: &Path, path: &Path, logger: &Logger) -> Option<NodeRecord> {
    let skip = |why: &dyn std::fmt::Display| {
        logger.in_scope(|| {
            tracing::debug!(file = %path.display(), reason = %why, "local registry: skipping file")
        });
    };
    if path.extension().and_then(|e| e.to_str()) != Some("json") {
        skip(&"not a .json record");
        return None;
    }
    let bytes = match record_file::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return None,
        Err(err) => {
            skip(&err);
            return None;
        }
    };
    let record: NodeRecord = match serde_json::from_slice(&bytes) {
        Ok(record) => record,
        Err(err) => {
            skip(&format!("not a node record: {err}"));
            return None;
        }
    };
    let Some(node) = record.node().filter(|_| record.service.nodes.len() == 1) else {
        skip(&"a node record must hold exactly one node");
        return None;
    };
    let expected = node_path(
        base,
        &record.service.name,
        &record.service.version,
        &node.id,
    );
    if expected != path {
        skip(&format!("record belongs at {}", expected.display()));
        return None;
    }
    Some(record)
}

/// Removes an expired record without losing a refresh that raced with us: the file is first
/// moved aside atomically, then checked again; a record that is live after all is linked back
/// (unless a newer one took its place meanwhile).
fn reap(path: &Path, logger: &Logger) {
    let Some(dir) = path.parent() else {
        return;
    };
    let grave = match tempfile::Builder::new().prefix(".reap").tempfile_in(dir) {
        Ok(grave) => grave,
        Err(err) => {
            logger.in_scope(|| tracing::debug!(file = %path.display(), error = %err, "local registry: cannot remove expired record"));
            return;
        }
    };
    if std::fs::rename(path, grave.path()).is_err() {
        return; // someone else removed or replaced it
    }
    let still_expired = record_file::read(grave.path())
        .ok()
        .and_then(|bytes| serde_json::from_slice::<NodeRecord>(&bytes).ok())
        .is_none_or(|r| r.expired(now_millis()));
    if still_expired {
        logger.in_scope(
            || tracing::debug!(file = %path.display(), "local registry: removed expired node"),
        );
    } else {
        // Fails when a newer record is already in place, which is what we want.
        let _ = std::fs::hard_link(grave.path(), path);
    }
    // Dropping `grave` removes the moved-aside file.
}

fn remove_if_stale(path: &Path, logger: &Logger) {
    let old = std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > STALE_TEMP);
    if old && std::fs::remove_file(path).is_ok() {
        logger.in_scope(|| tracing::debug!(file = %path.display(), "local registry: removed stale temporary file"));
    }
}

/// Merges node records into one `Service` per (name, version), sorted by name and version,
/// nodes sorted by id. The most recently registered record of a version gives its metadata
/// and endpoints.
pub(crate) fn group<'a>(records: impl IntoIterator<Item = &'a NodeRecord>) -> Vec<Service> {
    let mut versions: BTreeMap<(&str, &str), (u64, Service)> = BTreeMap::new();
    for record in records {
        let key = (
            record.service.name.as_str(),
            record.service.version.as_str(),
        );
        match versions.get_mut(&key) {
            None => {
                versions.insert(key, (record.registered_at, record.service.clone()));
            }
            Some((fresh, service)) => {
                if record.registered_at > *fresh {
                    *fresh = record.registered_at;
                    service.metadata = record.service.metadata.clone();
                    service.endpoints = record.service.endpoints.clone();
                }
                service.nodes.extend(record.service.nodes.iter().cloned());
            }
        }
    }
    versions
        .into_values()
        .map(|(_, mut service)| {
            service.nodes.sort_by(|a, b| a.id.cmp(&b.id));
            service
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, version: &str, id: &str, expires_at: Option<u64>) -> NodeRecord {
        NodeRecord {
            service: Service {
                name: name.into(),
                version: version.into(),
                nodes: vec![Node {
                    id: id.into(),
                    address: "127.0.0.1:1".into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
            expires_at,
            registered_at: now_millis(),
        }
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn escaping_keeps_names_inside_one_component() {
        assert_eq!(escape("go.micro.srv.greeter"), "go.micro.srv.greeter");
        assert_eq!(escape("1.0.0"), "1.0.0");
        assert_eq!(escape("Greeter"), "^greeter");
        assert_eq!(escape("a/b"), "a%2Fb");
        assert_eq!(escape(".."), "%2E.");
        assert_eq!(escape("."), "%2E");
        assert_eq!(escape(""), "%");
        assert_eq!(escape("x\0y"), "x%00y");
        assert_eq!(escape("é"), "%C3%A9");
        assert_eq!(escape("^"), "%5E");
        for raw in ["../../etc/passwd", "/abs", "a\\b", ".hidden", "%2F", "~x"] {
            let escaped = escape(raw);
            assert!(
                !escaped.contains('/') && !escaped.starts_with('.'),
                "{raw} -> {escaped}"
            );
        }
        // Distinct names stay distinct, even when they look like escapes.
        assert_ne!(escape("a/b"), escape("a%2Fb"));
        assert_ne!(escape("A"), escape("^a"));
        assert_ne!(escape("A"), escape("a"));
    }

    #[test]
    fn long_names_are_cut_and_hashed() {
        let long = "x".repeat(1000);
        let other = format!("{}y", "x".repeat(999));
        let (a, b) = (escape(&long), escape(&other));
        assert!(a.len() <= MAX_COMPONENT && b.len() <= MAX_COMPONENT);
        assert_ne!(a, b);
        assert_eq!(a, escape(&long), "stable");
    }

    #[test]
    fn hostile_names_stay_inside_the_directory() {
        let base = tempfile::tempdir().unwrap();
        let inner = base.path().join("registry");
        create_dir_private(&inner).unwrap();
        let rec = record("../../escape", "../..", "../../../node", None);
        let path = write_record(&inner, &rec).unwrap();
        assert!(path.starts_with(&inner));
        assert_eq!(names_in(base.path()), vec!["registry"]);
        let found = scan(&inner, Some("../../escape"), &Logger::none()).unwrap();
        assert_eq!(found, vec![rec]);
    }

    #[test]
    fn atomic_write_leaves_no_temp_files() {
        let base = tempfile::tempdir().unwrap();
        let mut rec = record("greeter", "1.0.0", "greeter-1", None);
        for i in 0..20 {
            rec.service.nodes[0].address = format!("127.0.0.1:{i}");
            write_record(base.path(), &rec).unwrap();
        }
        let dir = base.path().join("greeter").join("1.0.0");
        assert_eq!(names_in(&dir), vec!["greeter-1.json"]);
        let found = scan(base.path(), None, &Logger::none()).unwrap();
        assert_eq!(found, vec![rec]);
    }

    #[test]
    fn expired_records_are_ignored_and_removed() {
        let base = tempfile::tempdir().unwrap();
        let live = record("greeter", "1", "live", Some(now_millis() + 60_000));
        let dead = record("greeter", "1", "dead", Some(now_millis().saturating_sub(1)));
        write_record(base.path(), &live).unwrap();
        let dead_path = write_record(base.path(), &dead).unwrap();
        let found = scan(base.path(), Some("greeter"), &Logger::none()).unwrap();
        assert_eq!(found, vec![live]);
        assert!(!dead_path.exists(), "expired record removed");
        let dir = base.path().join("greeter").join("1");
        assert_eq!(names_in(&dir), vec!["live.json"], "no reap leftovers");
    }

    #[test]
    fn corrupt_and_foreign_files_are_skipped() {
        let base = tempfile::tempdir().unwrap();
        let good = record("greeter", "1", "good", None);
        write_record(base.path(), &good).unwrap();
        let dir = base.path().join("greeter").join("1");
        std::fs::write(dir.join("corrupt.json"), b"{\"service\": {\"name\": ").unwrap();
        std::fs::write(dir.join("foreign.json"), b"{\"hello\": \"world\"}").unwrap();
        std::fs::write(dir.join("notes.txt"), b"not a record").unwrap();
        // A valid record in the wrong place (it claims another node id).
        let misplaced = serde_json::to_vec(&record("greeter", "1", "other", None)).unwrap();
        std::fs::write(dir.join("moved.json"), misplaced).unwrap();
        // Two nodes in one file.
        let mut two = record("greeter", "1", "two", None);
        two.service.nodes.push(two.service.nodes[0].clone());
        std::fs::write(dir.join("two.json"), serde_json::to_vec(&two).unwrap()).unwrap();
        std::fs::write(base.path().join("stray-file"), b"x").unwrap();
        std::fs::create_dir_all(dir.join("nested.json")).unwrap();
        let found = scan(base.path(), None, &Logger::none()).unwrap();
        assert_eq!(found, vec![good]);
    }

    #[test]
    fn stale_temp_files_are_removed_fresh_ones_kept() {
        let base = tempfile::tempdir().unwrap();
        write_record(base.path(), &record("s", "1", "n", None)).unwrap();
        let dir = base.path().join("s").join("1");
        let fresh = dir.join(".tmpfresh.part");
        let stale = dir.join(".tmpstale.part");
        std::fs::write(&fresh, b"{").unwrap();
        std::fs::write(&stale, b"{").unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(scan(base.path(), None, &Logger::none()).unwrap().len(), 1);
        assert!(fresh.exists());
        assert!(!stale.exists());
    }

    #[test]
    fn remove_record_prunes_empty_directories() {
        let base = tempfile::tempdir().unwrap();
        write_record(base.path(), &record("s", "1", "a", None)).unwrap();
        write_record(base.path(), &record("s", "1", "b", None)).unwrap();
        remove_record(base.path(), "s", "1", "a").unwrap();
        assert_eq!(names_in(&base.path().join("s").join("1")), vec!["b.json"]);
        remove_record(base.path(), "s", "1", "b").unwrap();
        remove_record(base.path(), "s", "1", "b").unwrap();
        assert!(names_in(base.path()).is_empty());
    }

    #[test]
    fn group_merges_nodes_per_version() {
        let mut a = record("s", "1", "b", None);
        a.registered_at = 1;
        a.service.metadata.insert("old".into(), "x".into());
        let mut b = record("s", "1", "a", None);
        b.registered_at = 2;
        b.service.metadata.insert("new".into(), "y".into());
        let c = record("s", "2", "c", None);
        let services = group([&a, &b, &c]);
        assert_eq!(services.len(), 2);
        assert_eq!(services[0].version, "1");
        let ids: Vec<&str> = services[0].nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, vec!["a", "b"]);
        assert!(services[0].metadata.contains_key("new"));
        assert_eq!(services[1].nodes.len(), 1);
    }
}
