//! The `micro` command. Its commands (call, list, get, publish, health, new; api, web, proxy)
//! are not written yet; until then it says so instead of doing nothing.

fn main() {
    eprintln!(
        "micro: the command-line tool is not built yet (commands call, list, get, publish, \
         health, new, api, web and proxy are planned); see README.md for what works today"
    );
    std::process::exit(2);
}
