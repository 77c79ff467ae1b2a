//! `#[micro::service]`: a trait goes in; the trait (usable across tasks), a hidden
//! dyn-compatible twin, the server adapter `<Trait>Server` and the typed client
//! `<Trait>Client` come out. This file reads and checks the trait; `service/codegen.rs`
//! writes the output.

mod codegen;
mod support;

pub(crate) use support::{
    Codec, Errors, Message, doc_text, is_context_ref, parse_codec, plain_name, request_message,
    result_ok_type, streaming_item,
};

use proc_macro2::{Span, TokenStream};
use quote::quote;
use std::collections::HashMap;
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, Ident, LitStr, ReturnType, Signature, TraitItem, TraitItemFn};

/// One endpoint.
pub(crate) struct Method {
    pub(crate) ident: Ident,
    /// Attributes kept on the trait method (docs, lints).
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) doc: String,
    /// `Trait.Method`.
    pub(crate) endpoint: String,
    pub(crate) idempotent: bool,
    pub(crate) ctx_name: TokenStream,
    pub(crate) req_name: TokenStream,
    pub(crate) request: Message,
    pub(crate) response: Message,
    /// The signature's types as the author wrote them, kept in the rewritten trait so the
    /// author's imports (`Context`, `Result`, `Streaming`) stay in use.
    pub(crate) written: Written,
}

/// Types of a method signature as written (the context's lifetime set to `'a`).
pub(crate) struct Written {
    pub(crate) ctx: syn::Type,
    pub(crate) req: syn::Type,
    pub(crate) output: syn::Type,
}

/// `&Context` as `&'a Context`.
fn with_lifetime_a(ty: &syn::Type) -> syn::Type {
    let mut ty = ty.clone();
    if let syn::Type::Reference(r) = &mut ty {
        r.lifetime = Some(syn::Lifetime::new("'a", proc_macro2::Span::call_site()));
    }
    ty
}

/// The trait, read and checked.
pub(crate) struct Service {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: syn::Visibility,
    pub(crate) ident: Ident,
    pub(crate) codec: Codec,
    /// The protobuf package (`greeter.v1`), when the trait has one.
    pub(crate) package: Option<String>,
    /// The constant holding the encoded `FileDescriptorSet` (`descriptors = PATH`).
    pub(crate) descriptors: Option<syn::Path>,
    pub(crate) methods: Vec<Method>,
}

/// Inherent and derived methods of the generated client that a trait method would shadow or
/// make ambiguous.
const RESERVED: &[(&str, &str)] = &[
    ("new", "the client's constructor `{client}::new`"),
    ("with_options", "the client's `{client}::with_options`"),
    ("clone", "`Clone::clone` of `{client}`"),
];

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let mut codec = Codec::Json;
    let mut package = None;
    let mut descriptors = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("codec") {
            codec = parse_codec(&meta.value()?.parse()?)?;
            Ok(())
        } else if meta.path.is_ident("package") {
            package = Some(parse_package(&meta.value()?.parse()?)?);
            Ok(())
        } else if meta.path.is_ident("descriptors") {
            descriptors = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            Err(meta.error(
                "unknown #[micro::service] option: expected `codec = \"json\"`, `codec = \"protobuf\"`, `package = \"my.pkg.v1\"` or `descriptors = CONST`",
            ))
        }
    });
    if let Err(e) = syn::parse::Parser::parse2(parser, attr) {
        errors.push(e);
    }
    let item: syn::Item = syn::parse2(item)?;
    let syn::Item::Trait(item) = item else {
        return Err(syn::Error::new_spanned(
            item,
            "#[micro::service] goes on a trait: its `async fn` methods become the endpoints",
        ));
    };
    let mut service = read_trait(item, codec, &mut errors);
    service.package = package;
    service.descriptors = descriptors;
    errors.finish()?;
    Ok(codegen::generate(&service, &crate::paths::paths().core))
}

