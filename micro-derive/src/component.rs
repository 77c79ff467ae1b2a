//! `#[derive(Component)]`.

use crate::service::doc_text;
use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Expr, Fields, Lit, LitStr, spanned::Spanned};

#[derive(Default)]
struct FieldAttrs {
    default: Option<Expr>,
    flag: Option<LitStr>,
    aliases: Vec<LitStr>,
    nested: bool,
    skip: bool,
}

fn field_attrs(field: &syn::Field, errors: &mut Vec<syn::Error>) -> FieldAttrs {
    let mut out = FieldAttrs::default();
    for attr in field
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("component"))
    {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("default") {
                out.default = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("flag") {
                out.flag = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("alias") {
                out.aliases.push(meta.value()?.parse()?);
            } else if meta.path.is_ident("nested") {
                out.nested = true;
            } else if meta.path.is_ident("skip") {
                out.skip = true;
            } else {
                return Err(meta.error(
                    "unknown component attribute: expected default, flag, alias, nested or skip",
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

pub fn expand(input: DeriveInput) -> syn::Result<TokenStream> {
    let name = &input.ident;
    let core = crate::paths::paths().core;
    let mut section: Option<LitStr> = None;
    let mut plugin: Option<LitStr> = None;
    let mut errors: Vec<syn::Error> = Vec::new();
    for attr in input
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("component"))
    {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("section") {
                section = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("plugin") {
                plugin = Some(meta.value()?.parse()?);
            } else {
                return Err(meta.error("unknown component attribute: expected section or plugin"));
            }
            Ok(())
        });
        if let Err(e) = result {
            errors.push(e);
        }
    }
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(
            input.span(),
            "#[derive(Component)] works on structs with named fields",
        ));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new(
            input.span(),
            "#[derive(Component)] works on structs with named fields",
        ));
    };
    let Some(section) = section else {
        return Err(syn::Error::new(
            input.ident.span(),
            "missing #[component(section = \"...\")]: name the config section this struct reads",
        ));
    };

    let mut specs = Vec::new();
    let mut defaults = Vec::new();
    for field in &fields.named {
        let attrs = field_attrs(field, &mut errors);
        let Some(ident) = &field.ident else { continue };
        let key = ident.to_string().trim_start_matches("r#").to_string();
        let ty = &field.ty;
        let help = doc_text(&field.attrs);
        let mut default = attrs.default.as_ref();
        // A literal passed through macro_rules arrives wrapped in an invisible group.
        while let Some(Expr::Group(g)) = default {
            default = Some(&g.expr);
        }
        defaults.push(match default {
            Some(Expr::Lit(syn::ExprLit {
                lit: Lit::Str(s), ..
            })) => quote!(#ident: ::core::convert::Into::into(#s)),
            Some(expr) => quote!(#ident: #expr),
            None => quote!(#ident: ::core::default::Default::default()),
        });
        if attrs.skip {
            continue;
        }
        if attrs.nested {
            specs.push(quote! {
                for spec in <#ty as #core::config::NestedOptions>::nested_options() {
                    options.push(spec.nested_in(#key));
                }
            });
            continue;
        }
        let flag = match &attrs.flag {
            Some(f) => quote!(::core::option::Option::Some(#f)),
            None => quote!(::core::option::Option::None),
        };
        let aliases = &attrs.aliases;
        specs.push(quote! {
            options.push(#core::config::OptionSpec::new(
                #key,
                <#ty as #core::config::OptionType>::KIND,
                #help,
                #flag,
                &[#(#aliases),*],
            ));
        });
    }
    if let Some(first) = errors.into_iter().reduce(|mut a, b| {
        a.combine(b);
        a
    }) {
        return Err(first);
    }
    let plugin = match plugin {
        Some(p) => quote!(::core::option::Option::Some(#p)),
        None => quote!(::core::option::Option::None),
    };
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics #core::config::Component for #name #ty_generics #where_clause {
            const SECTION: &'static str = #section;
            const PLUGIN: ::core::option::Option<&'static str> = #plugin;
            fn options() -> ::std::vec::Vec<#core::config::OptionSpec> {
                let mut options = ::std::vec::Vec::new();
                #(#specs)*
                options
            }
        }
        impl #impl_generics ::core::default::Default for #name #ty_generics #where_clause {
            fn default() -> Self {
                Self { #(#defaults,)* }
            }
        }
    })
}
