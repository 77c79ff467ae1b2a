//! Merging the entries of a list whose keys repeat without regard to case: the one mechanism
//! behind [`Metadata`](crate::Metadata)'s and the transport `HeaderMap`'s bulk inserts.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

/// Up to this many entries, repeats are found by searching in turn; beyond, by hashing.
const SMALL: usize = 16;

/// Which spelling a merged key keeps.
#[derive(Clone, Copy)]
pub(crate) enum Spelling {
    /// The first one given (`Metadata`).
    First,
    /// The last one given, as an `insert` that replaces would leave it (`HeaderMap`).
    Last,
}

/// Merges the entries whose keys are equal ignoring ASCII case into the place of the first
/// one, with the last value and the key `spelling` says. A short list is searched in place
/// (nothing allocated when no key repeats); a long one is indexed by a hash of the lower-cased
/// key, so a message with thousands of headers costs linear time, not quadratic.
pub(crate) fn merge<K: AsRef<str>, V>(entries: &mut Vec<(K, V)>, spelling: Spelling) {
    if entries.len() <= SMALL {
        let mut i = 1;
        while i < entries.len() {
            let key = entries[i].0.as_ref();
            match entries[..i]
                .iter()
                .position(|(k, _)| k.as_ref().eq_ignore_ascii_case(key))
            {
                Some(first) => {
                    let (key, value) = entries.remove(i);
                    keep(&mut entries[first], key, value, spelling);
                }
                None => i += 1,
            }
        }
        return;
    }
    let mut index: HashMap<String, usize> = HashMap::with_capacity(entries.len());
    let mut kept: Vec<(K, V)> = Vec::with_capacity(entries.len());
    for (key, value) in entries.drain(..) {
        match index.entry(key.as_ref().to_ascii_lowercase()) {
            Entry::Occupied(at) => keep(&mut kept[*at.get()], key, value, spelling),
            Entry::Vacant(at) => {
                at.insert(kept.len());
                kept.push((key, value));
            }
        }
    }
    *entries = kept;
}

/// Folds a repeat (`key`, `value`) into the entry kept for its key.
fn keep<K, V>(entry: &mut (K, V), key: K, value: V, spelling: Spelling) {
    entry.1 = value;
    if let Spelling::Last = spelling {
        entry.0 = key;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(entries: &[(&str, &str)], spelling: Spelling) -> Vec<(String, String)> {
        let mut list: Vec<(String, String)> = entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        merge(&mut list, spelling);
        list
    }

    #[test]
    fn short_and_long_lists_merge_alike() {
        let short = [("A", "1"), ("b", "2"), ("a", "3")];
        let first = merged(&short, Spelling::First);
        assert_eq!(first, [("A".into(), "3".into()), ("b".into(), "2".into())]);
        let last = merged(&short, Spelling::Last);
        assert_eq!(last, [("a".into(), "3".into()), ("b".into(), "2".into())]);
        // The same with enough other keys to take the hashed path.
        let fillers: Vec<(String, String)> = (0..SMALL)
            .map(|i| (format!("k{i}"), "x".to_string()))
            .collect();
        let mut long: Vec<(&str, &str)> = short.to_vec();
        long.extend(fillers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        long.push(("B", "4"));
        let first = merged(&long, Spelling::First);
        assert_eq!(first.len(), 2 + SMALL);
        assert_eq!(first[0], ("A".into(), "3".into()));
        assert_eq!(first[1], ("b".into(), "4".into()));
        let last = merged(&long, Spelling::Last);
        assert_eq!(last[1], ("B".into(), "4".into()));
    }
}
