//! `#[derive(Wire)]`: an application declares the components it uses as typed fields; the
//! derive builds only those (and what they need) and hands them out typed. With
//! `#[wire(config = "configs/app.yaml")]` the YAML is read at compile time: a plugin it names
//! whose Cargo feature is off is a compile error naming the file, line, key and feature.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use std::path::{Path, PathBuf};
use syn::{Data, DeriveInput, Fields, LitStr, Type, spanned::Spanned};

/// What a config's `section.plugin: name` needs: nothing (built in, or unknown: an
/// application's own plugins are checked at start instead), a Cargo feature of `micro`, or a
/// plugin micro has not written yet.
enum Needs {
    Feature(&'static str),
    NotYetAvailable,
}

fn needs(section: &str, plugin: &str) -> Option<Needs> {
    let known = micro_catalog::find(section, plugin)?;
    match known.status {
        micro_catalog::Status::Planned => Some(Needs::NotYetAvailable),
        _ if known.feature.is_empty() => None,
        _ => Some(Needs::Feature(known.feature)),
    }
}

/// `(section, plugin, line)` for every `plugin:` key of a component section (and of its
/// `logger:` sub-section).
fn plugins_in(yaml: &serde_yaml::Value, text: &str) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    let Some(map) = yaml.as_mapping() else {
        return out;
    };
    for (section, body) in map {
        let Some(section) = section.as_str() else {
            continue;
        };
        let mut push = |path: String, value: &serde_yaml::Value| {
            if let Some(plugin) = value.get("plugin").and_then(|p| p.as_str()) {
                out.push((path, plugin.to_string(), line_of(text, section, plugin)));
            }
        };
        push(section.to_string(), body);
        if let Some(logger) = body.get("logger") {
            push(format!("{section}.logger"), logger);
        }
    }
    out
}

/// The 1-based line of `plugin: NAME` after the line opening `section:` (best effort).
fn line_of(text: &str, section: &str, plugin: &str) -> usize {
    let mut in_section = false;
    for (i, line) in text.lines().enumerate() {
        if !line.starts_with(' ') && !line.starts_with('\t') {
            in_section = line.trim_end().strip_suffix(':') == Some(section);
        }
        let trimmed = line.trim();
        if in_section
            && trimmed.starts_with("plugin:")
            && trimmed
                .trim_start_matches("plugin:")
                .trim()
                .trim_matches(['"', '\''])
                == plugin
        {
            return i + 1;
        }
    }
    0
}

/// Finds the config file: relative to the crate root, else to the source file (as
/// `include_str!` does).
fn locate(lit: &LitStr) -> Option<PathBuf> {
    let given = PathBuf::from(lit.value());
    if given.is_absolute() {
        return Some(given);
    }
    let from_crate = std::env::var_os("CARGO_MANIFEST_DIR").map(|d| Path::new(&d).join(&given));
    let from_source = proc_macro::Span::call_site()
        .local_file()
        .and_then(|f| f.parent().map(|d| d.join(&given)));
    [from_crate, from_source]
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
}

