//! Parsing of the attribute's arguments:
//! `#[fifo(queue = "...", name = "...", workers = N, retries = N, fallback = "inline")]`.
//!
//! [`FifoArgs`] is parsed key by key, so a new key is one more `custom_keyword!`,
//! one more field and one more branch in the loop. Every error is spanned at the
//! offending tokens; validation that needs the whole list (a missing `queue`)
//! happens after the loop.

use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream};
use syn::{Error, Ident, LitInt, LitStr, Token};

/// The keys the attribute accepts.
mod kw {
    syn::custom_keyword!(queue);
    syn::custom_keyword!(name);
    syn::custom_keyword!(workers);
    syn::custom_keyword!(retries);
    syn::custom_keyword!(fallback);
    syn::custom_keyword!(priority);
    syn::custom_keyword!(batch);
    syn::custom_keyword!(store_result);
}

/// The parsed and validated arguments of one `#[fifo(...)]` attribute.
pub(crate) struct FifoArgs {
    /// `queue = "..."`: the queue the task is sent to; required, never empty.
    pub(crate) queue: LitStr,
    /// `name = "..."`: the task's stable wire name; never empty when given.
    /// Defaults to the function's module path and name.
    pub(crate) name: Option<LitStr>,
    /// `workers = N`: how many worker threads run the task; at least 1 when
    /// given (the runtime's default is 1). Stored without a suffix, so it can be
    /// emitted where a `usize` is expected.
    pub(crate) workers: Option<LitInt>,
    /// `retries = N`: how many times a failed call is retried (0: never); the
    /// runtime's default is 3. Stored without a suffix.
    pub(crate) retries: Option<LitInt>,
    /// `fallback = "inline"`: the plain call runs the body inline when Redis is
    /// unreachable, and returns a `Dispatch`. `"inline"` is the only value.
    pub(crate) fallback_inline: bool,
    /// `priority = "high" | "normal" | "low"`: the default lane, as the variant's name
    /// (`High`, `Normal`, `Low`), spanned at the string.
    pub(crate) priority: Option<Ident>,
    /// `batch = N`: a batch task taking up to N items per call (N at least 1).
    pub(crate) batch: Option<LitInt>,
    /// `store_result = false`: keep no status record nor result (default true).
    pub(crate) store_result: bool,
}

impl Parse for FifoArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        // Kept for the span of a "missing `queue`" error.
        let all: TokenStream = input.cursor().token_stream();

        let mut queue: Option<LitStr> = None;
        let mut name: Option<LitStr> = None;
        let mut workers: Option<LitInt> = None;
        let mut retries: Option<LitInt> = None;
        let mut fallback: Option<LitStr> = None;
        let mut priority: Option<Ident> = None;
        let mut batch: Option<LitInt> = None;
        let mut store_result: Option<syn::LitBool> = None;

        while !input.is_empty() {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::queue) {
                let key: kw::queue = input.parse()?;
                let value = parse_non_empty_str(input, "queue name must not be empty")?;
                set_once(&mut queue, key, "queue", value)?;
            } else if lookahead.peek(kw::name) {
                let key: kw::name = input.parse()?;
                let value = parse_non_empty_str(input, "task name must not be empty")?;
                set_once(&mut name, key, "name", value)?;
            } else if lookahead.peek(kw::workers) {
                let key: kw::workers = input.parse()?;
                let value = parse_workers(input)?;
                set_once(&mut workers, key, "workers", value)?;
            } else if lookahead.peek(kw::retries) {
                let key: kw::retries = input.parse()?;
                let value = parse_retries(input)?;
                set_once(&mut retries, key, "retries", value)?;
            } else if lookahead.peek(kw::fallback) {
                let key: kw::fallback = input.parse()?;
                let value = parse_fallback(input)?;
                set_once(&mut fallback, key, "fallback", value)?;
            } else if lookahead.peek(kw::priority) {
                let key: kw::priority = input.parse()?;
                let value = parse_priority(input)?;
                set_once(&mut priority, key, "priority", value)?;
            } else if lookahead.peek(kw::batch) {
                let key: kw::batch = input.parse()?;
                let value = parse_batch(input)?;
                set_once(&mut batch, key, "batch", value)?;
            } else if lookahead.peek(kw::store_result) {
                let key: kw::store_result = input.parse()?;
                input.parse::<Token![=]>()?;
                let value: syn::LitBool = input.parse()?;
                set_once(&mut store_result, key, "store_result", value)?;
            } else {
                return Err(lookahead.error());
            }

            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }

        let Some(queue) = queue else {
            let message = "missing `queue` argument: write #[fifo(queue = \"name\")]";
            return Err(if all.is_empty() {
                Error::new(Span::call_site(), message)
            } else {
                Error::new_spanned(all, message)
            });
        };

        Ok(FifoArgs {
            queue,
            name,
            workers,
            retries,
            fallback_inline: fallback.is_some(),
            priority,
            batch,
            store_result: store_result.is_none_or(|b| b.value),
        })
    }
}

