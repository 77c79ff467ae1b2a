//! Every public `check_*` case of a suite is in its macro's list, so the generated tests
//! cover the whole suite (a name listed but not defined fails to compile already).

use std::collections::BTreeSet;
use std::path::PathBuf;

const SUITES: [&str; 8] = [
    "registry",
    "broker",
    "store",
    "events",
    "sync",
    "transport",
    "rpc",
    "codec",
];

fn source(suite: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(format!("{suite}.rs"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The names of the public case functions.
fn defined(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let rest = line
                .strip_prefix("pub async fn ")
                .or_else(|| line.strip_prefix("pub fn "))?;
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            name.starts_with("check_").then_some(name)
        })
        .collect()
}

/// The names in the macro's case list: the `check_*` words inside the `[...]` (or the
/// `__codec_cases!(...)`) of the `macro_rules!` at the end of the file.
fn listed(suite: &str, text: &str) -> Vec<String> {
    let start = text
        .find("#[macro_export]")
        .unwrap_or_else(|| panic!("{suite}: no exported macro"));
    text[start..]
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("check_"))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_case_is_in_its_suite_macro() {
    for suite in SUITES {
        let text = source(suite);
        let defined = defined(&text);
        let listed = listed(suite, &text);
        assert!(!defined.is_empty(), "{suite}: no cases found");
        let unique: BTreeSet<&String> = listed.iter().collect();
        assert_eq!(unique.len(), listed.len(), "{suite}: a case listed twice");
        assert_eq!(
            defined.iter().collect::<BTreeSet<_>>(),
            unique,
            "{suite}: the macro's list and the case functions differ"
        );
    }
}