fn config_checks(lit: &LitStr, facade: &TokenStream) -> syn::Result<(TokenStream, TokenStream)> {
    let shown = lit.value();
    let path = locate(lit).ok_or_else(|| {
        syn::Error::new(
            lit.span(),
            format!("cannot find config file {shown:?}: give a path relative to the crate root (Cargo.toml) or to this source file"),
        )
    })?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| syn::Error::new(lit.span(), format!("cannot read {}: {e}", path.display())))?;
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text)
        .map_err(|e| syn::Error::new(lit.span(), format!("{shown} is not valid YAML: {e}")))?;
    let mut checks = Vec::new();
    for (section, plugin, line) in plugins_in(&yaml, &text) {
        let feature = match needs(section.split('.').next_back().unwrap_or(""), &plugin) {
            None => continue,
            Some(Needs::Feature(feature)) => feature,
            Some(Needs::NotYetAvailable) => {
                return Err(syn::Error::new(
                    lit.span(),
                    format!(
                        "{shown}:{line}: `{section}.plugin: {plugin}` is not available yet: micro plans this plugin but no release has it; choose a compiled plugin"
                    ),
                ));
            }
        };
        let message = format!(
            "{shown}:{line}: `{section}.plugin: {plugin}` needs the Cargo feature \"{feature}\" of micro, which is off: add it to the features of the micro dependency, or choose a compiled plugin"
        );
        checks.push(quote_spanned! {lit.span()=>
            const _: () = ::core::assert!(#facade::__private::feature_enabled(#feature), #message);
        });
    }
    let absolute = path.display().to_string();
    let runtime_path = if Path::new(&shown).is_relative()
        && std::env::var_os("CARGO_MANIFEST_DIR")
            .is_some_and(|d| Path::new(&d).join(&shown) == path)
    {
        shown
    } else {
        absolute.clone()
    };
    Ok((
        quote! {
            #(#checks)*
            // Rebuild when the file changes.
            const _: &[u8] = ::core::include_bytes!(#absolute);
        },
        quote! { .config_file(#runtime_path) },
    ))
}

/// The section a field's type names, from the last path segment (`micro::Client`), looking
/// through `Option<..>`.
fn section_of(ty: &Type) -> Option<(&'static str, bool)> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident == "Option" {
        let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
            return None;
        };
        let Some(syn::GenericArgument::Type(inner)) = args.args.first() else {
            return None;
        };
        return section_of(inner).map(|(s, _)| (s, true));
    }
    micro_catalog::ComponentKind::BUILT
        .iter()
        .copied()
        .find(|kind| kind.handle().is_some_and(|handle| last.ident == handle))
        .map(|kind| (kind.section(), false))
}

pub fn expand(input: DeriveInput) -> syn::Result<TokenStream> {
    let name = &input.ident;
    // Wire builds a service with the plugins compiled into the `micro` facade.
    let Some(facade) = crate::paths::paths().facade else {
        return Err(syn::Error::new(
            name.span(),
            "#[derive(Wire)] builds a service with the plugins of the `micro` facade: add \
             `micro` to [dependencies] (micro-core alone has no plugins to wire)",
        ));
    };
    let mut config: Option<LitStr> = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("wire")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("config") {
                config = Some(meta.value()?.parse()?);
                Ok(())
            } else {
                Err(meta.error("unknown wire attribute: expected config = \"path/to/config.yaml\""))
            }
        })?;
    }
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(
            input.span(),
            "#[derive(Wire)] works on structs with named fields",
        ));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new(
            input.span(),
            "#[derive(Wire)] works on structs with named fields",
        ));
    };
    let mut errors: Option<syn::Error> = None;
    let mut sections = Vec::new();
    let mut inits = Vec::new();
    for field in &fields.named {
        let Some(ident) = &field.ident else { continue };
        match section_of(&field.ty) {
            Some((section, optional)) => {
                if !sections.contains(&section) {
                    sections.push(section);
                }
                let field_name = ident.to_string();
                let section_ident = syn::Ident::new(section, ident.span());
                let get = quote!(service.components().#section_ident.clone());
                inits.push(if optional {
                    quote!(#ident: #get)
                } else {
                    let message = format!("{field_name}: the {section} component is disabled; enable {section} to run this app");
                    quote!(#ident: #get.ok_or_else(|| #facade::Error::bad_request("go.micro.wire", #message))?)
                });
            }
            None => {
                let err = syn::Error::new(
                    field.ty.span(),
                    "a Wire field must be a component handle: micro::Client, micro::Broker, micro::Registry, micro::Store, micro::Events, micro::Auth, micro::Transport, micro::Selector, micro::Server or micro::SyncHandle (optionally in Option<..>)",
                );
                match &mut errors {
                    Some(e) => e.combine(err),
                    None => errors = Some(err),
                }
            }
        }
    }
    if let Some(err) = errors {
        return Err(err);
    }
    let (checks, config_call) = match &config {
        Some(lit) => config_checks(lit, &facade)?,
        None => (quote!(), quote!()),
    };
    Ok(quote! {
        #checks
        impl #name {
            /// The components this app declares (their requirements are added when built).
            pub const COMPONENTS: &'static [&'static str] = &[#(#sections),*];

            /// A service builder that builds only these components.
            pub fn builder() -> #facade::ServiceBuilder {
                #facade::Service::builder()
                    .only_components(Self::COMPONENTS)
                    #config_call
            }

            /// The typed components of a service built from [`Self::builder`].
            pub fn wire(service: &#facade::Service) -> #facade::Result<Self> {
                ::core::result::Result::Ok(Self { #(#inits,)* })
            }
        }
    })
}
