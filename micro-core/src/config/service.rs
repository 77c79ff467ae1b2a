//! The application half of configuration (the `service` feature): the schema of a build, the
//! layered loader (built-in defaults < file < env < flags), flags and env naming, YAML
//! files, and the application's own config with hot reload.

mod app;
mod flags;
mod loader;
mod schema;
mod yaml;

pub use app::{AppConfig, ConfigWatch};
pub use flags::{AppFlag, Flags, Naming, split_args};
pub use loader::{Loaded, Outcome, Sources, load};
pub use schema::{Schema, SectionSchema};
