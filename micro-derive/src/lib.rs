//! Procedural macros of micro.
//!
//! - `#[derive(Component)]` turns a component's (or a plugin's) config struct into option
//!   specs (flags, env vars, help from doc comments, defaults) and a `Default` impl.

extern crate proc_macro;

mod component;

use proc_macro::TokenStream;

/// Derives `micro::config::Component` and `Default` for a config struct.
///
/// Struct attributes: `#[component(section = "store")]` (required), `#[component(plugin =
/// "file")]` for the options of one plugin. Field attributes: `#[component(default = EXPR)]`
/// (a string literal becomes a `String`), `#[component(flag = "register_ttl")]` to choose the
/// flag name, `#[component(alias = "client_retries")]` for an extra flag name,
/// `#[component(nested)]` for a sub-section such as `logger`, `#[component(skip)]` for a field
/// with no flag. The doc comment of a field is its help text.
#[proc_macro_derive(Component, attributes(component))]
pub fn derive_component(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    component::expand(input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
