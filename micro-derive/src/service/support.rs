//! Helpers shared by `#[micro::service]` and `#[micro::subscriber]`: error collection, doc
//! comments, and recognising micro's types in signatures.

use proc_macro2::TokenStream;
use quote::ToTokens;
use std::fmt::Display;
use syn::{Attribute, Expr, GenericArgument, Lit, LitStr, Pat, PathArguments, Type};

/// Errors collected while reading the input, reported together.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(first) => first.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn at(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// How messages travel.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    /// serde types, JSON on the wire.
    Json,
    /// prost messages (that also derive serde) wrapped in `Proto<T>`.
    Protobuf,
}

pub(crate) fn parse_codec(lit: &LitStr) -> syn::Result<Codec> {
    match lit.value().as_str() {
        "json" => Ok(Codec::Json),
        "protobuf" | "proto" => Ok(Codec::Protobuf),
        other => Err(syn::Error::new(
            lit.span(),
            format!(
                "unknown codec {other:?}: use \"json\" (serde types) or \"protobuf\" (prost messages)"
            ),
        )),
    }
}

/// The joined doc comment of an item.
pub(crate) fn doc_text(attrs: &[Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(syn::ExprLit {
                    lit: Lit::Str(s), ..
                }) => Some(s.value().trim().to_string()),
                _ => None,
            },
            _ => None,
        })
        .filter(|line| !line.is_empty())
        .collect();
    lines.join(" ")
}

/// A message type: `T`, or `T` of `Streaming<T>` for a stream.
#[derive(Clone)]
pub(crate) struct Message {
    pub(crate) ty: Type,
    pub(crate) stream: bool,
}

/// Whether `path` names micro's item `name`: `name` alone (imported) or `...micro::name`.
/// `extra` lists more accepted parent modules (`result` for `std::result::Result`).
fn is_micro_item(path: &syn::Path, name: &str, extra: &[&str]) -> bool {
    let segments: Vec<&syn::PathSegment> = path.segments.iter().collect();
    match segments.as_slice() {
        [.., last] if last.ident != name => false,
        [_] => true,
        [.., parent, _] => {
            let parent = parent.ident.to_string();
            ["micro", "micro_core", "__private"].contains(&parent.as_str())
                || extra.contains(&parent.as_str())
        }
        [] => false,
    }
}

/// `T` when `ty` is `Streaming<T>` (`micro::Streaming<T>` or an imported `Streaming<T>`).
pub(crate) fn streaming_item(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    if path.qself.is_some() || !is_micro_item(&path.path, "Streaming", &[]) {
        return None;
    }
    let last = path.path.segments.last()?;
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.iter().collect::<Vec<_>>().as_slice() {
        [GenericArgument::Type(item)] => Some(item),
        _ => None,
    }
}

/// Whether `ty` is `&Context` (any path ending in `Context`).
pub(crate) fn is_context_ref(ty: &Type) -> bool {
    let Type::Reference(reference) = ty else {
        return false;
    };
    if reference.mutability.is_some() {
        return false;
    }
    let Type::Path(path) = &*reference.elem else {
        return false;
    };
    path.qself.is_none()
        && is_micro_item(&path.path, "Context", &[])
        && path.path.segments.iter().all(|s| s.arguments.is_none())
}

/// The `T` of `micro::Result<T>` or `Result<T, micro::Error>`.
pub(crate) fn result_ok_type(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    if path.qself.is_some() || !is_micro_item(&path.path, "Result", &["result"]) {
        return None;
    }
    let last = path.path.segments.last()?;
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let types: Vec<&Type> = args
        .args
        .iter()
        .filter_map(|a| match a {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        })
        .collect();
    match types.as_slice() {
        [ok] if args.args.len() == 1 => Some(ok),
        [ok, Type::Path(err)]
            if args.args.len() == 2
                && err.qself.is_none()
                && is_micro_item(&err.path, "Error", &[]) =>
        {
            Some(ok)
        }
        _ => None,
    }
}

/// The argument's name, when it is a plain name (or `_`).
pub(crate) fn plain_name(pat: &Pat, errors: &mut Errors) -> Option<TokenStream> {
    match pat {
        Pat::Ident(p) if p.by_ref.is_none() && p.mutability.is_none() && p.subpat.is_none() => {
            Some(p.ident.to_token_stream())
        }
        Pat::Wild(w) => Some(w.to_token_stream()),
        _ => {
            errors.at(
                pat,
                "use a plain argument name such as `req`: patterns (tuples, structs, `mut`, `ref`) \
                 are not allowed here; destructure inside the implementation",
            );
            None
        }
    }
}

/// The request argument's message (rejecting references and `impl Trait`).
pub(crate) fn request_message(ty: &Type, errors: &mut Errors) -> Option<Message> {
    let message = match streaming_item(ty) {
        Some(item) => Message {
            ty: item.clone(),
            stream: true,
        },
        None => Message {
            ty: ty.clone(),
            stream: false,
        },
    };
    match &message.ty {
        _ if is_context_ref(ty) => errors.at(
            ty,
            "the call context comes before the request: `ctx: &micro::Context, req: Request`",
        ),
        Type::Reference(_) => errors.at(
            ty,
            "the request must be an owned type such as `HelloRequest`, not a reference: it is \
             decoded from the wire or handed to another task",
        ),
        Type::ImplTrait(_) => errors.at(
            ty,
            "the request must be a concrete type: `impl Trait` cannot be encoded on the wire",
        ),
        _ => return Some(message),
    }
    None
}