/// Stores `value` in `slot`, or fails at `key` if the key was already given.
fn set_once<K: quote::ToTokens, T>(
    slot: &mut Option<T>,
    key: K,
    key_name: &str,
    value: T,
) -> syn::Result<()> {
    if slot.is_some() {
        return Err(Error::new_spanned(
            key,
            format!("expected only a single `{key_name}` argument"),
        ));
    }
    *slot = Some(value);
    Ok(())
}

/// Parses `= "..."` and rejects an empty string with `empty_message`.
fn parse_non_empty_str(input: ParseStream<'_>, empty_message: &str) -> syn::Result<LitStr> {
    input.parse::<Token![=]>()?;
    let lit: LitStr = input.parse()?;
    if lit.value().is_empty() {
        return Err(Error::new_spanned(lit, empty_message));
    }
    Ok(lit)
}

/// Parses `= "high" | "normal" | "low"` into the `Priority` variant's name.
fn parse_priority(input: ParseStream<'_>) -> syn::Result<Ident> {
    input.parse::<Token![=]>()?;
    let lit: LitStr = input.parse()?;
    let variant = match lit.value().as_str() {
        "high" => "High",
        "normal" => "Normal",
        "low" => "Low",
        _ => {
            return Err(Error::new_spanned(
                lit,
                "`priority` must be \"high\", \"normal\" or \"low\"",
            ))
        }
    };
    Ok(Ident::new(variant, lit.span()))
}

/// Parses `= N` where `N` is an integer literal of at least 1 that fits a `usize`.
fn parse_batch(input: ParseStream<'_>) -> syn::Result<LitInt> {
    input.parse::<Token![=]>()?;
    let lit: LitInt = input.parse()?;
    let value: usize = lit
        .base10_parse()
        .map_err(|_| Error::new_spanned(&lit, "`batch` must be a whole number of items"))?;
    if value == 0 {
        return Err(Error::new_spanned(lit, "`batch` must be at least 1"));
    }
    Ok(LitInt::new(&value.to_string(), lit.span()))
}

/// Parses `= N` where `N` is an integer literal of at least 1 that fits a `usize`.
fn parse_workers(input: ParseStream<'_>) -> syn::Result<LitInt> {
    input.parse::<Token![=]>()?;
    let lit: LitInt = input.parse()?;
    let value: usize = lit.base10_parse()?;
    if value == 0 {
        return Err(Error::new_spanned(lit, "`workers` must be at least 1"));
    }
    // Drop any suffix (`2u8`): the generated code passes a `usize`.
    Ok(LitInt::new(&value.to_string(), lit.span()))
}

/// Parses `= N` where `N` is an integer literal that fits a `u32`.
fn parse_retries(input: ParseStream<'_>) -> syn::Result<LitInt> {
    input.parse::<Token![=]>()?;
    let lit: LitInt = input.parse()?;
    let value: u32 = lit
        .base10_parse()
        .map_err(|_| Error::new_spanned(&lit, "`retries` must be a whole number: 0 or more"))?;
    Ok(LitInt::new(&value.to_string(), lit.span()))
}