fn read_trait(item: syn::ItemTrait, mut codec: Codec, errors: &mut Errors) -> Service {
    let name = item.ident.to_string();
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        errors.at(
            &item.generics,
            "a #[micro::service] trait cannot be generic: its endpoints have concrete request \
             and response types",
        );
    }
    if !item.supertraits.is_empty() {
        errors.at(
            &item.supertraits,
            format!(
                "remove the supertraits: `{name}Client` implements `{name}` and could not \
                 implement them (the macro adds `Send + Sync + 'static` itself)"
            ),
        );
    }
    if let Some(unsafety) = &item.unsafety {
        errors.at(unsafety, "a #[micro::service] trait cannot be `unsafe`");
    }
    if let Some(auto) = &item.auto_token {
        errors.at(auto, "a #[micro::service] trait cannot be an auto trait");
    }
    let mut attrs = Vec::new();
    for attr in item.attrs {
        if !attr.path().is_ident("micro") {
            attrs.push(attr);
            continue;
        }
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("protobuf") {
                codec = Codec::Protobuf;
            } else if meta.path.is_ident("json") {
                codec = Codec::Json;
            } else if meta.path.is_ident("codec") {
                codec = parse_codec(&meta.value()?.parse()?)?;
            } else {
                return Err(meta.error(
                    "unknown #[micro] option on a service trait: expected `protobuf`, `json` or \
                     `codec = \"...\"`",
                ));
            }
            Ok(())
        });
        if let Err(e) = result {
            errors.push(e);
        }
    }
    let mut methods: Vec<Method> = Vec::new();
    let mut endpoints: HashMap<String, Ident> = HashMap::new();
    for trait_item in item.items {
        let TraitItem::Fn(f) = trait_item else {
            errors.at(
                &trait_item,
                "only `async fn` methods are allowed in a #[micro::service] trait: each one is \
                 an endpoint (constants, types and macros are not)",
            );
            continue;
        };
        let Some((method, name_span)) = read_method(f, &name, errors) else {
            continue;
        };
        if let Some(first) = endpoints.get(&method.endpoint) {
            errors.push(syn::Error::new(
                name_span,
                format!(
                    "endpoint `{}` is already served by `{first}`: give one of them another name \
                     with #[micro(name = \"...\")]",
                    method.endpoint
                ),
            ));
            continue;
        }
        endpoints.insert(method.endpoint.clone(), method.ident.clone());
        methods.push(method);
    }
    Service {
        attrs,
        vis: item.vis,
        ident: item.ident,
        codec,
        package: None,
        descriptors: None,
        methods,
    }
}

/// A protobuf package name: dot-separated identifiers (`greeter.v1`).
fn parse_package(lit: &LitStr) -> syn::Result<String> {
    let value = lit.value();
    let ident = |part: &str| {
        part.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if value.split('.').all(ident) {
        Ok(value)
    } else {
        Err(syn::Error::new(
            lit.span(),
            "a package is dot-separated identifiers, as in a .proto file: \"greeter.v1\"",
        ))
    }
}

/// `count_up` → `CountUp`.
fn camel_case(ident: &Ident) -> String {
    let name = ident.to_string();
    name.trim_start_matches("r#")
        .split('_')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => String::new(),
            }
        })
        .collect()
}

/// Method attributes: `#[micro(name = "...", idempotent)]`; the rest is kept.
struct MethodOptions {
    kept: Vec<Attribute>,
    rename: Option<LitStr>,
    idempotent: bool,
}

fn method_options(attrs: Vec<Attribute>, errors: &mut Errors) -> MethodOptions {
    let mut out = MethodOptions {
        kept: Vec::new(),
        rename: None,
        idempotent: false,
    };
    for attr in attrs {
        if !attr.path().is_ident("micro") {
            out.kept.push(attr);
            continue;
        }
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                let lit: LitStr = meta.value()?.parse()?;
                let value = lit.value();
                let valid = value
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_')
                    && value.chars().all(|c| c.is_alphanumeric() || c == '_');
                if !valid {
                    return Err(syn::Error::new(
                        lit.span(),
                        "an endpoint name is a method name such as \"Count\" (letters, digits, \
                         `_`); the trait name is added in front: `Greeter.Count`",
                    ));
                }
                out.rename = Some(lit);
            } else if meta.path.is_ident("idempotent") {
                out.idempotent = true;
            } else {
                return Err(meta.error(
                    "unknown #[micro] option on a service method: expected `name = \"...\"` or \
                     `idempotent`",
                ));
            }
            Ok(())
        });
        if let Err(e) = result {
            errors.push(e);
        }
    }
    out
}

