//! `#[micro::subscriber(topic = "...", queue = "...")]`: keeps the async handler function
//! and adds `<name>_subscription()`, the `Subscription` to pass to
//! `micro::Service::builder().subscriber(...)`.

use crate::service::{
    Codec, Errors, doc_text, is_context_ref, parse_codec, plain_name, request_message,
    result_ok_type,
};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::{FnArg, ItemFn, LitStr, ReturnType};

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let mut topic: Option<LitStr> = None;
    let mut queue: Option<LitStr> = None;
    let mut codec = Codec::Json;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("topic") {
            topic = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident("queue") {
            queue = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident("codec") {
            codec = parse_codec(&meta.value()?.parse()?)?;
        } else {
            return Err(meta.error(
                "unknown #[micro::subscriber] option: expected `topic = \"...\"`, \
                 `queue = \"...\"` or `codec = \"json\"|\"protobuf\"`",
            ));
        }
        Ok(())
    });
    if let Err(e) = syn::parse::Parser::parse2(parser, attr) {
        errors.push(e);
    }
    let item: ItemFn = syn::parse2(item).map_err(|e| {
        syn::Error::new(
            e.span(),
            "#[micro::subscriber] goes on an `async fn handler(ctx: &micro::Context, message: T) \
             -> micro::Result<()>`",
        )
    })?;
    let sig = &item.sig;
    let name = &sig.ident;
    if topic.as_ref().is_none_or(|t| t.value().is_empty()) {
        errors.push(syn::Error::new(
            topic.as_ref().map_or_else(Span::call_site, LitStr::span),
            "name the topic: #[micro::subscriber(topic = \"orders.placed\")] (add \
             `queue = \"...\"` to share messages within a queue group)",
        ));
    }
    if sig.asyncness.is_none() {
        let fn_token = &sig.fn_token;
        errors.at(
            quote!(#fn_token #name),
            format!("make it `async fn {name}`: a subscriber handles each message asynchronously"),
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.at(
            &sig.generics,
            "remove the generic parameters: a subscriber decodes one concrete message type",
        );
    }
    let mut args: Vec<&FnArg> = sig.inputs.iter().collect();
    let mut message = None;
    // An optional first argument `state: &S`: the generated function then takes the state.
    let mut state: Option<syn::Type> = None;
    if args.len() == 3
        && let Some(FnArg::Typed(first)) = args.first()
    {
        plain_name(&first.pat, &mut errors);
        match &*first.ty {
            syn::Type::Reference(r) if r.mutability.is_none() && !is_context_ref(&first.ty) => {
                state = Some((*r.elem).clone());
            }
            other => errors.at(
                other,
                "the state argument is shared: take it as `state: &S` (S is cloned into each call)",
            ),
        }
        args.remove(0);
    }
    match args.as_slice() {
        [FnArg::Typed(ctx), FnArg::Typed(msg)] => {
            plain_name(&ctx.pat, &mut errors);
            plain_name(&msg.pat, &mut errors);
            if !is_context_ref(&ctx.ty) {
                errors.at(
                    &ctx.ty,
                    "the first argument must be the message context: `ctx: &micro::Context`",
                );
            }
            match request_message(&msg.ty, &mut errors) {
                Some(m) if m.stream => errors.at(
                    &msg.ty,
                    "a subscriber gets one message at a time: take `T`, not `Streaming<T>`",
                ),
                other => message = other,
            }
        }
        _ => errors.at(
            &sig.inputs,
            format!(
                "expected `async fn {name}(ctx: &micro::Context, message: T)` (or with a first \
                 `state: &S` argument): a subscriber takes the context and one message (a free \
                 function, no `self`)"
            ),
        ),
    }
    let returns_result = match &sig.output {
        ReturnType::Type(_, ty) => result_ok_type(ty).is_some(),
        ReturnType::Default => false,
    };
    if !returns_result {
        errors.at(
            &sig.ident,
            "return `micro::Result<()>`: a subscriber reports a failure as a `micro::Error`",
        );
    }
    errors.finish()?;
    let Some(message) = message else {
        return Err(syn::Error::new(Span::call_site(), "no message type"));
    };
    let micro = crate::paths::paths().core;
    let p = quote!(#micro::__private);
    let ty = &message.ty;
    let (wire, value) = match codec {
        Codec::Json => (quote!(#ty), quote!(message)),
        Codec::Protobuf => (quote!(#p::codec::Proto<#ty>), quote!(message.0)),
    };
    let queue = match &queue {
        Some(q) => quote!(::core::option::Option::Some(::std::string::String::from(#q))),
        None => quote!(::core::option::Option::None),
    };
    let subscription = format_ident!("{}_subscription", name);
    let vis = &item.vis;
    let doc = doc_text(&item.attrs);
    let description = (!doc.is_empty()).then(|| {
        quote! {
            subscription.endpoint.metadata.insert(
                ::std::string::String::from("description"),
                ::std::string::String::from(#doc),
            );
        }
    });
    let fn_doc =
        format!("The subscription of [`{name}`], for `micro::Service::builder().subscriber(...)`.");
    let (param, handler) = match &state {
        Some(state_ty) => (
            quote!(state: #state_ty),
            quote! {
                move |ctx: #p::Context, message: #wire| {
                    let state = ::core::clone::Clone::clone(&state);
                    async move { #name(&state, &ctx, #value).await }
                }
            },
        ),
        None => (
            quote!(),
            quote!(|ctx: #p::Context, message: #wire| async move { #name(&ctx, #value).await }),
        ),
    };
    Ok(quote! {
        #item

        #[doc = #fn_doc]
        #vis fn #subscription(#param) -> #p::server::Subscription {
            let mut subscription = #p::server::Subscription::new::<#wire, _, _>(
                #topic,
                #queue,
                #handler,
            );
            subscription.endpoint.request = {
                #[allow(unused_imports)]
                use #p::schema::{NoShape as _, ShapeOf as _};
                (&#p::schema::Probe::<#ty>::new()).shape()
            };
            #description
            subscription
        }
    })
}
