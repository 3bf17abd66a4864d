//! The plan of one task: everything its generated items need, computed once.
//!
//! [`Plan::new`] takes the parsed attribute, the function and its checked
//! parameters, and derives every name, identifier, type, token fragment and flag
//! that `expand` writes into the generated items, so that each item there is a
//! template over the plan and nothing is derived twice. The plan is grouped by
//! what a part describes: the attributes, the docs, the parameters, the return
//! type, the generated functions' own parameter names, a batch task's item, what
//! one enqueued call takes, and the registration.
//!
//! The fallback for a misuse makes a plan too, from what it can make out of the
//! broken input, with [`Bodies::Unreachable`]: only then can the function have
//! generic parameters, which the generated signatures repeat.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, ToTokens};
use syn::ext::IdentExt;
use syn::{Attribute, Block, Ident, ItemFn, LitStr, ReturnType, Signature, Type, Visibility};

use crate::args::FifoArgs;
use crate::signature::{Param, RESERVED_PREFIX};
use crate::types::{
    classify_output, reparent, reparent_generics, result_ok_type, vec_item, Output,
};

/// What the bodies of the generated functions are.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bodies {
    /// The real ones, for a valid task.
    Real,
    /// `::core::unreachable!()`, in the fallback for a misuse: its items are there
    /// for their names and signatures only, and nothing is registered.
    Unreachable,
}

/// Everything the generated items of one task need.
pub(crate) struct Plan<'a> {
    /// What the generated functions' bodies are.
    pub(crate) bodies: Bodies,
    /// The function's name as written (`send_email`, or a raw `r#type`), which the
    /// enqueuing function and the module take.
    pub(crate) ident: &'a Ident,
    /// The function's visibility, which the enqueuing function and the module keep.
    pub(crate) vis: &'a Visibility,
    /// The hidden function holding the body: `__redisq_run_send_email`.
    pub(crate) run_ident: Ident,
    /// The hidden function's signature: the original one, named `run_ident`.
    pub(crate) run_sig: Signature,
    /// The function's body.
    pub(crate) block: &'a Block,
    /// The function's attributes, by where they go.
    pub(crate) attrs: Attrs<'a>,
    /// The generated docs of the enqueuing function and of the module.
    pub(crate) docs: Docs,
    /// The task's parameters, in the function's module and in the generated one.
    pub(crate) params: Params,
    /// The function's generic parameters and `where` clause for functions in the
    /// function's module: nothing, but in a fallback.
    pub(crate) outer_generics: FnGenerics,
    /// The same for functions in the generated module.
    pub(crate) inner_generics: FnGenerics,
    /// What the body returns.
    pub(crate) ret: Returns,
    /// The names of the generated functions' own parameters.
    pub(crate) own: OwnNames,
    /// A batch task's items (`batch = N`); `None` for other tasks.
    pub(crate) batch: Option<Batch>,
    /// What one enqueued call takes.
    pub(crate) call: Call,
    /// The task's registration.
    pub(crate) def: Def<'a>,
    /// `fallback = "inline"`: the plain call runs the body inline when Redis is
    /// unreachable.
    pub(crate) fallback_inline: bool,
}

