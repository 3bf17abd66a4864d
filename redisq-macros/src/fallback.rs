//! The expansion of a misuse: the errors, and stand-ins for the items the user's
//! code refers to, so that a mistake is reported once and not again at each use.
//! (Unrelated to `fallback = "inline"`; this is the fallback of the macro itself,
//! as in `thiserror`.)
//!
//! Next to the `compile_error!`s come the unchanged function under the hidden
//! name (so its body is still checked as written), and the plain call and the
//! module as for a valid task, from a plan made of what can be made out of the
//! broken input, with bodies that are `::core::unreachable!()` and nothing
//! registered. Where the input does not say:
//!
//! - an attribute that does not parse counts as `queue = ""` with no other key,
//!   except that `batch` and `fallback`, which shape the signatures, count as
//!   given when their key is there, whatever their value;
//! - a parameter that is not a plain name (`_`, `(a, b)`) takes one made up from
//!   its position: the generated functions take it by position anyway;
//! - the function's generics and `where` clause are repeated on the generated
//!   functions that take its parameters, and the signature is made expressible
//!   in theirs (see [`stand_in`]): a reference's lifetime gets a name, a lifetime
//!   named `'a` another one, and an `impl Trait` returned stands as `()`;
//! - a function taking `self` is in an `impl`, where a module cannot be: it is
//!   emitted unchanged, with the errors only.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{format_ident, quote};
use syn::punctuated::Punctuated;
use syn::visit_mut::VisitMut;
use syn::{
    Error, FnArg, GenericParam, ItemFn, Lifetime, LifetimeParam, LitInt, LitStr, Pat, Signature,
    Type, TypeBareFn, TypeReference, TypeTraitObject, TypeTuple,
};

use crate::args::FifoArgs;
use crate::expand::{module, plain_fn};
use crate::plan::{Bodies, Plan};
use crate::signature::{Param, RESERVED_PREFIX};

/// The expansion of `#[fifo(args)] func` when `errors` are all the macro can say
/// about it. `parsed` is the attribute when it parsed, `args` its tokens.
pub(crate) fn expand(
    errors: &Error,
    parsed: Option<FifoArgs>,
    args: &TokenStream,
    func: &ItemFn,
    item: &TokenStream,
) -> TokenStream {
    let errors = errors.to_compile_error();
    if func.sig.receiver().is_some() {
        return quote!(#errors #item);
    }
    let args = parsed.unwrap_or_else(|| guess_args(args));
    let stand_in = stand_in(func);
    let params = params(&stand_in.sig);
    let plan = Plan::new(&args, &stand_in, &params, Bodies::Unreachable);
    let mut hidden = func.clone();
    hidden.sig.ident = plan.run_ident.clone();
    let plain = plain_fn(&plan);
    let module = module(&plan);
    // The stand-ins do not use their parameters.
    quote! {
        #errors
        #hidden
        #[allow(unused_variables)]
        #plain
        #[allow(unused_variables)]
        #module
    }
}

/// The arguments of an attribute that does not parse: no key but `batch` and
/// `fallback`, taken as given when their key is followed by `=`, whatever their
/// value, as they change the generated signatures.
fn guess_args(args: &TokenStream) -> FifoArgs {
    let mut keys = Vec::new();
    let mut tokens = args.clone().into_iter().peekable();
    while let Some(token) = tokens.next() {
        if let (TokenTree::Ident(key), Some(TokenTree::Punct(eq))) = (&token, tokens.peek()) {
            if eq.as_char() == '=' {
                keys.push(key.to_string());
            }
        }
    }
    let given = |key: &str| keys.iter().any(|k| k == key);
    FifoArgs {
        queue: LitStr::new("", Span::call_site()),
        name: None,
        workers: None,
        retries: None,
        fallback_inline: given("fallback"),
        priority: None,
        batch: given("batch").then(|| LitInt::new("1", Span::call_site())),
        store_result: true,
        ordered: false,
        key: None,
        dead_letter_failures: false,
    }
}

/// The parameters of a signature however broken: each typed input, named by its
/// identifier, or when its pattern has none, `__redisq_arg<position>`.
fn params(sig: &Signature) -> Vec<Param<'_>> {
    sig.inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(typed) => Some(typed),
            FnArg::Receiver(_) => None,
        })
        .enumerate()
        .map(|(position, typed)| Param {
            ident: match &*typed.pat {
                Pat::Ident(pat) => pat.ident.clone(),
                _ => format_ident!("{}arg{}", RESERVED_PREFIX, position),
            },
            ty: &typed.ty,
        })
        .collect()
}

