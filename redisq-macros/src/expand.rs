//! Code generation: turns a function with a checked signature into a task.
//!
//! For `fn send_email(to: String) -> R { BODY }` this emits
//!
//! - `fn __redisq_run_send_email(to: String) -> R { BODY }`, private and hidden,
//!   with the original attributes, parameters and body, so the body keeps its scope;
//! - `fn send_email(to: String) -> ::redisq::Result<::redisq::TaskId>`, with the
//!   original visibility and docs, which enqueues the call on the global backend
//!   (with `fallback = "inline"`: `-> ::redisq::Result<::redisq::Dispatch<R>>`, running
//!   the body inline when Redis is unreachable);
//! - `mod send_email`, with the original visibility, holding `NAME`, `QUEUE`, the
//!   hidden `DEF` registered through `inventory`, `run` (the body, inline),
//!   `enqueue`, `enqueue_to`, `enqueue_many`, `enqueue_or_run`, `enqueue_in` and
//!   `enqueue_at` (on an explicit backend).
//!
//! When the attribute or the signature is wrong, the errors are emitted next to
//! the unchanged function, so the user sees them and nothing that follows from them.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, Error, Ident, ItemFn, ReturnType, Type};

use crate::args::FifoArgs;
use crate::signature::{check_batch, check_signature, not_a_function, Param, RESERVED_PREFIX};
use crate::types::{classify_output, reparent, result_ok_type, vec_item, Output};

/// Expands `#[fifo(args)] item`. Never fails: errors become `compile_error!`.
pub(crate) fn fifo(args: TokenStream, item: TokenStream) -> TokenStream {
    let func = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let error = not_a_function(&item);
            return quote!(#error #item);
        }
    };

    let args = syn::parse2::<FifoArgs>(args);
    let params = check_signature(&func.sig);
    let params = match (&args, params) {
        (Ok(args), Ok(params)) if args.batch.is_some() => {
            check_batch(&func.sig, &params).map(|()| params)
        }
        (_, params) => params,
    };
    match (args, params) {
        (Ok(args), Ok(params)) => expand(&args, &func, &params),
        (args, params) => {
            let mut errors: Option<Error> = None;
            for error in [args.err(), params.err()].into_iter().flatten() {
                match &mut errors {
                    Some(all) => all.combine(error),
                    None => errors = Some(error),
                }
            }
            let errors = errors.map(|e| e.to_compile_error());
            quote!(#errors #item)
        }
    }
}

/// Whether `attr` is documentation (`///`, `//!` or `#[doc = ...]`/`#[doc(...)]`).
fn is_doc(attr: &Attribute) -> bool {
    attr.path().is_ident("doc")
}

/// Whether `attr` must also apply to the generated enqueuing function and module:
/// `cfg` (so they exist exactly when the body does) and `allow` (so a lint the
/// user silenced on the function stays silenced on what replaces it).
fn is_shared(attr: &Attribute) -> bool {
    attr.path().is_ident("cfg") || attr.path().is_ident("allow")
}

