//! Where generated code finds micro: the one path resolver every macro uses.
//!
//! Generated code names contract items (`config::Component`, `__private::server::Handler`,
//! ...), which micro-core has and the `micro` facade re-exports, so any of the two will do:
//!
//! - `micro-core` when the calling crate lists it (a plugin crate; `crate` inside micro-core
//!   itself). It comes first because a plugin that lists the facade only as a
//!   dev-dependency (for its tests) could not name `::micro` from its library code, and
//!   proc-macro-crate does not tell dependencies from dev-dependencies;
//! - else the facade `micro` (an application), under the name the crate gave it;
//! - else `::micro`, the best guess outside Cargo.
//!
//! `#[derive(Wire)]` builds a service with the plugins compiled into the facade, so it also
//! needs the facade itself: [`Paths::facade`].

use proc_macro_crate::{FoundCrate, crate_name};
use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::Ident;

/// The paths generated code starts from.
pub(crate) struct Paths {
    /// Contract items and `__private`: micro-core or, failing that, the facade.
    pub(crate) core: TokenStream,
    /// The facade, when the calling crate depends on it (`None`: only micro-core).
    pub(crate) facade: Option<TokenStream>,
}

/// Resolves micro's paths for the crate being compiled.
pub(crate) fn paths() -> Paths {
    let facade = match crate_name("micro") {
        Ok(FoundCrate::Name(name)) => Some(absolute(&name)),
        // The facade's own examples and doctests see its library as `micro`.
        Ok(FoundCrate::Itself) => Some(quote!(::micro)),
        Err(_) => None,
    };
    match crate_name("micro-core") {
        Ok(FoundCrate::Itself) => Paths {
            core: quote!(crate),
            facade,
        },
        Ok(FoundCrate::Name(name)) => Paths {
            core: absolute(&name),
            facade,
        },
        // No micro-core listed: an application on the facade (or, with neither listed, a
        // build outside Cargo, where `::micro` is the best guess).
        Err(_) => {
            let facade = facade.unwrap_or_else(|| quote!(::micro));
            Paths {
                core: facade.clone(),
                facade: Some(facade),
            }
        }
    }
}

fn absolute(name: &str) -> TokenStream {
    let ident = Ident::new(name, Span::call_site());
    quote!(::#ident)
}
