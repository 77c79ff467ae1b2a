//! The header map of a frame: a few entries, looked up without regard to case.
//!
//! Keys and values are [`ByteString`]s: a header decoded from a frame shares the frame's
//! buffer instead of being copied, and micro's own header names (and the common content
//! types) are static strings, so building or reading the headers of a call allocates
//! nothing per header. A frame carries a handful of headers, so a vector searched in order
//! beats hashing.

use super::headers;
use crate::repeated_keys::{self, Spelling};
use bytestring::ByteString;
use std::fmt;

/// Values micro writes most; like micro's header names, they need no allocation when
/// given as `&str`.
const COMMON_VALUES: [&str; 5] = [
    "application/json",
    "application/protobuf",
    "application/octet-stream",
    "application/grpc+proto",
    "true",
];

/// The [`ByteString`] for `text`: a static one when it is one of micro's header names or a
/// common value, else a copy.
pub fn header_text(text: &str) -> ByteString {
    match headers::RESERVED
        .iter()
        .chain(&COMMON_VALUES)
        .find(|known| **known == text)
    {
        Some(known) => ByteString::from_static(known),
        None => ByteString::from(text),
    }
}

/// What a header key or value can be made from.
pub trait IntoHeaderText {
    /// The text, copied only when it has to be.
    fn into_header_text(self) -> ByteString;
}

impl IntoHeaderText for ByteString {
    fn into_header_text(self) -> ByteString {
        self
    }
}

impl IntoHeaderText for &ByteString {
    fn into_header_text(self) -> ByteString {
        self.clone()
    }
}

impl IntoHeaderText for String {
    /// Takes the string's buffer (shrunk to fit: a buffer with spare room would cost
    /// `Bytes` an allocation of its own).
    fn into_header_text(self) -> ByteString {
        ByteString::from(self.into_boxed_str())
    }
}

impl IntoHeaderText for &String {
    fn into_header_text(self) -> ByteString {
        header_text(self)
    }
}

impl IntoHeaderText for &str {
    fn into_header_text(self) -> ByteString {
        header_text(self)
    }
}

/// Header map of a [`Message`](super::Message). Keys keep the spelling they were given;
/// [`HeaderMap::get`], [`HeaderMap::insert`] and [`HeaderMap::remove`] ignore case. A map
/// decoded from a frame keeps every header in order (a key sent twice is there twice, and
/// lookups see the last one).
#[derive(Clone, Default)]
pub struct HeaderMap {
    entries: Vec<(ByteString, ByteString)>,
}

impl HeaderMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map with room for `capacity` headers.
    pub fn with_capacity(capacity: usize) -> Self {
        HeaderMap {
            entries: Vec::with_capacity(capacity),
        }
    }

    /// Number of headers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.entries
            .iter()
            .rposition(|(k, _)| k.eq_ignore_ascii_case(key))
    }

    /// The value of `key`, whatever its case.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.position(key).map(|i| &*self.entries[i].1)
    }

    /// Whether `key` is present, whatever its case.
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Sets `key` to `value`, replacing the value of the same key in any case (the key takes
    /// the new spelling). Returns the old value.
    pub fn insert(
        &mut self,
        key: impl IntoHeaderText,
        value: impl IntoHeaderText,
    ) -> Option<ByteString> {
        let key = key.into_header_text();
        let value = value.into_header_text();
        match self.position(&key) {
            Some(i) => {
                let old = std::mem::replace(&mut self.entries[i], (key, value));
                Some(old.1)
            }
            None => {
                self.entries.push((key, value));
                None
            }
        }
    }

    /// Adds a header without looking for the same key (a frame decoder's insert).
    pub fn append(&mut self, key: ByteString, value: ByteString) {
        self.entries.push((key, value));
    }

    /// Removes every header named `key` (any case); returns the last value.
    pub fn remove(&mut self, key: &str) -> Option<ByteString> {
        let mut removed = None;
        self.entries.retain(|(k, v)| {
            let hit = k.eq_ignore_ascii_case(key);
            if hit {
                removed = Some(v.clone());
            }
            !hit
        });
        removed
    }

    /// Keeps only the headers for which `keep(key, value)` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.entries.retain(|(k, v)| keep(k, v));
    }

    /// Every header as (key, value), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (&**k, &**v))
    }

    /// Every header as shared (key, value) strings, in order: cloning one costs no copy.
    pub fn entries(&self) -> impl Iterator<Item = (&ByteString, &ByteString)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// Every key, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| &**k)
    }
}