/// The generated code for a valid attribute on a valid function.
fn expand(args: &FifoArgs, func: &ItemFn, params: &[Param<'_>]) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    let ident = &sig.ident;
    let run_ident = format_ident!("{}run_{}", RESERVED_PREFIX, ident.unraw());
    let queue = &args.queue;

    let docs = attrs.iter().filter(|a| is_doc(a));
    let other_attrs = attrs.iter().filter(|a| !is_doc(a));
    let shared_attrs: Vec<&Attribute> = attrs.iter().filter(|a| is_shared(a)).collect();

    // The hidden function: the original signature (parameters with their `mut`,
    // return type) and body under a reserved name.
    let mut run_sig = sig.clone();
    run_sig.ident = run_ident.clone();
    // The lints allowed are those the user cannot act on: owned arguments and no
    // `const` are required by #[fifo]; the enqueuing function and `enqueue` take
    // the same arguments (plus a backend).
    let hidden = quote! {
        #(#other_attrs)*
        #[doc(hidden)]
        #[allow(
            non_snake_case,
            clippy::too_many_arguments,
            clippy::needless_pass_by_value,
            clippy::missing_const_for_fn
        )]
        #run_sig #block
    };

    // Parameter lists: in the function's module, and inside the generated module.
    let idents: Vec<&Ident> = params.iter().map(|p| p.ident).collect();
    let outer_params = params.iter().map(|Param { ident, ty }| quote!(#ident: #ty));
    let inner_types: Vec<Type> = params.iter().map(|p| reparent(p.ty)).collect();
    let inner_params: Vec<TokenStream> = idents
        .iter()
        .zip(&inner_types)
        .map(|(ident, ty)| quote!(#ident: #ty))
        .collect();
    let names = params.iter().map(|p| p.ident.unraw().to_string());
    let args_tuple = if params.is_empty() {
        quote!(&[(); 0])
    } else {
        quote!(&(#(#idents,)*))
    };
    // The same, by reference, for calls that keep the arguments to run them inline.
    let args_ref_tuple = if params.is_empty() {
        quote!(&[(); 0])
    } else {
        quote!(&(#(&#idents,)*))
    };
    let inner_output = match &sig.output {
        ReturnType::Default => quote!(),
        ReturnType::Type(arrow, ty) => {
            let ty = reparent(ty);
            quote!(#arrow #ty)
        }
    };
    // What the body returns, as a type: in the function's module and inside the
    // generated module.
    let (outer_ret, inner_ret) = match &sig.output {
        ReturnType::Default => (quote!(()), quote!(())),
        ReturnType::Type(_, ty) => {
            let inner = reparent(ty);
            (quote!(#ty), quote!(#inner))
        }
    };
    // `backend`, `delay`, `at`, `queue`, `items`, `item` unless a task parameter already
    // has that name.
    let own_param = |name: &str| {
        if idents.iter().any(|i| *i == name) {
            format_ident!("{}{}", RESERVED_PREFIX, name)
        } else {
            format_ident!("{}", name)
        }
    };
    let backend = own_param("backend");
    let delay = own_param("delay");
    let at = own_param("at");
    let queue_param = own_param("queue");
    let items = own_param("items");
    let item = own_param("item");

    // What one enqueued call takes: the arguments, or for a batch task one item. Then the
    // argument tuple that is serialized (by value, and by reference for calls that keep
    // the arguments to run them inline), and what `enqueue_many` takes per call (the
    // argument types as a tuple, except that one argument is its own type and none is
    // `()`) with how it becomes the tuple.
    let batch_item = args
        .batch
        .as_ref()
        .and_then(|_| inner_types.first())
        .and_then(vec_item)
        .cloned();
    let (call_params, call_args, item_ty, item_to_args) = match &batch_item {
        Some(item_ty) => (
            vec![quote!(#item: #item_ty)],
            quote!(&(#item,)),
            quote!(#item_ty),
            quote!(.map(|__redisq_item| (__redisq_item,))),
        ),
        None => {
            let (item_ty, item_to_args) = match inner_types.as_slice() {
                [] => (quote!(()), quote!(.map(|()| [(); 0]))),
                [ty] => (quote!(#ty), quote!(.map(|__redisq_item| (__redisq_item,)))),
                types => (quote!((#(#types,)*)), quote!()),
            };
            (
                inner_params.clone(),
                args_tuple.clone(),
                item_ty,
                item_to_args,
            )
        }
    };
    let default_options = quote!(&::core::default::Default::default());
    let call_idents: Vec<&Ident> = match &batch_item {
        Some(_) => vec![&item],
        None => idents.clone(),
    };

    // Intra-doc links to the module's functions, unless the name is a raw
    // identifier, which a link cannot spell.
    let (run_link, enqueue_link) = if ident.to_string().starts_with("r#") {
        (format!("`{ident}::run`"), format!("`{ident}::enqueue`"))
    } else {
        (format!("[`{ident}::run`]"), format!("[`{ident}::enqueue`]"))
    };
    let what = if batch_item.is_some() {
        "each item as its own task"
    } else {
        "the call"
    };
    let enqueue_doc = if args.fallback_inline {
        format!(
            " Calling this function enqueues {what} on queue `{queue}` through the global \
             backend (see `redisq::init`) and returns `Dispatch::Queued` with the id(s). \
             When Redis is unreachable (`redisq::Error::Unavailable`), it runs the body inline \
             in this thread instead and returns `Dispatch::RanInline` with what the body \
             returned (`#[fifo(fallback = \"inline\")]`); other errors are returned. Use \
             {run_link} to run the body inline, {enqueue_link} for an explicit backend.",
            queue = queue.value(),
        )
    } else {
        format!(
            " Calling this function does not run it: it enqueues {what} on queue `{queue}` \
             through the global backend (see `redisq::init`) and returns the id(s). Use \
             {run_link} to run the body inline, {enqueue_link} for an explicit backend.",
            queue = queue.value(),
        )
    };
    // The plain call: enqueue on the global backend, and with `fallback = "inline"`
    // run the body here when Redis is unreachable.
    let plain_call = match (&batch_item, args.fallback_inline) {
        (None, false) => quote! {
            #vis fn #ident(#(#outer_params),*) -> ::redisq::Result<::redisq::TaskId> {
                ::redisq::__private::submit(
                    &::redisq::__private::global()?,
                    &#ident::DEF,
                    #default_options,
                    #args_tuple,
                )
            }
        },
        (None, true) => quote! {
            #vis fn #ident(#(#outer_params),*)
                -> ::redisq::Result<::redisq::Dispatch<#outer_ret>>
            {
                let __redisq_b = ::redisq::__private::global()?;
                let __redisq_enqueued = ::redisq::__private::submit(
                    &__redisq_b,
                    &#ident::DEF,
                    #default_options,
                    #args_ref_tuple,
                );
                ::redisq::__private::or_run_inline(&#ident::DEF, &__redisq_b, __redisq_enqueued, move || {
                    #run_ident(#(#idents),*)
                })
            }
        },
        (Some(_), false) => {
            let items_ident = idents[0];
            quote! {
                #vis fn #ident(#(#outer_params),*)
                    -> ::redisq::Result<::std::vec::Vec<::redisq::TaskId>>
                {
                    ::redisq::__private::submit_many(
                        &::redisq::__private::global()?,
                        &#ident::DEF,
                        #default_options,
                        ::core::iter::IntoIterator::into_iter(#items_ident)
                            .map(|__redisq_item| (__redisq_item,)),
                    )
                }
            }
        }
        (Some(_), true) => {
            let items_ident = idents[0];
            quote! {
                #vis fn #ident(#(#outer_params),*)
                    -> ::redisq::Result<
                        ::redisq::Dispatch<#outer_ret, ::std::vec::Vec<::redisq::TaskId>>,
                    >
                {
                    let __redisq_b = ::redisq::__private::global()?;
                    let __redisq_enqueued = ::redisq::__private::submit_many(
                        &__redisq_b,
                        &#ident::DEF,
                        #default_options,
                        #items_ident.iter().map(|__redisq_item| (__redisq_item,)),
                    );
                    ::redisq::__private::or_run_inline(&#ident::DEF, &__redisq_b, __redisq_enqueued, move || {
                        #run_ident(#items_ident)
                    })
                }
            }
        }
    };
    // `enqueue_or_run`: for a batch task, of many items at once.
    let enqueue_or_run = match &batch_item {
        None => quote! {
            /// Enqueues a call and returns `Dispatch::Queued` with its id; when Redis is
            /// unreachable (`redisq::Error::Unavailable`), runs the body inline in this
            /// thread instead, logs a warning and returns `Dispatch::RanInline` with what it
            /// returned.
            ///
            /// # Errors
            /// Any other error of `enqueue`, for which the body does not run.
            #[allow(clippy::too_many_arguments)]
            pub fn enqueue_or_run(
                #backend: &::redisq::RedisQueueBackend,
                #(#inner_params),*
            ) -> ::redisq::Result<::redisq::Dispatch<#inner_ret>> {
                let __redisq_enqueued = ::redisq::__private::submit(
                    #backend,
                    &DEF,
                    #default_options,
                    #args_ref_tuple,
                );
                ::redisq::__private::or_run_inline(&DEF, #backend, __redisq_enqueued, move || {
                    self::run(#(#idents),*)
                })
            }
        },
        Some(_) => {
            let items_ident = idents[0];
            let items_ty = &inner_types[0];
            quote! {
                /// Enqueues each item as its own task, in one round trip, and returns
                /// `Dispatch::Queued` with their ids; when Redis is unreachable
                /// (`redisq::Error::Unavailable`), runs the body inline with all the items
                /// instead, logs a warning and returns `Dispatch::RanInline` with what it
                /// returned.
                ///
                /// # Errors
                /// Any other error of `enqueue_many`, for which the body does not run.
                pub fn enqueue_or_run(
                    #backend: &::redisq::RedisQueueBackend,
                    #items_ident: #items_ty,
                ) -> ::redisq::Result<
                    ::redisq::Dispatch<#inner_ret, ::std::vec::Vec<::redisq::TaskId>>,
                > {
                    let __redisq_enqueued = ::redisq::__private::submit_many(
                        #backend,
                        &DEF,
                        #default_options,
                        #items_ident.iter().map(|__redisq_item| (__redisq_item,)),
                    );
                    ::redisq::__private::or_run_inline(&DEF, #backend, __redisq_enqueued, move || {
                        self::run(#items_ident)
                    })
                }
            }
        }
    };
    let separator = (attrs.iter().any(is_doc)).then(|| quote!(#[doc = ""]));
    let module_doc = format!(
        " The task `{}`: its wire name, queue, and the ways to run or enqueue it.",
        ident.unraw()
    );
    let name = match &args.name {
        Some(name) => name.to_token_stream(),
        None => quote!(::core::module_path!()),
    };
    let workers = args.workers.as_ref().map(|n| quote!(.workers(#n)));
    let retries = args.retries.as_ref().map(|n| quote!(.retries(#n)));
    let priority = args
        .priority
        .as_ref()
        .map(|p| quote!(.priority(::redisq::Priority::#p)));
    let batch = args.batch.as_ref().map(|n| quote!(.batch(#n)));
    let no_store = (!args.store_result).then(|| quote!(.no_store()));
    // What a success stores, for the typed `result`: `T` of `Result<T, E>`, the value, `()`.
    let success_ty = match (classify_output(&sig.output), &sig.output) {
        (Output::Unit, _) | (_, ReturnType::Default) => quote!(()),
        (Output::Result, ReturnType::Type(_, ty)) => match result_ok_type(ty) {
            Some(ok) => {
                let ok = reparent(ok);
                quote!(#ok)
            }
            None => quote!(::redisq::__private::serde_json::Value),
        },
        (Output::Value, ReturnType::Type(_, ty)) => {
            let ty = reparent(ty);
            quote!(#ty)
        }
    };

    // Decoding the arguments in `__redisq_call`: each `let` is spanned at the
    // parameter's type, so a type that cannot be deserialized is reported there.
    let decode = if params.is_empty() {
        quote!(let _ = __redisq_args.list(DEF.params)?;)
    } else {
        let lets = idents.iter().zip(&inner_types).map(
            |(ident, ty)| quote_spanned!(ty.span()=> let #ident: #ty = __redisq_args.next()?;),
        );
        quote! {
            let mut __redisq_args = __redisq_args.list(DEF.params)?;
            #(#lets)*
        }
    };
    // `self::run`, as a parameter named `run` would shadow a bare `run`.
    let outcome = match classify_output(&sig.output) {
        Output::Unit => quote! {
            self::run(#(#idents),*);
            ::redisq::__private::outcome_unit()
        },
        Output::Result => {
            quote!(::redisq::__private::outcome_from_result(self::run(#(#idents),*)))
        }
        Output::Value => {
            quote!(::redisq::__private::outcome_from_value(&self::run(#(#idents),*)))
        }
    };

    quote! {
        #hidden

        #(#docs)*
        #separator
        #[doc = #enqueue_doc]
        #(#shared_attrs)*
        #[allow(dead_code, clippy::too_many_arguments)]
        #plain_call

        #[doc = #module_doc]
        #(#shared_attrs)*
        #[allow(dead_code)]
        #vis mod #ident {
            #[allow(unused_imports)]
            use super::*;

            /// The task's wire name.
            pub const NAME: &str = #name;

            /// The queue this task is sent to by default.
            pub const QUEUE: &str = #queue;

            /// The task's registration, submitted to the registry at start-up.
            #[doc(hidden)]
            pub const DEF: ::redisq::__private::TaskDef =
                ::redisq::__private::TaskDef::new(NAME, QUEUE, &[#(#names),*], __redisq_call)
                    #workers #retries #priority #batch #no_store;

            ::redisq::__private::inventory::submit! { DEF }

            /// Runs the original body inline, in this thread, without Redis.
            #[allow(clippy::too_many_arguments)]
            pub fn run(#(#inner_params),*) #inner_output {
                super::#run_ident(#(#idents),*)
            }

            /// Enqueues a call on an explicit backend and returns its id.
            #[allow(clippy::too_many_arguments)]
            pub fn enqueue(
                #backend: &::redisq::RedisQueueBackend,
                #(#call_params),*
            ) -> ::redisq::Result<::redisq::TaskId> {
                ::redisq::__private::submit(#backend, &DEF, #default_options, #call_args)
            }

            /// Enqueues a call on `queue`, named at run time, instead of the task's own
            /// queue, and returns its id. A worker serving that queue runs it.
            ///
            /// # Errors
            /// `redisq::Error::Config` when `queue` is empty; otherwise as `enqueue`.
            #[allow(clippy::too_many_arguments)]
            pub fn enqueue_to(
                #backend: &::redisq::RedisQueueBackend,
                #queue_param: &str,
                #(#call_params),*
            ) -> ::redisq::Result<::redisq::TaskId> {
                with(#backend).queue(#queue_param).enqueue(#(#call_idents),*)
            }

            /// Enqueues one call per item (the arguments as a tuple; one argument alone;
            /// `()` for none; for a batch task, one item) on the task's queue, in one round
            /// trip, and returns their ids in item order; the queue holds them in that
            /// order too. No items: no round trip, no ids.
            ///
            /// # Errors
            /// When an item's arguments cannot be serialized, nothing is enqueued. When
            /// Redis fails part-way, some leading calls may have been enqueued.
            pub fn enqueue_many(
                #backend: &::redisq::RedisQueueBackend,
                #items: impl ::core::iter::IntoIterator<Item = #item_ty>,
            ) -> ::redisq::Result<::std::vec::Vec<::redisq::TaskId>> {
                with(#backend).enqueue_many(#items)
            }

            #enqueue_or_run

            /// Enqueues a call to run once `delay` has passed, and returns its id.
            #[allow(clippy::too_many_arguments)]
            pub fn enqueue_in(
                #backend: &::redisq::RedisQueueBackend,
                #delay: ::core::time::Duration,
                #(#call_params),*
            ) -> ::redisq::Result<::redisq::TaskId> {
                with(#backend).delay(#delay).enqueue(#(#call_idents),*)
            }

            /// Enqueues a call to run at `at` (at once if it is past), and returns its id.
            #[allow(clippy::too_many_arguments)]
            pub fn enqueue_at(
                #backend: &::redisq::RedisQueueBackend,
                #at: ::std::time::SystemTime,
                #(#call_params),*
            ) -> ::redisq::Result<::redisq::TaskId> {
                with(#backend).at(#at).enqueue(#(#call_idents),*)
            }

            /// The result of task `id` once it is done, deserialized into what the function
            /// returns on success; `None` while it is not done, or when its record has
            /// expired or is not kept (`store_result = false`).
            ///
            /// # Errors
            /// `redisq::Error::TaskFailed` when the task is dead, with its last error;
            /// `redisq::Error::Result` when the stored result does not deserialize.
            pub fn result(
                #backend: &::redisq::RedisQueueBackend,
                id: &::redisq::TaskId,
            ) -> ::redisq::Result<::core::option::Option<#success_ty>> {
                ::redisq::__private::typed_result(#backend, id)
            }

            /// Options for the next call on `backend`: its priority lane, its queue, when it
            /// is due. `with(&backend).priority(redisq::Priority::High).enqueue(..)`.
            pub fn with(#backend: &::redisq::RedisQueueBackend) -> With<'_> {
                With {
                    backend: #backend,
                    options: ::core::default::Default::default(),
                }
            }

            /// A call being set up by [`with`].
            #[must_use = "nothing is enqueued until `enqueue` or `enqueue_many` is called"]
            pub struct With<'a> {
                backend: &'a ::redisq::RedisQueueBackend,
                options: ::redisq::__private::Options<'a>,
            }

            impl<'a> With<'a> {
                /// Waits in this lane of the queue instead of the task's default.
                pub fn priority(mut self, priority: ::redisq::Priority) -> Self {
                    self.options.priority = ::core::option::Option::Some(priority);
                    self
                }

                /// Goes to `queue`, named at run time, instead of the task's own.
                pub fn queue(mut self, queue: &'a str) -> Self {
                    self.options.queue = ::core::option::Option::Some(queue);
                    self
                }

                /// Runs once `delay` has passed (in the normal lane when due).
                pub fn delay(mut self, delay: ::core::time::Duration) -> Self {
                    self.options.at =
                        ::core::option::Option::Some(::std::time::SystemTime::now() + delay);
                    self
                }

                /// Runs at `at`, at once if it is past (in the normal lane when due).
                pub fn at(mut self, at: ::std::time::SystemTime) -> Self {
                    self.options.at = ::core::option::Option::Some(at);
                    self
                }

                /// Enqueues the call and returns its id.
                #[allow(clippy::too_many_arguments)]
                pub fn enqueue(self, #(#call_params),*) -> ::redisq::Result<::redisq::TaskId> {
                    ::redisq::__private::submit(self.backend, &DEF, &self.options, #call_args)
                }

                /// Enqueues one call per item in one round trip; see [`enqueue_many`].
                pub fn enqueue_many(
                    self,
                    #items: impl ::core::iter::IntoIterator<Item = #item_ty>,
                ) -> ::redisq::Result<::std::vec::Vec<::redisq::TaskId>> {
                    ::redisq::__private::submit_many(
                        self.backend,
                        &DEF,
                        &self.options,
                        ::core::iter::IntoIterator::into_iter(#items) #item_to_args,
                    )
                }
            }

            fn __redisq_call(
                __redisq_args: ::redisq::__private::Args<'_>,
            ) -> ::redisq::__private::CallResult {
                #decode
                #outcome
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fifo;
    use quote::quote;

    #[test]
    fn errors_keep_the_original_item() {
        let item = quote!(
            fn f(x: u8) {}
        );
        let out = fifo(quote!(queue = ""), item.clone()).to_string();
        assert!(out.contains("compile_error"));
        assert!(out.ends_with(&item.to_string()));
        let out = fifo(
            quote!(queue = "q"),
            quote!(
                struct S;
            ),
        )
        .to_string();
        assert!(out.contains("can only be applied to a free function"));
        assert!(out.ends_with(
            &quote!(
                struct S;
            )
            .to_string()
        ));
    }
}
