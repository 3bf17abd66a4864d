//! Code generation: the items of a task, one function per generated item, over
//! its [`Plan`].
//!
//! For `fn send_email(to: String) -> R { BODY }` this emits
//!
//! - `fn __redisq_run_send_email(to: String) -> R { BODY }`, private and hidden,
//!   with the original attributes, parameters and body, so the body keeps its scope
//!   ([`hidden_fn`]);
//! - `fn send_email(to: String) -> ::redisq::Result<::redisq::TaskId>`, with the
//!   original visibility and docs, which enqueues the call on the global backend
//!   (with `fallback = "inline"`: `-> ::redisq::Result<::redisq::Dispatch<R>>`, running
//!   the body inline when Redis is unreachable) ([`plain_fn`]);
//! - `mod send_email`, with the original visibility ([`module`]), holding `NAME`,
//!   `QUEUE` ([`consts`]), the hidden `DEF` registered through `inventory`
//!   ([`registration`]), `run` (the body, inline), `enqueue`, `enqueue_to`,
//!   `enqueue_many`, `enqueue_or_run`, `enqueue_in`, `enqueue_at` (on an explicit
//!   backend), `result`, the builder `with(..)` ([`with_builder`],
//!   [`with_methods`]) and `__redisq_call`, which a worker calls ([`call`]).
//!
//! [`fifo`] is the pipeline: it parses the attribute, checks the signature, makes
//! the plan and assembles the items ([`task`]). When the attribute or the
//! signature is wrong, it hands the errors to [`fallback`], which
//! emits them with stand-ins for these items, so the user sees them and nothing
//! that follows from them. With the plan's `Bodies::Unreachable`, the functions
//! here keep their signatures and give up their bodies for that.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ItemFn, Signature};

use crate::args::FifoArgs;
use crate::fallback;
use crate::plan::{Batch, Bodies, Plan};
use crate::signature::{check_batch, check_key, check_signature, not_a_function, Param};
use crate::types::Output;

/// Expands `#[fifo(args)] item`. Never fails: errors become `compile_error!`s,
/// emitted with the [`fallback`] items.
pub(crate) fn fifo(args: TokenStream, item: TokenStream) -> TokenStream {
    let func = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let error = not_a_function(&item);
            return quote!(#error #item);
        }
    };

    let parsed = syn::parse2::<FifoArgs>(args.clone());
    let params = check_signature(&func.sig);
    let params = match (&parsed, params) {
        (Ok(parsed), Ok(params)) => check_args_against(parsed, &func.sig, &params).map(|()| params),
        (_, params) => params,
    };
    match (parsed, params) {
        (Ok(parsed), Ok(params)) => task(&Plan::new(&parsed, &func, &params, Bodies::Real)),
        (Ok(parsed), Err(errors)) => fallback::expand(&errors, Some(parsed), &args, &func, &item),
        (Err(errors), Ok(_)) => fallback::expand(&errors, None, &args, &func, &item),
        (Err(mut errors), Err(more)) => {
            errors.combine(more);
            fallback::expand(&errors, None, &args, &func, &item)
        }
    }
}

