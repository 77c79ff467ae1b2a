//! `micro cli`: the commands at a prompt (rustyline), with history (`~/.micro_history`) and
//! tab completion of commands, service names and endpoint names from the registry.

use crate::commands::Commands;
use crate::{Cli, Command, Io, execute};
use clap::Parser;
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Editor, Helper};
use std::io::Write;
use std::path::PathBuf;
use tokio::runtime::Handle;

/// The prompt.
pub const PROMPT: &str = "micro> ";

/// The commands of the prompt (besides `exit`, `quit` and `help`).
const COMMANDS: [&str; 9] = [
    "call",
    "deregister",
    "get",
    "health",
    "list",
    "publish",
    "register",
    "stats",
    "stream",
];

/// Completes from the registry.
struct Completion {
    commands: Commands,
    runtime: Handle,
}

impl Completion {
    fn services(&self) -> Vec<String> {
        self.runtime
            .block_on(self.commands.list_services())
            .unwrap_or_default()
    }

    fn endpoints(&self, service: &str) -> Vec<String> {
        let versions = self
            .runtime
            .block_on(self.commands.get_service(service))
            .unwrap_or_default();
        let mut names: Vec<String> = versions
            .iter()
            .flat_map(|v| v.endpoints.iter())
            .filter(|e| !e.metadata.contains_key("subscriber"))
            .map(|e| e.name.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// What may stand at word `index` after `words`.
    fn candidates(&self, words: &[&str], index: usize) -> Vec<String> {
        let fixed = |items: &[&str]| items.iter().map(|s| s.to_string()).collect();
        match (words.first().copied(), index) {
            (_, 0) => {
                let mut all: Vec<String> = COMMANDS.iter().map(|c| c.to_string()).collect();
                all.extend(["exit", "help", "quit"].map(String::from));
                all.extend(self.services());
                all
            }
            (Some("list"), 1) => fixed(&["services"]),
            (Some("get" | "register" | "deregister"), 1) => fixed(&["service"]),
            (Some("get"), 2) => self.services(),
            (Some("call" | "stream" | "health" | "stats"), 1) => self.services(),
            (Some("call" | "stream"), 2) => self.endpoints(words[1]),
            (Some(service), 1) if !COMMANDS.contains(&service) => self
                .endpoints(service)
                .iter()
                .filter_map(|e| e.rsplit('.').next().map(crate::dynamic::kebab))
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl Completer for Completion {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let before = &line[..pos];
        let words: Vec<&str> = before.split_whitespace().collect();
        let (index, partial) = if before.ends_with(char::is_whitespace) || words.is_empty() {
            (words.len(), "")
        } else {
            (words.len() - 1, words[words.len() - 1])
        };
        let mut found: Vec<String> = self
            .candidates(&words[..index], index)
            .into_iter()
            .filter(|c| c.starts_with(partial))
            .collect();
        found.sort();
        found.dedup();
        Ok((pos - partial.len(), found))
    }
}

impl Hinter for Completion {
    type Hint = String;
}
impl Highlighter for Completion {}
impl Validator for Completion {}
impl Helper for Completion {}

/// Where the history is kept: `$HOME/.micro_history`, none without a home.
fn history_file() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".micro_history"))
}

/// Runs the prompt until `exit`, `quit` or end of input. Blocks: call it off the runtime's
/// worker threads (e.g. in `spawn_blocking`), with a handle to the runtime.
pub fn run(commands: Commands, runtime: Handle) -> Result<(), ReadlineError> {
    let mut editor: Editor<Completion, DefaultHistory> = Editor::new()?;
    editor.set_helper(Some(Completion {
        commands: commands.clone(),
        runtime: runtime.clone(),
    }));
    let history = history_file();
    if let Some(path) = &history {
        // A missing history file is the first run, not an error.
        let _ = editor.load_history(path);
    }
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    loop {
        let line = match editor.readline(PROMPT) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e),
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line);
        if matches!(line, "exit" | "quit") {
            break;
        }
        let Some(words) = shlex::split(line) else {
            let _ = writeln!(err, "micro: unbalanced quotes in {line:?}");
            continue;
        };
        let words = std::iter::once("micro".to_string()).chain(
            words
                .into_iter()
                .map(|w| if w == "help" { "--help".to_string() } else { w }),
        );
        let command = match Cli::try_parse_from(words) {
            Ok(cli) => cli.command,
            Err(e) => {
                let text = e.render().to_string();
                let _ = write!(out, "{text}");
                continue;
            }
        };
        if matches!(command, Command::Cli) {
            let _ = writeln!(err, "micro: already in the interactive mode");
            continue;
        }
        let mut io = Io {
            out: &mut out,
            err: &mut err,
        };
        if let Err(e) = runtime.block_on(execute(&commands, command, &mut io)) {
            let _ = writeln!(err, "{}", e.to_json());
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    Ok(())
}
