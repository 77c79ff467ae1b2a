//! What can go wrong while compiling `.proto` files: a kind to match on, and the file, line and
//! column of the problem when there is one.

use std::fmt;
use std::path::{Path, PathBuf};

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A `.proto` file (or one it imports) is not in any include directory.
    NotFound,
    /// A `.proto` file does not parse.
    Syntax,
    /// A `.proto` file parses but is wrong: an unknown type, a duplicate name, a bad tag...
    Invalid,
    /// A `.proto` file could not be read.
    Io,
    /// The Rust code could not be written (prost-build failed, or the output directory).
    Generate,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::Syntax => "syntax error",
            ErrorKind::Invalid => "invalid definition",
            ErrorKind::Io => "cannot read",
            ErrorKind::Generate => "cannot generate code",
        })
    }
}

/// A failure of [`compile_protos`](crate::compile_protos) or
/// [`Config::compile`](crate::Config::compile).
///
/// Its message names the file, line and column when they are known, as a compiler would:
/// `proto/greeter.proto:7:3: expected ';', but found 'message'`.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    file: Option<PathBuf>,
    line: Option<usize>,
    column: Option<usize>,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The `.proto` file at fault, as found on disk (or as named, when it was not found).
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The line of the problem in [`file`](Self::file), from 1.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The column of the problem in [`file`](Self::file), from 1.
    pub fn column(&self) -> Option<usize> {
        self.column
    }

    /// What went wrong, without the location.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// An error writing the generated code.
    pub(crate) fn generate(message: impl Into<String>, source: std::io::Error) -> Self {
        Error {
            kind: ErrorKind::Generate,
            file: None,
            line: None,
            column: None,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// A `.proto` file given to compile that is on disk neither as given nor in an include.
    pub(crate) fn missing(proto: &Path, includes: &[PathBuf]) -> Self {
        let looked: Vec<String> = includes.iter().map(|i| i.display().to_string()).collect();
        Error {
            kind: ErrorKind::NotFound,
            file: Some(proto.to_path_buf()),
            line: None,
            column: None,
            message: format!(
                "no such file, as given or under the include directories [{}]",
                looked.join(", ")
            ),
            source: None,
        }
    }

    /// An error of protox, located: `includes` turn the file's import name back into its path.
    pub(crate) fn from_protox(error: protox::Error, includes: &[PathBuf]) -> Self {
        use miette::Diagnostic;
        let kind = if error.is_file_not_found() {
            ErrorKind::NotFound
        } else if error.is_parse() {
            ErrorKind::Syntax
        } else if error.is_io() {
            ErrorKind::Io
        } else {
            ErrorKind::Invalid
        };
        let file = error.file().map(|name| on_disk(name, includes));
        let mut message = error.to_string();
        let (mut line, mut column) = (None, None);
        let mut labels: Vec<miette::LabeledSpan> =
            error.labels().map(Iterator::collect).unwrap_or_default();
        // The primary label locates the error (else the last one: "first defined here",
        // then "defined again here"); the others are named with their position.
        let main = labels
            .iter()
            .position(miette::LabeledSpan::primary)
            .unwrap_or(labels.len().saturating_sub(1));
        if main < labels.len() {
            let label = labels.remove(main);
            labels.insert(0, label);
        }
        let code = error.source_code();
        let position = |label: &miette::LabeledSpan| {
            let contents = code?.read_span(label.inner(), 0, 0).ok()?;
            Some((contents.line() + 1, contents.column() + 1))
        };
        for (index, label) in labels.iter().enumerate() {
            let Some((at_line, at_column)) = position(label) else {
                continue;
            };
            if index == 0 {
                (line, column) = (Some(at_line), Some(at_column));
            } else if let Some(text) = label.label() {
                message = format!("{message} ({text}: line {at_line}, column {at_column})");
            }
        }
        if let Some(help) = error.help() {
            message = format!("{message}; {help}");
        }
        Error {
            kind,
            file,
            line,
            column,
            message,
            source: Some(Box::new(error)),
        }
    }
}

/// The path of the file named `name` (as imported) under the first include that has it.
fn on_disk(name: &str, includes: &[PathBuf]) -> PathBuf {
    includes
        .iter()
        .map(|include| include.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
                if let Some(column) = self.column {
                    write!(f, ":{column}")?;
                }
            }
            f.write_str(": ")?;
        }
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}