/// The rules between the attribute and the signature: a batch task takes one `Vec`
/// (its `key` names a field of the item, checked at run time); a plain task's
/// `key` names one of its parameters.
fn check_args_against(args: &FifoArgs, sig: &Signature, params: &[Param<'_>]) -> syn::Result<()> {
    match (&args.batch, &args.key) {
        (Some(_), _) => check_batch(sig, params),
        (None, Some(key)) => check_key(key, params),
        (None, None) => Ok(()),
    }
}

/// The generated items of a valid task: the hidden body, the enqueuing function
/// and the module.
fn task(plan: &Plan<'_>) -> TokenStream {
    let hidden = hidden_fn(plan);
    let plain = plain_fn(plan);
    let module = module(plan);
    quote! {
        #hidden
        #plain
        #module
    }
}

/// `&Default::default()`: the options of a call made without `with(..)`.
fn default_options() -> TokenStream {
    quote!(&::core::default::Default::default())
}

/// The hidden function: the original attributes (but the docs), signature
/// (parameters with their `mut`, return type) and body, under a reserved name.
fn hidden_fn(plan: &Plan<'_>) -> TokenStream {
    let Plan {
        attrs,
        run_sig,
        block,
        ..
    } = plan;
    let other = &attrs.other;
    // The lints allowed are those the user cannot act on: owned arguments and no
    // `const` are required by #[fifo]; the enqueuing function and `enqueue` take
    // the same arguments (plus a backend).
    quote! {
        #(#other)*
        #[doc(hidden)]
        #[allow(
            non_snake_case,
            clippy::too_many_arguments,
            clippy::needless_pass_by_value,
            clippy::missing_const_for_fn
        )]
        #run_sig #block
    }
}

