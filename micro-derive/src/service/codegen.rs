//! Writes what `#[micro::service]` generates for a checked trait. Every path is absolute
//! (`::micro::__private::...`) so the output works whatever the caller imported.

use super::{Codec, Message, Method, Service};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::Type;

/// The four endpoint shapes.
#[derive(Clone, Copy)]
enum Kind {
    Unary,
    ServerStream,
    ClientStream,
    Bidi,
}

impl Kind {
    fn of(method: &Method) -> Kind {
        match (method.request.stream, method.response.stream) {
            (false, false) => Kind::Unary,
            (false, true) => Kind::ServerStream,
            (true, false) => Kind::ClientStream,
            (true, true) => Kind::Bidi,
        }
    }
}

/// Paths and names shared by the pieces.
struct Names<'a> {
    /// `::micro::__private`.
    p: TokenStream,
    codec: Codec,
    package: Option<String>,
    service: &'a syn::Ident,
    dyn_trait: syn::Ident,
    server: syn::Ident,
    client: syn::Ident,
}

impl Names<'_> {
    /// The type as the user's code sees it: `T` or `Streaming<T>`.
    fn user_type(&self, message: &Message) -> TokenStream {
        let (p, ty) = (&self.p, &message.ty);
        if message.stream {
            quote!(#p::Streaming<#ty>)
        } else {
            quote!(#ty)
        }
    }

    /// One message on the wire: `T`, or `Proto<T>` for protobuf.
    fn wire_item(&self, ty: &Type) -> TokenStream {
        let p = &self.p;
        match self.codec {
            Codec::Json => quote!(#ty),
            Codec::Protobuf => quote!(#p::codec::Proto<#ty>),
        }
    }

    /// Turns a wire value (message or stream) into the user's type.
    fn user_value(&self, stream: bool, value: TokenStream) -> TokenStream {
        let p = &self.p;
        match (self.codec, stream) {
            (Codec::Json, _) => value,
            (Codec::Protobuf, false) => quote!((#value).0),
            (Codec::Protobuf, true) => quote!(#p::service::from_proto(#value)),
        }
    }

    /// Turns a user value (message or stream) into its wire type.
    fn wire_value(&self, stream: bool, value: TokenStream) -> TokenStream {
        let p = &self.p;
        match (self.codec, stream) {
            (Codec::Json, _) => value,
            (Codec::Protobuf, false) => quote!(#p::codec::Proto(#value)),
            (Codec::Protobuf, true) => quote!(#p::service::into_proto(#value)),
        }
    }

    /// Turns a `Result` of a wire value into a `Result` of the user's type.
    fn user_result(&self, stream: bool, result: TokenStream) -> TokenStream {
        let p = &self.p;
        match (self.codec, stream) {
            (Codec::Json, _) => result,
            (Codec::Protobuf, false) => quote!(#result.map(|message| message.0)),
            (Codec::Protobuf, true) => quote!(#result.map(#p::service::from_proto)),
        }
    }

    /// Turns a `Result` of a user value into a `Result` of its wire type.
    fn wire_result(&self, stream: bool, result: TokenStream) -> TokenStream {
        let p = &self.p;
        match (self.codec, stream) {
            (Codec::Json, _) => result,
            (Codec::Protobuf, false) => quote!(#result.map(#p::codec::Proto)),
            (Codec::Protobuf, true) => quote!(#result.map(#p::service::into_proto)),
        }
    }

    /// The registry shape of `ty` (`None` when it does not implement `JsonSchema`).
    fn shape(&self, ty: &Type) -> TokenStream {
        let p = &self.p;
        quote!({
            #[allow(unused_imports)]
            use #p::schema::{NoShape as _, ShapeOf as _};
            (&#p::schema::Probe::<#ty>::new()).shape()
        })
    }

    /// The JSON Schema text of `ty` (`None` when it does not implement `JsonSchema`).
    fn json_schema(&self, ty: &Type) -> TokenStream {
        let p = &self.p;
        quote!({
            #[allow(unused_imports)]
            use #p::schema::{NoShape as _, ShapeOf as _};
            (&#p::schema::Probe::<#ty>::new()).json_schema()
        })
    }
}

pub(super) fn generate(service: &Service, micro: &TokenStream) -> TokenStream {
    let ident = &service.ident;
    let names = Names {
        p: quote!(#micro::__private),
        codec: service.codec,
        package: service.package.clone(),
        service: ident,
        dyn_trait: format_ident!("{}Dyn", ident),
        server: format_ident!("{}Server", ident),
        client: format_ident!("{}Client", ident),
    };
    let the_trait = user_trait(service, &names);
    let dyn_trait = dyn_trait(service, &names);
    let server = server(service, &names);
    let client = client(service, &names);
    quote! {
        #the_trait
        #dyn_trait
        #server
        #client
    }
}

/// `fn name<'a>(&'a self, ctx: &'a Context, req: Req)`, the signature's head.
fn signature_head(
    method: &Method,
    names: &Names,
    ctx: &TokenStream,
    req: &TokenStream,
) -> TokenStream {
    let (p, ident) = (&names.p, &method.ident);
    let req_ty = names.user_type(&method.request);
    quote!(fn #ident<'a>(&'a self, #ctx: &'a #p::Context, #req: #req_ty))
}

/// The output type: `micro::Result<Resp>` (or a stream of `Resp`).
fn output(method: &Method, names: &Names) -> TokenStream {
    let p = &names.p;
    let resp = names.user_type(&method.response);
    quote!(#p::Result<#resp>)
}

fn user_trait(service: &Service, names: &Names) -> TokenStream {
    let Service {
        attrs, vis, ident, ..
    } = service;
    let _ = names;
    let methods = service.methods.iter().map(|method| {
        let attrs = &method.attrs;
        let (ident, ctx, req) = (&method.ident, &method.ctx_name, &method.req_name);
        let written = &method.written;
        let (ctx_ty, req_ty, output) = (&written.ctx, &written.req, &written.output);
        quote! {
            #(#attrs)*
            fn #ident<'a>(&'a self, #ctx: #ctx_ty, #req: #req_ty)
                -> impl ::core::future::Future<Output = #output> + ::core::marker::Send + 'a;
        }
    });
    quote! {
        #(#attrs)*
        #vis trait #ident: ::core::marker::Send + ::core::marker::Sync + 'static {
            #(#methods)*
        }
    }
}

fn dyn_trait(service: &Service, names: &Names) -> TokenStream {
    let Names {
        p,
        dyn_trait,
        server,
        service: ident,
        ..
    } = names;
    let vis = &service.vis;
    let (ctx, req) = (quote!(ctx), quote!(request));
    let heads: Vec<TokenStream> = service
        .methods
        .iter()
        .map(|method| {
            let head = signature_head(method, names, &ctx, &req);
            let output = output(method, names);
            quote!(#head -> #p::futures::future::BoxFuture<'a, #output>)
        })
        .collect();
    let calls = service.methods.iter().zip(&heads).map(|(method, head)| {
        let name = &method.ident;
        quote! {
            #head {
                ::std::boxed::Box::pin(<T as #ident>::#name(&*self.inner, ctx, request))
            }
        }
    });
    quote! {
        #[doc(hidden)]
        #vis trait #dyn_trait: ::core::marker::Send + ::core::marker::Sync {
            #(#heads;)*
        }

        impl<T: #ident> #dyn_trait for #server<T> {
            #(#calls)*
        }
    }
}

fn server(service: &Service, names: &Names) -> TokenStream {
    let Names {
        p,
        dyn_trait,
        server,
        service: ident,
        ..
    } = names;
    let vis = &service.vis;
    let interface = ident.to_string();
    let doc = format!(
        "Serves [`{ident}`]: one endpoint per method (`{ident}.Method`), and the implementation \
         itself for in-process calls from [`{ident}Client`]. Pass it to \
         `micro::Service::builder().handler(...)`."
    );
    let handlers = service.methods.iter().map(|method| handler(method, names));
    let descriptors = service.descriptors.as_ref().map(|path| {
        quote! {
            fn file_descriptor_sets(&self) -> ::std::vec::Vec<&'static [u8]> {
                ::std::vec![#path]
            }
        }
    });
    quote! {
        #[doc = #doc]
        #vis struct #server<T> {
            inner: ::std::sync::Arc<T>,
        }

        impl<T> #server<T> {
            /// Serves `implementation`.
            pub fn new(implementation: T) -> Self {
                Self { inner: ::std::sync::Arc::new(implementation) }
            }

            /// Serves an implementation shared with other code.
            pub fn from_arc(implementation: ::std::sync::Arc<T>) -> Self {
                Self { inner: implementation }
            }
        }

        impl<T> ::core::clone::Clone for #server<T> {
            fn clone(&self) -> Self {
                Self { inner: ::std::sync::Arc::clone(&self.inner) }
            }
        }

        impl<T> ::core::fmt::Debug for #server<T> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(::core::stringify!(#server)).finish_non_exhaustive()
            }
        }

        impl<T: #ident> #p::server::IntoHandlers for #server<T> {
            fn into_handlers(self) -> ::std::vec::Vec<#p::server::Handler> {
                ::std::vec![#(#handlers),*]
            }

            fn local_impls(&self) -> ::std::vec::Vec<#p::local::LocalImpl> {
                let implementation: ::std::sync::Arc<dyn #dyn_trait> =
                    ::std::sync::Arc::new(::core::clone::Clone::clone(self));
                ::std::vec![#p::local::LocalImpl {
                    interface: #interface,
                    implementation: ::std::sync::Arc::new(implementation),
                }]
            }

            #descriptors
        }
    }
}

/// One `Handler` of the server adapter.
fn handler(method: &Method, names: &Names) -> TokenStream {
    let Names {
        p, service: ident, ..
    } = names;
    let (name, endpoint) = (&method.ident, &method.endpoint);
    let kind = Kind::of(method);
    let constructor = match kind {
        Kind::Unary => quote!(unary),
        Kind::ServerStream => quote!(server_stream),
        Kind::ClientStream => quote!(client_stream),
        Kind::Bidi => quote!(bidi_stream),
    };
    let wire_req = names.wire_item(&method.request.ty);
    let wire_resp = names.wire_item(&method.response.ty);
    let param_ty = if method.request.stream {
        quote!(#p::Streaming<#wire_req>)
    } else {
        wire_req.clone()
    };
    let request = names.user_value(method.request.stream, quote!(request));
    let call = quote!(<T as #ident>::#name(&*inner, &ctx, #request).await);
    let result = names.wire_result(method.response.stream, call);
    let req_shape = names.shape(&method.request.ty);
    let resp_shape = names.shape(&method.response.ty);
    let req_schema = names.json_schema(&method.request.ty);
    let resp_schema = names.json_schema(&method.response.ty);
    let description = (!method.doc.is_empty()).then(|| {
        let doc = &method.doc;
        quote!(.with_metadata("description", #doc))
    });
    let idempotent = method.idempotent.then(|| quote!(.idempotent()));
    let package = names
        .package
        .as_ref()
        .map(|package| quote!(.with_metadata("package", #package)));
    quote! {{
        let inner = ::std::sync::Arc::clone(&self.inner);
        #p::server::Handler::#constructor::<#wire_req, #wire_resp, _, _>(
            #endpoint,
            move |ctx: #p::Context, request: #param_ty| {
                let inner = ::std::sync::Arc::clone(&inner);
                async move { #result }
            },
        )
        .with_shapes(#req_shape, #resp_shape)
        .with_schemas(#req_schema, #resp_schema)
        #description
        #idempotent
        #package
    }}
}

fn client(service: &Service, names: &Names) -> TokenStream {
    let Names {
        p,
        client,
        service: ident,
        ..
    } = names;
    let vis = &service.vis;
    let doc = format!(
        "Calls a service that serves [`{ident}`]. It implements `{ident}` itself: in-process \
         when the service runs in this process (shares the caller's `LocalServices`), with no \
         socket and no encoding but with the middleware and the deadline; over RPC otherwise."
    );
    let methods = service
        .methods
        .iter()
        .map(|method| client_method(method, names));
    quote! {
        #[doc = #doc]
        #[derive(::core::clone::Clone, ::core::fmt::Debug)]
        #vis struct #client {
            caller: #p::local::Caller,
            service: ::std::string::String,
            options: #p::client::CallOptions,
        }

        impl #client {
            /// A client of the service named `service` (e.g. `"greeter"`), calling through
            /// `caller` (from `micro::Service::caller()`).
            pub fn new(
                caller: #p::local::Caller,
                service: impl ::core::convert::Into<::std::string::String>,
            ) -> Self {
                Self {
                    caller,
                    service: service.into(),
                    options: ::core::default::Default::default(),
                }
            }

            /// Uses `options` for every remote call (address, retries, timeout, content type).
            pub fn with_options(mut self, options: #p::client::CallOptions) -> Self {
                self.options = options;
                self
            }
        }

        impl #ident for #client {
            #(#methods)*
        }
    }
}

fn client_method(method: &Method, names: &Names) -> TokenStream {
    let Names {
        p,
        dyn_trait,
        service: ident,
        ..
    } = names;
    let (name, endpoint) = (&method.ident, &method.endpoint);
    let interface = ident.to_string();
    let kind = Kind::of(method);
    let head = signature_head(method, names, &quote!(ctx), &quote!(request));
    let output = output(method, names);
    let in_process = quote!(<dyn #dyn_trait as #dyn_trait>::#name(&*implementation, &ctx, request));
    let local = match kind {
        Kind::Unary => quote! {
            return #p::local::call_local(
                &self.caller,
                &entry,
                &self.service,
                #endpoint,
                ctx,
                move |ctx: #p::Context| async move { #in_process.await },
            )
            .await;
        },
        Kind::ClientStream => quote! {
            let _ = entry;
            let ctx = ctx.child();
            return #p::local::until_deadline(&ctx, #in_process).await;
        },
        Kind::ServerStream | Kind::Bidi => quote! {
            let _ = entry;
            let ctx = ctx.child();
            let responses = #p::local::until_deadline(&ctx, #in_process).await?;
            return ::core::result::Result::Ok(#p::service::until_deadline(ctx, responses));
        },
    };
    let mut adjust = Vec::new();
    if method.idempotent {
        adjust.push(quote!(options.idempotent = true;));
    }
    if names.codec == Codec::Protobuf {
        adjust.push(quote! {
            if options.content_type.is_none() {
                options.content_type = ::core::option::Option::Some(
                    ::std::string::ToString::to_string(#p::codec::PROTOBUF),
                );
            }
        });
    }
    if let Some(package) = &names.package {
        adjust.push(quote! {
            if options.package.is_none() {
                options.package = ::core::option::Option::Some(
                    ::std::string::ToString::to_string(#package),
                );
            }
        });
    }
    let options_mut = (!adjust.is_empty()).then(|| quote!(mut));
    let wire_req = names.wire_item(&method.request.ty);
    let wire_resp = names.wire_item(&method.response.ty);
    let request = names.wire_value(method.request.stream, quote!(request));
    let args = quote!(client, ctx, &self.service, #endpoint);
    let remote = match kind {
        Kind::Unary => quote!(#p::client::call::<#wire_req, #wire_resp>(#args, &#request, options)),
        Kind::ServerStream => {
            quote!(#p::client::server_stream::<#wire_req, #wire_resp>(#args, &#request, options))
        }
        Kind::ClientStream => {
            quote!(#p::client::client_stream::<#wire_req, #wire_resp>(#args, #request, options))
        }
        Kind::Bidi => {
            quote!(#p::client::bidi_stream::<#wire_req, #wire_resp>(#args, #request, options))
        }
    };
    let remote = names.user_result(method.response.stream, quote!(#remote.await));
    quote! {
        #head -> impl ::core::future::Future<Output = #output> + ::core::marker::Send + 'a {
            async move {
                let local = self.caller.local.get(&self.service, #interface).and_then(|entry| {
                    let implementation = entry.get::<::std::sync::Arc<dyn #dyn_trait>>()?;
                    ::core::option::Option::Some((entry, implementation))
                });
                if let ::core::option::Option::Some((entry, implementation)) = local {
                    #local
                }
                let #options_mut options = ::core::clone::Clone::clone(&self.options);
                #(#adjust)*
                let client = self.caller.client()?;
                #remote
            }
        }
    }
}