impl<'a> IntoIterator for &'a HeaderMap {
    type Item = (&'a str, &'a str);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (ByteString, ByteString)>,
        fn(&'a (ByteString, ByteString)) -> (&'a str, &'a str),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (&**k, &**v))
    }
}

impl IntoIterator for HeaderMap {
    type Item = (ByteString, ByteString);
    type IntoIter = std::vec::IntoIter<(ByteString, ByteString)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<K: IntoHeaderText, V: IntoHeaderText> FromIterator<(K, V)> for HeaderMap {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut map = HeaderMap::new();
        map.extend(iter);
        map
    }
}

/// Adds every header as [`HeaderMap::insert`] would one by one (a repeated key keeps its
/// last spelling and value), in linear time however many there are.
impl<K: IntoHeaderText, V: IntoHeaderText> Extend<(K, V)> for HeaderMap {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        let before = self.entries.len();
        self.entries.extend(
            iter.into_iter()
                .map(|(k, v)| (k.into_header_text(), v.into_header_text())),
        );
        if self.entries.len() > before {
            repeated_keys::merge(&mut self.entries, Spelling::Last);
        }
    }
}

impl<K: IntoHeaderText, V: IntoHeaderText, const N: usize> From<[(K, V); N]> for HeaderMap {
    fn from(entries: [(K, V); N]) -> Self {
        entries.into_iter().collect()
    }
}

/// Equal when both hold the same headers, in any order, with keys compared without case.
impl PartialEq for HeaderMap {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self.iter().all(|(k, v)| other.get(k) == Some(v))
            && other.iter().all(|(k, v)| self.get(k) == Some(v))
    }
}

impl Eq for HeaderMap {}

impl fmt::Debug for HeaderMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_ignore_case_and_insert_replaces() {
        let mut map = HeaderMap::new();
        assert_eq!(map.insert("micro-id", "1"), None);
        assert_eq!(map.insert(headers::ID, "2").as_deref(), Some("1"));
        assert_eq!(map.len(), 1);
        assert_eq!(map.get("MICRO-ID"), Some("2"));
        assert_eq!(map.keys().collect::<Vec<_>>(), [headers::ID]);
        assert_eq!(map.remove("Micro-Id").as_deref(), Some("2"));
        assert!(map.is_empty());
    }

    #[test]
    fn extend_merges_like_insert() {
        let mut one_by_one = HeaderMap::from([("X-A", "1")]);
        one_by_one.insert("x-a", "2");
        one_by_one.insert("X-B", "3");
        let mut at_once = HeaderMap::from([("X-A", "1")]);
        at_once.extend([("x-a", "2"), ("X-B", "3")]);
        assert_eq!(at_once, one_by_one);
        assert_eq!(at_once.keys().collect::<Vec<_>>(), ["x-a", "X-B"]);
    }

    #[test]
    fn decoded_duplicates_read_as_the_last() {
        let mut map = HeaderMap::new();
        map.append("X-A".into(), "1".into());
        map.append("x-a".into(), "2".into());
        assert_eq!(map.get("X-A"), Some("2"));
        assert_eq!(map.remove("x-A").as_deref(), Some("2"));
        assert!(map.is_empty());
    }

    #[test]
    fn equality_ignores_order() {
        let a = HeaderMap::from([("A", "1"), ("B", "2")]);
        let b = HeaderMap::from([("B", "2"), ("a", "1")]);
        assert_eq!(a, b);
        assert_ne!(a, HeaderMap::from([("A", "1"), ("B", "3")]));
        assert_ne!(a, HeaderMap::from([("A", "1")]));
    }

    #[test]
    fn well_known_text_is_static() {
        // A static Bytes is never unique; a copy is, until it is cloned.
        let spelled = String::from("Content-Type");
        let known = header_text(&spelled);
        assert_eq!(known, headers::CONTENT_TYPE);
        assert!(!known.as_bytes().is_unique());
        let copied = header_text("X-Custom");
        assert_eq!(copied, "X-Custom");
        assert!(copied.as_bytes().is_unique());
    }
}