/// A generated function's body: `real`, or `::core::unreachable!()` in a fallback.
fn body(plan: &Plan<'_>, real: TokenStream) -> TokenStream {
    match plan.bodies {
        Bodies::Real => quote!({ #real }),
        Bodies::Unreachable => quote!({ ::core::unreachable!() }),
    }
}

/// The plain call `send_email(..)`, with the function's docs and visibility: it
/// enqueues on the global backend, and with `fallback = "inline"` runs the body
/// here when Redis is unreachable.
pub(crate) fn plain_fn(plan: &Plan<'_>) -> TokenStream {
    let Plan {
        vis,
        ident,
        attrs,
        docs,
        params,
        ..
    } = plan;
    let (user_docs, separator, enqueue_doc, shared) =
        (&attrs.docs, &docs.separator, &docs.enqueue, &attrs.shared);
    let (ret, real) = match (&plan.batch, plan.fallback_inline) {
        (None, false) => plain_enqueue(plan),
        (None, true) => plain_enqueue_or_run(plan),
        (Some(batch), false) => plain_enqueue_batch(plan, batch),
        (Some(batch), true) => plain_enqueue_or_run_batch(plan, batch),
    };
    let body = body(plan, real);
    let (outer_params, g) = (&params.outer, &plan.outer_generics);
    let (generics, where_clause) = (&g.params, &g.where_clause);
    quote! {
        #(#user_docs)*
        #separator
        #[doc = #enqueue_doc]
        #(#shared)*
        #[allow(dead_code, clippy::too_many_arguments)]
        #vis fn #ident #generics (#(#outer_params),*) -> #ret #where_clause #body
    }
}

/// The return type and body of the plain call of a task: enqueues the call.
fn plain_enqueue(plan: &Plan<'_>) -> (TokenStream, TokenStream) {
    let (ident, args_tuple, default_options) = (plan.ident, &plan.params.tuple, default_options());
    let ret = quote!(::redisq::Result<::redisq::TaskId>);
    let body = quote! {
        ::redisq::__private::submit(
            &::redisq::__private::global()?,
            &#ident::DEF,
            #default_options,
            #args_tuple,
        )
    };
    (ret, body)
}

/// The return type and body of the plain call of a task with `fallback = "inline"`:
/// enqueues the call, or runs it inline.
fn plain_enqueue_or_run(plan: &Plan<'_>) -> (TokenStream, TokenStream) {
    let Plan {
        ident,
        run_ident,
        params,
        ret,
        ..
    } = plan;
    let (idents, outer_ret) = (&params.idents, &ret.outer);
    let (args_ref_tuple, default_options) = (&params.ref_tuple, default_options());
    let ret = quote!(::redisq::Result<::redisq::Dispatch<#outer_ret>>);
    let body = quote! {
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
    };
    (ret, body)
}

/// The return type and body of the plain call of a batch task: enqueues each item
/// as its own task.
fn plain_enqueue_batch(plan: &Plan<'_>, batch: &Batch) -> (TokenStream, TokenStream) {
    let (ident, items, default_options) = (plan.ident, &batch.items, default_options());
    let ret = quote!(::redisq::Result<::std::vec::Vec<::redisq::TaskId>>);
    let body = quote! {
        ::redisq::__private::submit_many(
            &::redisq::__private::global()?,
            &#ident::DEF,
            #default_options,
            ::core::iter::IntoIterator::into_iter(#items)
                .map(|__redisq_item| (__redisq_item,)),
        )
    };
    (ret, body)
}

/// The return type and body of the plain call of a batch task with
/// `fallback = "inline"`: enqueues each item as its own task, or runs the body
/// inline with all of them.
fn plain_enqueue_or_run_batch(plan: &Plan<'_>, batch: &Batch) -> (TokenStream, TokenStream) {
    let Plan {
        ident,
        run_ident,
        ret,
        ..
    } = plan;
    let (outer_ret, items, default_options) = (&ret.outer, &batch.items, default_options());
    let ret = quote! {
        ::redisq::Result<
            ::redisq::Dispatch<#outer_ret, ::std::vec::Vec<::redisq::TaskId>>,
        >
    };
    let body = quote! {
        let __redisq_b = ::redisq::__private::global()?;
        let __redisq_enqueued = ::redisq::__private::submit_many(
            &__redisq_b,
            &#ident::DEF,
            #default_options,
            #items.iter().map(|__redisq_item| (__redisq_item,)),
        );
        ::redisq::__private::or_run_inline(&#ident::DEF, &__redisq_b, __redisq_enqueued, move || {
            #run_ident(#items)
        })
    };
    (ret, body)
}

/// The module named after the task, with the function's visibility, holding its
/// constants, its registration and the ways to run or enqueue it.
pub(crate) fn module(plan: &Plan<'_>) -> TokenStream {
    let Plan {
        vis,
        ident,
        attrs,
        docs,
        ..
    } = plan;
    let (module_doc, shared) = (&docs.module, &attrs.shared);
    let items = [
        consts(plan),
        registration(plan),
        run(plan),
        enqueue(plan),
        enqueue_to(plan),
        enqueue_many(plan),
        match &plan.batch {
            None => enqueue_or_run(plan),
            Some(batch) => enqueue_or_run_batch(plan, batch),
        },
        enqueue_in(plan),
        enqueue_at(plan),
        result(plan),
        with_builder(plan),
        with_methods(plan),
        call(plan),
    ];
    quote! {
        #[doc = #module_doc]
        #(#shared)*
        #[allow(dead_code)]
        #vis mod #ident {
            #[allow(unused_imports)]
            use super::*;

            #(#items)*
        }
    }
}

/// `NAME` and `QUEUE`.
fn consts(plan: &Plan<'_>) -> TokenStream {
    let (name, queue) = (&plan.def.name, plan.def.queue);
    quote! {
        /// The task's wire name.
        pub const NAME: &str = #name;

        /// The queue this task is sent to by default.
        pub const QUEUE: &str = #queue;
    }
}

/// `DEF`, the task's registration, and its submission to the registry (not in a
/// fallback, whose task does not exist).
fn registration(plan: &Plan<'_>) -> TokenStream {
    let (names, options) = (&plan.params.names, &plan.def.options);
    let submit = (plan.bodies == Bodies::Real)
        .then(|| quote!(::redisq::__private::inventory::submit! { DEF }));
    quote! {
        /// The task's registration, submitted to the registry at start-up.
        #[doc(hidden)]
        pub const DEF: ::redisq::__private::TaskDef =
            ::redisq::__private::TaskDef::new(NAME, QUEUE, &[#(#names),*], __redisq_call)
                #options;

        #submit
    }
}

/// `run`: the body, inline.
fn run(plan: &Plan<'_>) -> TokenStream {
    let Plan {
        run_ident,
        params,
        ret,
        inner_generics: g,
        ..
    } = plan;
    let (inner_params, idents, inner_output) = (&params.inner, &params.idents, &ret.inner_output);
    let (generics, where_clause) = (&g.params, &g.where_clause);
    let body = body(plan, quote!(super::#run_ident(#(#idents),*)));
    quote! {
        /// Runs the original body inline, in this thread, without Redis.
        #[allow(clippy::too_many_arguments)]
        pub fn run #generics (#(#inner_params),*) #inner_output #where_clause #body
    }
}

/// `enqueue`: on an explicit backend.
fn enqueue(plan: &Plan<'_>) -> TokenStream {
    let Plan {
        own,
        call,
        inner_generics: g,
        ..
    } = plan;
    let (backend, call_params, call_args) = (&own.backend, &call.params, &call.args);
    let (generics, where_clause) = (&g.params, &g.where_clause);
    let default_options = default_options();
    let body = body(
        plan,
        quote!(::redisq::__private::submit(#backend, &DEF, #default_options, #call_args)),
    );
    quote! {
        /// Enqueues a call on an explicit backend and returns its id.
        #[allow(clippy::too_many_arguments)]
        pub fn enqueue #generics (
            #backend: &::redisq::RedisQueueBackend,
            #(#call_params),*
        ) -> ::redisq::Result<::redisq::TaskId> #where_clause #body
    }
}

/// `enqueue_to`: on a queue named at run time.
fn enqueue_to(plan: &Plan<'_>) -> TokenStream {
    let Plan {
        own,
        call,
        inner_generics: g,
        ..
    } = plan;
    let (backend, queue) = (&own.backend, &own.queue);
    let (call_params, call_idents) = (&call.params, &call.idents);
    let (generics, where_clause) = (&g.params, &g.where_clause);
    let body = body(
        plan,
        quote!(with(#backend).queue(#queue).enqueue(#(#call_idents),*)),
    );
    quote! {
        /// Enqueues a call on `queue`, named at run time, instead of the task's own
        /// queue, and returns its id. A worker serving that queue runs it.
        ///
        /// # Errors
        /// `redisq::Error::InvalidArgument` when `queue` is empty; otherwise as `enqueue`.
        #[allow(clippy::too_many_arguments)]
        pub fn enqueue_to #generics (
            #backend: &::redisq::RedisQueueBackend,
            #queue: &str,
            #(#call_params),*
        ) -> ::redisq::Result<::redisq::TaskId> #where_clause #body
    }
}

/// `enqueue_many`: one call per item, a round trip per thousand.
fn enqueue_many(plan: &Plan<'_>) -> TokenStream {
    let Plan {
        own,
        call,
        inner_generics: g,
        ..
    } = plan;
    let (backend, items, item_ty) = (&own.backend, &own.items, &call.item_ty);
    let (generics, where_clause) = (&g.params, &g.where_clause);
    let body = body(plan, quote!(with(#backend).enqueue_many(#items)));
    quote! {
        /// Enqueues one call per item (the arguments as a tuple; one argument alone;
        /// `()` for none; for a batch task, one item) on the task's queue, in one round
        /// trip, and returns their ids in item order; the queue holds them in that
        /// order too. No items: no round trip, no ids.
        ///
        /// # Errors
        /// When an item's arguments cannot be serialized, nothing is enqueued. When
        /// Redis fails part-way, some leading calls may have been enqueued.
        pub fn enqueue_many #generics (
            #backend: &::redisq::RedisQueueBackend,
            #items: impl ::core::iter::IntoIterator<Item = #item_ty>,
        ) -> ::redisq::Result<::std::vec::Vec<::redisq::TaskId>> #where_clause #body
    }
}

/// `enqueue_or_run`: enqueues, or runs the body inline when Redis is unreachable.
fn enqueue_or_run(plan: &Plan<'_>) -> TokenStream {
    let Plan {
        own,
        params,
        ret,
        inner_generics: g,
        ..
    } = plan;
    let (backend, inner_params, inner_ret) = (&own.backend, &params.inner, &ret.inner);
    let (args_ref_tuple, idents, default_options) =
        (&params.ref_tuple, &params.idents, default_options());
    let (generics, where_clause) = (&g.params, &g.where_clause);
    let body = body(
        plan,
        quote! {
            let __redisq_enqueued = ::redisq::__private::submit(
                #backend,
                &DEF,
                #default_options,
                #args_ref_tuple,
            );
            ::redisq::__private::or_run_inline(&DEF, #backend, __redisq_enqueued, move || {
                self::run(#(#idents),*)
            })
        },
    );
    quote! {
        /// Enqueues a call and returns `Dispatch::Queued` with its id; when Redis is
        /// unreachable (`redisq::Error::Unavailable`), runs the body inline in this
        /// thread instead, logs a warning and returns `Dispatch::RanInline` with what it
        /// returned.
        ///
        /// # Errors
        /// Any other error of `enqueue`, for which the body does not run.
        #[allow(clippy::too_many_arguments)]
        pub fn enqueue_or_run #generics (
            #backend: &::redisq::RedisQueueBackend,
            #(#inner_params),*
        ) -> ::redisq::Result<::redisq::Dispatch<#inner_ret>> #where_clause #body
    }
}

/// `enqueue_or_run` of a batch task: enqueues the items, or runs the body inline
/// with all of them when Redis is unreachable.
fn enqueue_or_run_batch(plan: &Plan<'_>, batch: &Batch) -> TokenStream {
    let Plan {
        own,
        ret,
        inner_generics: g,
        ..
    } = plan;
    let (backend, inner_ret, default_options) = (&own.backend, &ret.inner, default_options());
    let (items, items_ty) = (&batch.items, &batch.items_ty);
    let (generics, where_clause) = (&g.params, &g.where_clause);
    let body = body(
        plan,
        quote! {
            let __redisq_enqueued = ::redisq::__private::submit_many(
                #backend,
                &DEF,
                #default_options,
                #items.iter().map(|__redisq_item| (__redisq_item,)),
            );
            ::redisq::__private::or_run_inline(&DEF, #backend, __redisq_enqueued, move || {
                self::run(#items)
            })
        },
    );
    quote! {
        /// Enqueues each item as its own task (a round trip per thousand), and returns
        /// `Dispatch::Queued` with their ids; when Redis is unreachable
        /// (`redisq::Error::Unavailable`), runs the body inline with all the items
        /// instead, logs a warning and returns `Dispatch::RanInline` with what it
        /// returned.
        ///
        /// # Errors
        /// Any other error of `enqueue_many`, for which the body does not run.
        pub fn enqueue_or_run #generics (
            #backend: &::redisq::RedisQueueBackend,
            #items: #items_ty,
        ) -> ::redisq::Result<
            ::redisq::Dispatch<#inner_ret, ::std::vec::Vec<::redisq::TaskId>>,
        > #where_clause #body
    }
}

/// `enqueue_in`: a call due once a delay has passed.
fn enqueue_in(plan: &Plan<'_>) -> TokenStream {
    let Plan {
        own,
        call,
        inner_generics: g,
        ..
    } = plan;
    let (backend, delay) = (&own.backend, &own.delay);
    let (call_params, call_idents) = (&call.params, &call.idents);
    let (generics, where_clause) = (&g.params, &g.where_clause);
    let body = body(
        plan,
        quote!(with(#backend).delay(#delay).enqueue(#(#call_idents),*)),
    );
    quote! {
        /// Enqueues a call to run once `delay` has passed, and returns its id.
        #[allow(clippy::too_many_arguments)]
        pub fn enqueue_in #generics (
            #backend: &::redisq::RedisQueueBackend,
            #delay: ::core::time::Duration,
            #(#call_params),*
        ) -> ::redisq::Result<::redisq::TaskId> #where_clause #body
    }
}

/// `enqueue_at`: a call due at a given time.
fn enqueue_at(plan: &Plan<'_>) -> TokenStream {
    let Plan {
        own,
        call,
        inner_generics: g,
        ..
    } = plan;
    let (backend, at) = (&own.backend, &own.at);
    let (call_params, call_idents) = (&call.params, &call.idents);
    let (generics, where_clause) = (&g.params, &g.where_clause);
    let body = body(
        plan,
        quote!(with(#backend).at(#at).enqueue(#(#call_idents),*)),
    );
    quote! {
        /// Enqueues a call to run at `at` (at once if it is past), and returns its id.
        #[allow(clippy::too_many_arguments)]
        pub fn enqueue_at #generics (
            #backend: &::redisq::RedisQueueBackend,
            #at: ::std::time::SystemTime,
            #(#call_params),*
        ) -> ::redisq::Result<::redisq::TaskId> #where_clause #body
    }
}

/// `result`: a done task's result, typed.
fn result(plan: &Plan<'_>) -> TokenStream {
    let (backend, success_ty) = (&plan.own.backend, &plan.ret.success);
    let (generics, where_clause) = (
        &plan.inner_generics.params,
        &plan.inner_generics.where_clause,
    );
    let body = body(
        plan,
        quote!(::redisq::__private::typed_result(#backend, id)),
    );
    quote! {
        /// The result of task `id` once it is done, deserialized into what the function
        /// returns on success; `None` while it is not done, or when its record has
        /// expired or is not kept (`store_result = false`).
        ///
        /// # Errors
        /// `redisq::Error::TaskFailed` when the task is dead, with its last error;
        /// `redisq::Error::Result` when the stored result does not deserialize.
        pub fn result #generics (
            #backend: &::redisq::RedisQueueBackend,
            id: &::redisq::TaskId,
        ) -> ::redisq::Result<::core::option::Option<#success_ty>> #where_clause #body
    }
}

/// `with(backend)` and the builder `With` it returns, for one call's options.
fn with_builder(plan: &Plan<'_>) -> TokenStream {
    let backend = &plan.own.backend;
    quote! {
        /// Options for the next call on `backend`: its priority lane, its queue, its
        /// ordering key, when it is due.
        /// `with(&backend).priority(redisq::Priority::High).enqueue(..)`.
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
    }
}

/// The methods of `With`: the options, then `enqueue` and `enqueue_many`.
fn with_methods(plan: &Plan<'_>) -> TokenStream {
    let Plan {
        own,
        call,
        inner_generics: g,
        ..
    } = plan;
    let (items, call_params, call_args) = (&own.items, &call.params, &call.args);
    let (item_ty, item_to_args) = (&call.item_ty, &call.item_to_args);
    let (generics, where_clause) = (&g.params, &g.where_clause);
    let enqueue = body(
        plan,
        quote!(::redisq::__private::submit(self.backend, &DEF, &self.options, #call_args)),
    );
    let enqueue_many = body(
        plan,
        quote! {
            ::redisq::__private::submit_many(
                self.backend,
                &DEF,
                &self.options,
                ::core::iter::IntoIterator::into_iter(#items) #item_to_args,
            )
        },
    );
    quote! {
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

            /// Orders this call by `key`: tasks of one key run one at a time, in enqueue
            /// order (overrides `#[fifo(key = ...)]`).
            pub fn key(mut self, key: &'a str) -> Self {
                self.options.key = ::core::option::Option::Some(key);
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
            pub fn enqueue #generics (self, #(#call_params),*)
                -> ::redisq::Result<::redisq::TaskId> #where_clause #enqueue

            /// Enqueues one call per item, as [`enqueue_many`] does.
            pub fn enqueue_many #generics (
                self,
                #items: impl ::core::iter::IntoIterator<Item = #item_ty>,
            ) -> ::redisq::Result<::std::vec::Vec<::redisq::TaskId>> #where_clause #enqueue_many
        }
    }
}

/// `__redisq_call`, which a worker calls with a payload's arguments: decodes them,
/// runs the body and turns what it returns into the call's outcome.
fn call(plan: &Plan<'_>) -> TokenStream {
    let Plan { params, ret, .. } = plan;
    let idents = &params.idents;
    // Each `let` is spanned at the parameter's type, so a type that cannot be
    // deserialized is reported there.
    let decode = if idents.is_empty() {
        quote!(let _ = __redisq_args.list(DEF.params)?;)
    } else {
        let lets = idents.iter().zip(&params.inner_types).map(
            |(ident, ty)| quote_spanned!(ty.span()=> let #ident: #ty = __redisq_args.next()?;),
        );
        quote! {
            let mut __redisq_args = __redisq_args.list(DEF.params)?;
            #(#lets)*
        }
    };
    // `self::run`, as a parameter named `run` would shadow a bare `run`.
    let outcome = match ret.output {
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
    let body = body(
        plan,
        quote! {
            #decode
            #outcome
        },
    );
    quote! {
        fn __redisq_call(
            __redisq_args: ::redisq::__private::Args<'_>,
        ) -> ::redisq::__private::CallResult #body
    }
}

#[cfg(test)]
mod tests {
    use super::fifo;
    use quote::quote;

    #[test]
    fn ordering_keys_reach_the_registration() {
        let def = |args: proc_macro2::TokenStream, item: proc_macro2::TokenStream| {
            let out = fifo(args, item).to_string();
            assert!(!out.contains("compile_error"), "{out}");
            out
        };
        let out = def(
            quote!(queue = "q", ordered = true),
            quote!(
                fn f(x: u8) {}
            ),
        );
        assert!(out.contains("__redisq_call) . ordered () ;"), "{out}");
        let out = def(
            quote!(queue = "q", key = "device_id", on_failure = "dead_letter"),
            quote!(
                fn f(device_id: u32, at: u64) {}
            ),
        );
        assert!(
            out.contains("__redisq_call) . key (\"device_id\") . dead_letter_failures () ;"),
            "{out}"
        );
        // A batch task's key is a field of the item: not checked here.
        let out = def(
            quote!(queue = "q", batch = 10, key = "device_id"),
            quote!(
                fn f(points: Vec<u8>) {}
            ),
        );
        assert!(
            out.contains(". batch (10) . key (\"device_id\") ;"),
            "{out}"
        );
        // The builder sets one call's key.
        assert!(
            out.contains("pub fn key (mut self , key : & 'a str) -> Self"),
            "{out}"
        );
    }

    #[test]
    fn a_key_naming_no_parameter_is_an_error_at_it() {
        let out = fifo(
            quote!(queue = "q", key = "device"),
            quote!(
                fn f(device_id: u32, r#type: u8) {}
            ),
        )
        .to_string();
        assert!(
            out.contains("`key` must name one of the function's parameters: `device_id`, `type`")
        );
        assert!(!out.contains("inventory"));
        let out = fifo(
            quote!(queue = "q", key = "device"),
            quote!(
                fn f() {}
            ),
        )
        .to_string();
        assert!(out.contains("and it has none"));
    }

    #[test]
    fn errors_keep_the_original_item() {
        // A function: the errors, the function under the hidden name, and stand-ins
        // for the generated items, registering nothing.
        let out = fifo(
            quote!(queue = ""),
            quote!(
                fn f(x: u8) {}
            ),
        )
        .to_string();
        assert!(out.starts_with(":: core :: compile_error !"));
        assert!(out.contains(
            &quote!(
                fn __redisq_run_f(x: u8) {}
            )
            .to_string()
        ));
        assert!(out.contains("fn f (x : u8) -> :: redisq :: Result < :: redisq :: TaskId >"));
        assert!(out.contains("mod f"));
        assert!(out.contains(":: core :: unreachable ! ()"));
        assert!(!out.contains("inventory"));
        // A method: there can be no module next to it.
        let item = quote!(
            fn f(&self, x: u8) {}
        );
        let out = fifo(quote!(queue = "q"), item.clone()).to_string();
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