/// The function the stand-ins are planned from: `func` with its signature made
/// expressible in theirs.
///
/// - Elided and `'_` lifetimes in the parameters' types (outside function pointer
///   and trait object types, which have their own) are named `'__redisq_r`,
///   declared on the function: `enqueue_many` takes its items as an
///   `impl IntoIterator<Item = ..>`, where a lifetime cannot be anonymous.
/// - A lifetime named `'a` is renamed `'__redisq_a`, as the builder `With<'a>`
///   declares one and its methods would shadow it.
/// - An `impl Trait` in the return type becomes `()`: a body that never returns
///   cannot stand for one.
fn stand_in(func: &ItemFn) -> ItemFn {
    let mut func = func.clone();
    let sig = &mut func.sig;
    RenameA.visit_signature_mut(sig);
    let mut name_elided = NameElided { named: false };
    for input in &mut sig.inputs {
        name_elided.visit_fn_arg_mut(input);
    }
    if name_elided.named {
        let param = LifetimeParam::new(elided_lifetime());
        sig.generics.params.insert(0, GenericParam::Lifetime(param));
    }
    EraseImplTrait.visit_return_type_mut(&mut sig.output);
    func
}

/// `'__redisq_r`, the name of the stand-ins' elided lifetimes.
fn elided_lifetime() -> Lifetime {
    Lifetime {
        apostrophe: Span::call_site(),
        ident: format_ident!("{}r", RESERVED_PREFIX),
    }
}

/// Names elided and `'_` lifetimes; see [`stand_in`].
struct NameElided {
    /// Whether one was named, so that the name must be declared.
    named: bool,
}

impl VisitMut for NameElided {
    fn visit_type_reference_mut(&mut self, reference: &mut TypeReference) {
        if reference.lifetime.is_none() {
            reference.lifetime = Some(elided_lifetime());
            self.named = true;
        }
        syn::visit_mut::visit_type_reference_mut(self, reference);
    }

    fn visit_lifetime_mut(&mut self, lifetime: &mut Lifetime) {
        if lifetime.ident == "_" {
            *lifetime = elided_lifetime();
            self.named = true;
        }
    }

    fn visit_type_bare_fn_mut(&mut self, _: &mut TypeBareFn) {}

    fn visit_type_trait_object_mut(&mut self, _: &mut TypeTraitObject) {}
}

/// Renames `'a` to `'__redisq_a`; see [`stand_in`].
struct RenameA;

impl VisitMut for RenameA {
    fn visit_lifetime_mut(&mut self, lifetime: &mut Lifetime) {
        if lifetime.ident == "a" {
            lifetime.ident = format_ident!("{}a", RESERVED_PREFIX, span = lifetime.ident.span());
        }
    }
}

/// Replaces `impl Trait` by `()` (outside function pointer and trait object types,
/// where it is an error of its own); see [`stand_in`].
struct EraseImplTrait;

impl VisitMut for EraseImplTrait {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        match ty {
            Type::ImplTrait(_) => {
                *ty = Type::Tuple(TypeTuple {
                    paren_token: Default::default(),
                    elems: Punctuated::new(),
                });
            }
            Type::BareFn(_) | Type::TraitObject(_) => {}
            _ => syn::visit_mut::visit_type_mut(self, ty),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{guess_args, params, stand_in};
    use quote::quote;
    use syn::ItemFn;

    #[test]
    fn guesses_the_keys_that_shape_signatures() {
        let args = guess_args(&quote!(queue = "", batch = 0, fallback = "queue"));
        assert!(args.batch.is_some());
        assert!(args.fallback_inline);
        let args = guess_args(&quote!(queue = batch, colour = fallback));
        assert!(args.batch.is_none());
        assert!(!args.fallback_inline);
    }

    #[test]
    fn names_every_parameter() -> syn::Result<()> {
        let func: ItemFn = syn::parse2(quote!(
            fn f(a: u8, (b, c): (u8, u8), _: u8, ref d: u8, mut e: u8) {}
        ))?;
        let names: Vec<String> = params(&func.sig)
            .iter()
            .map(|p| p.ident.to_string())
            .collect();
        assert_eq!(names, ["a", "__redisq_arg1", "__redisq_arg2", "d", "e"]);
        Ok(())
    }

    #[test]
    fn stand_in_signatures_are_expressible() -> syn::Result<()> {
        let func: ItemFn = syn::parse2(quote!(
            fn f<'a, T>(a: &str, b: Cow<'_, T>, c: &'a u8, d: fn(&u8)) -> impl Tr<'a> {}
        ))?;
        let sig = stand_in(&func).sig;
        assert_eq!(
            quote!(#sig).to_string(),
            quote!(
                fn f<'__redisq_r, '__redisq_a, T>(
                    a: &'__redisq_r str,
                    b: Cow<'__redisq_r, T>,
                    c: &'__redisq_a u8,
                    d: fn(&u8)
                ) -> ()
            )
            .to_string()
        );
        Ok(())
    }
}