impl<'a> Plan<'a> {
    /// The plan for `func` under `args`, with its `params`, and `bodies`.
    pub(crate) fn new(
        args: &'a FifoArgs,
        func: &'a ItemFn,
        params: &[Param<'_>],
        bodies: Bodies,
    ) -> Self {
        let ItemFn {
            attrs,
            vis,
            sig,
            block,
        } = func;
        let ident = &sig.ident;
        let run_ident = format_ident!("{}run_{}", RESERVED_PREFIX, ident.unraw());
        let mut run_sig = sig.clone();
        run_sig.ident = run_ident.clone();

        let params = Params::new(params);
        let own = OwnNames::new(&params.idents);
        let batch = Batch::new(args, &params);
        let call = Call::new(batch.as_ref(), &params, &own);
        let attrs = Attrs::new(attrs);
        let docs = Docs::new(args, ident, batch.is_some(), !attrs.docs.is_empty());
        Plan {
            bodies,
            ident,
            vis,
            run_ident,
            run_sig,
            block,
            attrs,
            docs,
            outer_generics: FnGenerics::new(&sig.generics),
            inner_generics: FnGenerics::new(&reparent_generics(&sig.generics)),
            ret: Returns::new(&sig.output),
            own,
            batch,
            call,
            def: Def::new(args),
            params,
            fallback_inline: args.fallback_inline,
        }
    }
}

/// Generic parameters and a `where` clause, as written after a function's name
/// and after its return type.
pub(crate) struct FnGenerics {
    /// `<T: Bound, 'b>`, or nothing.
    pub(crate) params: TokenStream,
    /// `where T: Bound`, or nothing.
    pub(crate) where_clause: TokenStream,
}

impl FnGenerics {
    fn new(generics: &syn::Generics) -> Self {
        FnGenerics {
            params: generics.to_token_stream(),
            where_clause: generics.where_clause.to_token_stream(),
        }
    }
}

/// The function's attributes, by where they go.
pub(crate) struct Attrs<'a> {
    /// Documentation: on the enqueuing function, which users call.
    pub(crate) docs: Vec<&'a Attribute>,
    /// Everything but documentation: on the hidden function, with the body.
    pub(crate) other: Vec<&'a Attribute>,
    /// `cfg` and `allow`: also on the enqueuing function and the module.
    pub(crate) shared: Vec<&'a Attribute>,
}