/// Checks the signature's qualifiers: `async`, and nothing else.
fn check_qualifiers(sig: &Signature, errors: &mut Errors) {
    let fn_name = {
        let (fn_token, ident) = (&sig.fn_token, &sig.ident);
        quote!(#fn_token #ident)
    };
    if sig.asyncness.is_none() {
        errors.at(
            &fn_name,
            format!(
                "make it `async fn {}`: every method of a #[micro::service] trait is an async \
                 endpoint",
                sig.ident
            ),
        );
    }
    if let Some(constness) = &sig.constness {
        errors.at(constness, "a service method cannot be `const`");
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.at(unsafety, "a service method cannot be `unsafe`");
    }
    if let Some(abi) = &sig.abi {
        errors.at(abi, "a service method cannot have an ABI");
    }
    if let Some(variadic) = &sig.variadic {
        errors.at(variadic, "a service method cannot be variadic");
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.at(
            &sig.generics,
            "remove the generic parameters: an endpoint has concrete request and response types \
             (they are encoded on the wire)",
        );
    }
}

/// `&self`, and nothing else, as the receiver.
fn check_receiver(sig: &Signature, errors: &mut Errors) -> bool {
    match sig.inputs.first() {
        Some(FnArg::Receiver(receiver)) => {
            let message = match (&receiver.reference, &receiver.mutability) {
                (None, _) => {
                    "take `&self`, not `self`: the server shares one implementation \
                              between concurrent calls"
                }
                (Some(_), Some(_)) => {
                    "take `&self`, not `&mut self`: the server calls the \
                                       implementation concurrently (use interior mutability)"
                }
                (Some((_, Some(_))), None) => "take plain `&self` (no lifetime)",
                (Some((_, None)), None) if receiver.colon_token.is_some() => "take plain `&self`",
                _ => return true,
            };
            errors.at(receiver, message);
            true
        }
        _ => {
            let at = sig
                .inputs
                .first()
                .map(|a| a.span())
                .unwrap_or_else(|| sig.paren_token.span.join());
            errors.push(syn::Error::new(
                at,
                format!(
                    "add `&self` as the first argument: `async fn {}(&self, ctx: &micro::Context, \
                     req: Request)`",
                    sig.ident
                ),
            ));
            false
        }
    }
}

fn read_method(f: TraitItemFn, trait_name: &str, errors: &mut Errors) -> Option<(Method, Span)> {
    let options = method_options(f.attrs, errors);
    let sig = &f.sig;
    let client = format!("{trait_name}Client");
    if let Some(body) = &f.default {
        errors.at(
            body,
            format!(
                "remove the default body: implement the method in `impl {trait_name} for ...` \
                 (`{client}` implements every method itself)"
            ),
        );
    }
    check_qualifiers(sig, errors);
    let method_name = sig.ident.to_string();
    if let Some((_, what)) = RESERVED.iter().find(|(n, _)| *n == method_name) {
        errors.at(
            &sig.ident,
            format!(
                "a method named `{method_name}` clashes with {}: rename the method (keep the \
                 endpoint name with #[micro(name = \"{}\")])",
                what.replace("{client}", &client),
                camel_case(&sig.ident)
            ),
        );
    }
    let has_receiver = check_receiver(sig, errors);
    let typed: Vec<&syn::PatType> = sig
        .inputs
        .iter()
        .filter_map(|a| match a {
            FnArg::Typed(t) => Some(t),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let mut args = None;
    match typed.as_slice() {
        [ctx, req] => {
            let ctx_name = plain_name(&ctx.pat, errors);
            if !is_context_ref(&ctx.ty) {
                errors.at(
                    &ctx.ty,
                    "the second argument must be the call context: `ctx: &micro::Context`",
                );
            }
            let req_name = plain_name(&req.pat, errors);
            let request = request_message(&req.ty, errors);
            if let (Some(c), Some(r), Some(m)) = (ctx_name, req_name, request) {
                args = Some((c, r, m, with_lifetime_a(&ctx.ty), (*req.ty).clone()));
            }
        }
        _ if has_receiver => errors.at(
            &sig.inputs,
            format!(
                "expected `(&self, ctx: &micro::Context, req: Request)`: an endpoint takes the \
                 call context and one request (a struct, or `micro::Streaming<T>` for a stream \
                 of requests); found {} argument(s) after `&self`",
                typed.len()
            ),
        ),
        _ => {}
    }
    let response = match &sig.output {
        ReturnType::Default => {
            errors.at(
                &sig.ident,
                format!(
                    "add a return type: `async fn {method_name}(...) -> micro::Result<Response>` \
                     (or `micro::Result<micro::Streaming<Response>>` for a stream)"
                ),
            );
            None
        }
        ReturnType::Type(_, ty) => match result_ok_type(ty) {
            Some(ok) => Some(match streaming_item(ok) {
                Some(item) => Message {
                    ty: item.clone(),
                    stream: true,
                },
                None => Message {
                    ty: ok.clone(),
                    stream: false,
                },
            }),
            None => {
                errors.at(
                    ty,
                    "the return type must be `micro::Result<T>` or `Result<T, micro::Error>` \
                     (errors travel to the caller as micro errors)",
                );
                None
            }
        },
    };
    let (ctx_name, req_name, request, ctx_ty, req_ty) = args?;
    let output = match &sig.output {
        ReturnType::Type(_, ty) => (**ty).clone(),
        ReturnType::Default => return None,
    };
    let name_span = options
        .rename
        .as_ref()
        .map_or_else(|| sig.ident.span(), LitStr::span);
    let endpoint = format!(
        "{trait_name}.{}",
        options
            .rename
            .as_ref()
            .map_or_else(|| camel_case(&sig.ident), LitStr::value)
    );
    let method = Method {
        ident: sig.ident.clone(),
        doc: doc_text(&options.kept),
        attrs: options.kept,
        endpoint,
        idempotent: options.idempotent,
        ctx_name,
        req_name,
        request,
        response: response?,
        written: Written {
            ctx: ctx_ty,
            req: req_ty,
            output,
        },
    };
    Some((method, name_span))
}
