//! Rules that hold for the whole tree: no global state in library code, and the core
//! depends on no plugin.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            // Tests, examples and benches may hold what libraries must not.
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !["tests", "examples", "benches", "target", "fuzz"].contains(&name) {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Library source files: the facade, the core, the macros, the conformance suites, the
/// plugins (with the example out-of-tree plugin) and the CLI.
fn library_sources() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in [
        "src",
        "micro-catalog/src",
        "micro-core/src",
        "micro-derive/src",
        "micro-cli/src",
        "micro-build/src",
        "micro-conformance/src",
        "micro-plugins",
        "tests/example-plugin/src",
    ] {
        rust_files(&root().join(dir), &mut files);
    }
    assert!(files.len() > 10, "found only {files:?}");
    files
}

fn global_state_in(line: &str) -> Option<&'static str> {
    let code = line.split("//").next().unwrap_or("").trim();
    for marker in [
        "lazy_static!",
        "thread_local!",
        "set_global_default",
        "tracing::subscriber::set_global",
        "install_default(",
        "once_cell::sync::Lazy",
        "LazyLock",
    ] {
        if code.contains(marker) {
            return Some(marker);
        }
    }
    let is_static = [
        "static ",
        "pub static ",
        "pub(crate) static ",
        "static mut ",
    ]
    .iter()
    .any(|p| code.starts_with(p));
    if is_static {
        for holder in [
            "Mutex", "RwLock", "OnceLock", "OnceCell", "Lazy", "Atomic", "Cell", "mut ",
        ] {
            if code.contains(holder) {
                return Some("static holding state");
            }
        }
    }
    None
}

#[test]
fn no_global_state_in_library_code() {
    let mut hits = Vec::new();
    for file in library_sources() {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, line) in text.lines().enumerate() {
            if let Some(what) = global_state_in(line) {
                hits.push(format!("{}:{}: {what}: {line}", file.display(), i + 1));
            }
        }
    }
    assert!(hits.is_empty(), "global state found:\n{}", hits.join("\n"));
}

#[test]
fn the_checker_catches_globals() {
    assert!(global_state_in("static REGISTRY: Mutex<Vec<u8>> = Mutex::new(Vec::new());").is_some());
    assert!(global_state_in("pub static COUNT: AtomicUsize = AtomicUsize::new(0);").is_some());
    assert!(global_state_in("    tracing::subscriber::set_global_default(sub)").is_some());
    assert!(global_state_in("static NAME: &str = \"micro\";").is_none());
    assert!(global_state_in("// lazy_static! in a comment").is_none());
}

#[test]
fn core_depends_on_no_plugin_crate() {
    let manifest = std::fs::read_to_string(root().join("micro-core/Cargo.toml")).unwrap();
    let deps: Vec<&str> = manifest
        .lines()
        .filter(|l| l.trim_start().starts_with("micro-"))
        .collect();
    assert_eq!(
        deps,
        [
            "micro-catalog.workspace = true",
            "micro-derive.workspace = true"
        ],
        "micro-core depends on {deps:?}"
    );
}

#[test]
fn example_plugin_depends_on_the_contracts_only() {
    let manifest = std::fs::read_to_string(root().join("tests/example-plugin/Cargo.toml")).unwrap();
    let dependencies = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .unwrap_or("");
    let deps: Vec<&str> = dependencies
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("micro"))
        .collect();
    assert_eq!(
        deps,
        [
            "micro-core.workspace = true",
            "micro-derive.workspace = true"
        ],
        "micro-example-plugin depends on {deps:?}"
    );
}

#[test]
fn bare_facade_has_no_plugin_crate() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .current_dir(root())
        .args([
            "tree",
            "-p",
            "micro",
            "--no-default-features",
            "--prefix",
            "none",
            "-e",
            "normal",
            "--offline",
        ])
        .output()
        .unwrap();
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let micro_crates: Vec<&str> = tree
        .lines()
        .filter(|l| l.starts_with("micro-"))
        .map(|l| l.split(' ').next().unwrap_or(l))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        micro_crates,
        ["micro-catalog", "micro-core", "micro-derive"],
        "{tree}"
    );
    // And the default build does contain the embedded plugins.
    let out = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root())
        .args([
            "tree",
            "-p",
            "micro",
            "--prefix",
            "none",
            "-e",
            "normal",
            "--offline",
        ])
        .output()
        .unwrap();
    let tree = String::from_utf8_lossy(&out.stdout);
    for plugin in ["micro-memory", "micro-local", "micro-file"] {
        assert!(
            tree.contains(plugin),
            "{plugin} missing from the default build"
        );
    }
}

/// Crates that only the application side may pull in through micro-core (its `service`
/// feature): a plugin crate that shows one of them depends on more than the contracts.
/// (Proc-macro dependencies, which run at build time only, are not counted.)
const APPLICATION_ONLY: [&str; 5] = [
    "figment",
    "notify",
    "tracing-subscriber",
    "yaml_serde",
    "strsim",
];

/// The run-time dependency tree of `package` (`cargo tree` plus `extra` arguments).
fn normal_tree(package: &str, extra: &[&str]) -> String {
    let out = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root())
        .args([
            "tree",
            "-p",
            package,
            "--prefix",
            "none",
            "-e",
            "normal,no-proc-macro",
            "--offline",
        ])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo tree -p {package} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn plugin_crates_depend_on_the_contracts_only() {
    let mut crates = vec![(
        "micro-conformance".to_string(),
        root().join("micro-conformance"),
    )];
    for entry in std::fs::read_dir(root().join("micro-plugins")).unwrap() {
        let dir = entry.unwrap().path();
        let name = format!("micro-{}", dir.file_name().unwrap().to_string_lossy());
        crates.push((name, dir));
    }
    assert!(crates.len() > 5, "no plugin crates found: {crates:?}");
    for (name, dir) in crates {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let tree = normal_tree(&name, &[]);
        for banned in APPLICATION_ONLY {
            // A plugin may use one itself (the local registry watches its directory with
            // notify); it must not get it through micro-core.
            let own = manifest
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{banned}.")));
            let found = tree.lines().any(|l| l.starts_with(&format!("{banned} v")));
            assert!(
                own || !found,
                "{name} pulls in {banned} through micro-core: depend on micro-core without \
                 its `service` feature\n{tree}"
            );
        }
    }
    // The bare contracts themselves.
    let tree = normal_tree("micro-core", &["--no-default-features"]);
    for banned in APPLICATION_ONLY {
        assert!(
            !tree.lines().any(|l| l.starts_with(&format!("{banned} v"))),
            "micro-core without `service` pulls in {banned}\n{tree}"
        );
    }
}