/// Parses `= "inline"`, the one fallback there is.
fn parse_fallback(input: ParseStream<'_>) -> syn::Result<LitStr> {
    input.parse::<Token![=]>()?;
    let lit: LitStr = input.parse()?;
    if lit.value() != "inline" {
        return Err(Error::new_spanned(lit, "`fallback` must be \"inline\""));
    }
    Ok(lit)
}

#[cfg(test)]
mod tests {
    use super::FifoArgs;
    use quote::quote;

    fn parse(tokens: proc_macro2::TokenStream) -> Result<FifoArgs, String> {
        syn::parse2::<FifoArgs>(tokens).map_err(|e| e.to_string())
    }

    fn err(tokens: proc_macro2::TokenStream) -> String {
        match parse(tokens) {
            Ok(_) => String::from("<parsed>"),
            Err(e) => e,
        }
    }

    #[test]
    fn all_keys() -> Result<(), String> {
        let args = parse(quote!(
            queue = "emails",
            name = "mail::send",
            workers = 2,
            fallback = "inline",
        ))?;
        assert_eq!(args.queue.value(), "emails");
        assert!(args.fallback_inline);
        assert_eq!(args.name.map(|n| n.value()).as_deref(), Some("mail::send"));
        assert_eq!(args.workers.map(|w| w.to_string()).as_deref(), Some("2"));
        Ok(())
    }

    #[test]
    fn defaults() -> Result<(), String> {
        let args = parse(quote!(queue = "q"))?;
        assert!(args.name.is_none());
        assert!(args.workers.is_none());
        assert!(!args.fallback_inline);
        Ok(())
    }

    #[test]
    fn workers_suffix_is_dropped() -> Result<(), String> {
        let args = parse(quote!(queue = "q", workers = 3u8))?;
        assert_eq!(args.workers.map(|w| w.to_string()).as_deref(), Some("3"));
        Ok(())
    }

    #[test]
    fn errors() {
        assert_eq!(
            err(quote!()),
            "missing `queue` argument: write #[fifo(queue = \"name\")]"
        );
        assert_eq!(
            err(quote!(workers = 2)),
            "missing `queue` argument: write #[fifo(queue = \"name\")]"
        );
        assert_eq!(
            err(quote!(queue = "q", colour = 3)),
            "expected one of: `queue`, `name`, `workers`, `retries`, `fallback`, `priority`, `batch`, `store_result`"
        );
        assert_eq!(
            err(quote!(queue = "q", priority = "urgent")),
            "`priority` must be \"high\", \"normal\" or \"low\""
        );
        assert_eq!(
            err(quote!(queue = "q", batch = 0)),
            "`batch` must be at least 1"
        );
        assert_eq!(
            err(quote!(queue = "q", fallback = "queue")),
            "`fallback` must be \"inline\""
        );
        assert_eq!(
            err(quote!(queue = "q", fallback = inline)),
            "expected string literal"
        );
        assert_eq!(
            err(quote!(
                queue = "q",
                fallback = "inline",
                fallback = "inline"
            )),
            "expected only a single `fallback` argument"
        );
        assert_eq!(
            err(quote!(queue = "a", queue = "b")),
            "expected only a single `queue` argument"
        );
        assert_eq!(err(quote!(queue = "")), "queue name must not be empty");
        assert_eq!(
            err(quote!(queue = "q", name = "")),
            "task name must not be empty"
        );
        assert_eq!(
            err(quote!(queue = "q", workers = 0)),
            "`workers` must be at least 1"
        );
        assert_eq!(
            err(quote!(queue = "q", workers = "2")),
            "expected integer literal"
        );
        assert_eq!(err(quote!(queue = emails)), "expected string literal");
        assert_eq!(err(quote!(queue "q")), "expected `=`");
        assert_eq!(err(quote!(queue = "q" name = "n")), "expected `,`");
    }
}