impl<'a> Attrs<'a> {
    fn new(attrs: &'a [Attribute]) -> Self {
        Attrs {
            docs: attrs.iter().filter(|a| is_doc(a)).collect(),
            other: attrs.iter().filter(|a| !is_doc(a)).collect(),
            shared: attrs.iter().filter(|a| is_shared(a)).collect(),
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

/// The generated docs.
pub(crate) struct Docs {
    /// An empty doc line between the user's docs and the generated paragraph, when
    /// there are user docs.
    pub(crate) separator: Option<TokenStream>,
    /// The paragraph on the enqueuing function: what calling it does.
    pub(crate) enqueue: String,
    /// The module's doc.
    pub(crate) module: String,
}

impl Docs {
    fn new(args: &FifoArgs, ident: &Ident, batch: bool, has_docs: bool) -> Self {
        // Intra-doc links to the module's functions, unless the name is a raw
        // identifier, which a link cannot spell.
        let (run_link, enqueue_link) = if ident.to_string().starts_with("r#") {
            (format!("`{ident}::run`"), format!("`{ident}::enqueue`"))
        } else {
            (format!("[`{ident}::run`]"), format!("[`{ident}::enqueue`]"))
        };
        let what = if batch {
            "each item as its own task"
        } else {
            "the call"
        };
        let queue = args.queue.value();
        let enqueue = if args.fallback_inline {
            format!(
                " Calling this function enqueues {what} on queue `{queue}` through the global \
                 backend (see `redisq::init`) and returns `Dispatch::Queued` with the id(s). \
                 When Redis is unreachable (`redisq::Error::Unavailable`), it runs the body inline \
                 in this thread instead and returns `Dispatch::RanInline` with what the body \
                 returned (`#[fifo(fallback = \"inline\")]`); other errors are returned. Use \
                 {run_link} to run the body inline, {enqueue_link} for an explicit backend.",
            )
        } else {
            format!(
                " Calling this function does not run it: it enqueues {what} on queue `{queue}` \
                 through the global backend (see `redisq::init`) and returns the id(s). Use \
                 {run_link} to run the body inline, {enqueue_link} for an explicit backend.",
            )
        };
        Docs {
            separator: has_docs.then(|| quote!(#[doc = ""])),
            enqueue,
            module: format!(
                " The task `{}`: its wire name, queue, and the ways to run or enqueue it.",
                ident.unraw()
            ),
        }
    }
}

/// The task's parameters.
pub(crate) struct Params {
    /// Their identifiers, without `mut`.
    pub(crate) idents: Vec<Ident>,
    /// Their names on the wire: the identifiers without `r#`.
    pub(crate) names: Vec<String>,
    /// `ident: Type` as written, for functions in the function's module.
    pub(crate) outer: Vec<TokenStream>,
    /// The types, rewritten for the generated module (see [`reparent`]).
    pub(crate) inner_types: Vec<Type>,
    /// `ident: Type` with the rewritten types, for functions in the generated module.
    pub(crate) inner: Vec<TokenStream>,
    /// The serialized arguments: `&(a, b,)`, or `&[(); 0]` for none.
    pub(crate) tuple: TokenStream,
    /// The same by reference, for calls that keep the arguments to run them
    /// inline: `&(&a, &b,)`, or `&[(); 0]`.
    pub(crate) ref_tuple: TokenStream,
}

impl Params {
    fn new(params: &[Param<'_>]) -> Self {
        let idents: Vec<Ident> = params.iter().map(|p| p.ident.clone()).collect();
        let inner_types: Vec<Type> = params.iter().map(|p| reparent(p.ty)).collect();
        let (tuple, ref_tuple) = if params.is_empty() {
            (quote!(&[(); 0]), quote!(&[(); 0]))
        } else {
            (quote!(&(#(#idents,)*)), quote!(&(#(&#idents,)*)))
        };
        Params {
            names: params.iter().map(|p| p.ident.unraw().to_string()).collect(),
            outer: params
                .iter()
                .map(|Param { ident, ty }| quote!(#ident: #ty))
                .collect(),
            inner: idents
                .iter()
                .zip(&inner_types)
                .map(|(ident, ty)| quote!(#ident: #ty))
                .collect(),
            idents,
            inner_types,
            tuple,
            ref_tuple,
        }
    }
}

/// What the body returns.
pub(crate) struct Returns {
    /// How it becomes the task's outcome.
    pub(crate) output: Output,
    /// `-> T` with `T` rewritten for the generated module, or nothing: `run`'s.
    pub(crate) inner_output: TokenStream,
    /// The type, `()` when none, in the function's module.
    pub(crate) outer: TokenStream,
    /// The type, `()` when none, in the generated module.
    pub(crate) inner: TokenStream,
    /// What a success stores, for the typed `result`: `T` of `Result<T, E>`, the
    /// value, or `()`.
    pub(crate) success: TokenStream,
}

impl Returns {
    fn new(output: &ReturnType) -> Self {
        let kind = classify_output(output);
        let (inner_output, outer, inner) = match output {
            ReturnType::Default => (quote!(), quote!(()), quote!(())),
            ReturnType::Type(arrow, ty) => {
                let inner = reparent(ty);
                (quote!(#arrow #inner), quote!(#ty), quote!(#inner))
            }
        };
        let success = match (&kind, output) {
            (Output::Unit, _) | (_, ReturnType::Default) => quote!(()),
            (Output::Result, ReturnType::Type(_, ty)) => match result_ok_type(ty) {
                Some(ok) => reparent(ok).to_token_stream(),
                None => quote!(::redisq::__private::serde_json::Value),
            },
            (Output::Value, ReturnType::Type(_, _)) => inner.clone(),
        };
        Returns {
            output: kind,
            inner_output,
            outer,
            inner,
            success,
        }
    }
}

/// The names of the generated functions' own parameters: `backend`, `delay`, `at`,
/// `queue`, `items` and `item`, or with the `__redisq_` prefix when a task
/// parameter already has that name.
pub(crate) struct OwnNames {
    /// The backend to enqueue on.
    pub(crate) backend: Ident,
    /// `enqueue_in`'s delay.
    pub(crate) delay: Ident,
    /// `enqueue_at`'s time.
    pub(crate) at: Ident,
    /// `enqueue_to`'s queue.
    pub(crate) queue: Ident,
    /// `enqueue_many`'s items.
    pub(crate) items: Ident,
    /// A batch task's one item.
    pub(crate) item: Ident,
}

impl OwnNames {
    fn new(idents: &[Ident]) -> Self {
        let own = |name: &str| {
            if idents.iter().any(|i| i == name) {
                format_ident!("{}{}", RESERVED_PREFIX, name)
            } else {
                format_ident!("{}", name)
            }
        };
        OwnNames {
            backend: own("backend"),
            delay: own("delay"),
            at: own("at"),
            queue: own("queue"),
            items: own("items"),
            item: own("item"),
        }
    }
}

/// A batch task's items: its one parameter, `items: Vec<Item>`.
pub(crate) struct Batch {
    /// The parameter's identifier.
    pub(crate) items: Ident,
    /// Its type, `Vec<Item>`, rewritten for the generated module.
    pub(crate) items_ty: Type,
    /// `Item`, rewritten for the generated module.
    pub(crate) item_ty: Type,
}

impl Batch {
    /// `Some` for a batch task whose one parameter is a `Vec`.
    fn new(args: &FifoArgs, params: &Params) -> Option<Self> {
        args.batch.as_ref()?;
        let items_ty = params.inner_types.first()?;
        Some(Batch {
            items: params.idents.first()?.clone(),
            item_ty: vec_item(items_ty)?.clone(),
            items_ty: items_ty.clone(),
        })
    }
}

/// What one enqueued call takes: the arguments, or for a batch task one item.
pub(crate) struct Call {
    /// The parameters (`ident: Type`, in the generated module).
    pub(crate) params: Vec<TokenStream>,
    /// Their identifiers.
    pub(crate) idents: Vec<Ident>,
    /// The serialized argument tuple.
    pub(crate) args: TokenStream,
    /// What `enqueue_many` takes per call: the argument types as a tuple, except
    /// that one argument is its own type and none is `()`.
    pub(crate) item_ty: TokenStream,
    /// How such an item becomes the argument tuple: a `.map(..)` on the iterator
    /// of items, or nothing.
    pub(crate) item_to_args: TokenStream,
}

impl Call {
    fn new(batch: Option<&Batch>, params: &Params, own: &OwnNames) -> Self {
        if let Some(Batch { item_ty, .. }) = batch {
            let item = &own.item;
            return Call {
                params: vec![quote!(#item: #item_ty)],
                idents: vec![item.clone()],
                args: quote!(&(#item,)),
                item_ty: quote!(#item_ty),
                item_to_args: quote!(.map(|__redisq_item| (__redisq_item,))),
            };
        }
        let (item_ty, item_to_args) = match params.inner_types.as_slice() {
            [] => (quote!(()), quote!(.map(|()| [(); 0]))),
            [ty] => (quote!(#ty), quote!(.map(|__redisq_item| (__redisq_item,)))),
            types => (quote!((#(#types,)*)), quote!()),
        };
        Call {
            params: params.inner.clone(),
            idents: params.idents.clone(),
            args: params.tuple.clone(),
            item_ty,
            item_to_args,
        }
    }
}

/// The task's registration, `DEF`.
pub(crate) struct Def<'a> {
    /// The wire name: the `name` argument, or `::core::module_path!()`.
    pub(crate) name: TokenStream,
    /// The `queue` argument.
    pub(crate) queue: &'a LitStr,
    /// The `TaskDef` builder calls for the other arguments given:
    /// `.workers(N) .retries(N) .priority(..) .batch(N) .no_store() .ordered()
    /// .key("..") .dead_letter_failures()`.
    pub(crate) options: TokenStream,
}

impl<'a> Def<'a> {
    fn new(args: &'a FifoArgs) -> Self {
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
        let ordered = args.ordered.then(|| quote!(.ordered()));
        let key = args.key.as_ref().map(|key| quote!(.key(#key)));
        let dead_letter = args
            .dead_letter_failures
            .then(|| quote!(.dead_letter_failures()));
        Def {
            name,
            queue: &args.queue,
            options: quote!(#workers #retries #priority #batch #no_store #ordered #key #dead_letter),
        }
    }
}
