//! Parsing of the attribute's arguments:
//! `#[fifo(queue = "...", name = "...", workers = N, retries = N, fallback = "inline", ...)]`.
//!
//! [`FifoArgs`] is parsed key by key into [`Keys`], so a new key is one more
//! `custom_keyword!`, one more field and one more branch in [`Keys::parse_one`].
//! Every error is spanned at the offending tokens; validation that needs the whole
//! list (a missing `queue`, keys that go only with others) happens in
//! [`Keys::finish`].

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::parse::{Parse, ParseStream};
use syn::{Error, Ident, LitBool, LitInt, LitStr, Token};

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
    syn::custom_keyword!(ordered);
    syn::custom_keyword!(key);
    syn::custom_keyword!(on_failure);
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
    /// `ordered = true`: the queue is consumed by one consumer at a time, in
    /// enqueue order (default false). Never together with `key`.
    pub(crate) ordered: bool,
    /// `key = "..."`: the parameter (for a batch task, the item's field) whose value
    /// orders the calls; never empty. A plain task's is checked against its
    /// parameters by `signature::check_key`.
    pub(crate) key: Option<LitStr>,
    /// `on_failure = "dead_letter"`: a failed call of an ordered queue or a key is a
    /// dead letter at once instead of holding back the calls behind it
    /// (`"block"`, the default). Only with `ordered = true` or `key`.
    pub(crate) dead_letter_failures: bool,
}

impl Parse for FifoArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        // Kept for the span of a "missing `queue`" error.
        let all: TokenStream = input.cursor().token_stream();
        let mut keys = Keys::default();
        while !input.is_empty() {
            keys.parse_one(input)?;
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        keys.finish(all)
    }
}

/// The keys given so far, each value checked on its own, with the key's token
/// where a later check needs its span.
#[derive(Default)]
struct Keys {
    queue: Option<LitStr>,
    name: Option<LitStr>,
    workers: Option<LitInt>,
    retries: Option<LitInt>,
    fallback: Option<LitStr>,
    priority: Option<Ident>,
    batch: Option<LitInt>,
    store_result: Option<LitBool>,
    ordered: Option<LitBool>,
    key: Option<(kw::key, LitStr)>,
    /// The key's token, and whether the value is `"dead_letter"`.
    on_failure: Option<(kw::on_failure, bool)>,
}

impl Keys {
    /// Parses one `key = value`.
    fn parse_one(&mut self, input: ParseStream<'_>) -> syn::Result<()> {
        let lookahead = input.lookahead1();
        if lookahead.peek(kw::queue) {
            let key: kw::queue = input.parse()?;
            let value = parse_non_empty_str(input, "queue name must not be empty")?;
            set_once(&mut self.queue, key, "queue", value)
        } else if lookahead.peek(kw::name) {
            let key: kw::name = input.parse()?;
            let value = parse_non_empty_str(input, "task name must not be empty")?;
            set_once(&mut self.name, key, "name", value)
        } else if lookahead.peek(kw::workers) {
            let key: kw::workers = input.parse()?;
            let value = parse_workers(input)?;
            set_once(&mut self.workers, key, "workers", value)
        } else if lookahead.peek(kw::retries) {
            let key: kw::retries = input.parse()?;
            let value = parse_retries(input)?;
            set_once(&mut self.retries, key, "retries", value)
        } else if lookahead.peek(kw::fallback) {
            let key: kw::fallback = input.parse()?;
            let value = parse_fallback(input)?;
            set_once(&mut self.fallback, key, "fallback", value)
        } else if lookahead.peek(kw::priority) {
            let key: kw::priority = input.parse()?;
            let value = parse_priority(input)?;
            set_once(&mut self.priority, key, "priority", value)
        } else if lookahead.peek(kw::batch) {
            let key: kw::batch = input.parse()?;
            let value = parse_batch(input)?;
            set_once(&mut self.batch, key, "batch", value)
        } else if lookahead.peek(kw::store_result) {
            let key: kw::store_result = input.parse()?;
            input.parse::<Token![=]>()?;
            let value: LitBool = input.parse()?;
            set_once(&mut self.store_result, key, "store_result", value)
        } else if lookahead.peek(kw::ordered) {
            let key: kw::ordered = input.parse()?;
            let value = parse_ordered(input)?;
            set_once(&mut self.ordered, key, "ordered", value)
        } else if lookahead.peek(kw::key) {
            let key: kw::key = input.parse()?;
            let value = parse_non_empty_str(
                input,
                "`key` must not be empty: name a parameter (for a batch task, a field of the item)",
            )?;
            set_once(&mut self.key, key, "key", (key, value))
        } else if lookahead.peek(kw::on_failure) {
            let key: kw::on_failure = input.parse()?;
            let value = parse_on_failure(input)?;
            set_once(&mut self.on_failure, key, "on_failure", (key, value))
        } else {
            Err(lookahead.error())
        }
    }

    /// The arguments, once the checks that need the whole list pass: `queue` is
    /// there, and the ordering keys go together. `all` is the attribute's tokens.
    fn finish(self, all: TokenStream) -> syn::Result<FifoArgs> {
        let (ordered, ordering) = (self.is_ordered(), self.check_ordering());
        let Some(queue) = self.queue else {
            let mut error = missing_queue(all);
            if let Err(more) = ordering {
                error.combine(more);
            }
            return Err(error);
        };
        ordering?;
        Ok(FifoArgs {
            queue,
            name: self.name,
            workers: self.workers,
            retries: self.retries,
            fallback_inline: self.fallback.is_some(),
            priority: self.priority,
            batch: self.batch,
            store_result: self.store_result.is_none_or(|b| b.value),
            ordered,
            key: self.key.map(|(_, value)| value),
            dead_letter_failures: self.on_failure.is_some_and(|(_, dead_letter)| dead_letter),
        })
    }

    /// Whether `ordered = true` was given.
    fn is_ordered(&self) -> bool {
        self.ordered.as_ref().is_some_and(|b| b.value)
    }

    /// `key` is not for an ordered queue, and `on_failure` is only for one or a key.
    fn check_ordering(&self) -> syn::Result<()> {
        let ordered = self.is_ordered();
        match (&self.key, &self.on_failure) {
            (Some((key, _)), _) if ordered => Err(Error::new_spanned(
                key,
                "`key` cannot be used with `ordered = true`: an ordered queue already runs \
                 all its tasks in order, so use one or the other",
            )),
            (None, Some((on_failure, _))) if !ordered => Err(Error::new_spanned(
                on_failure,
                "`on_failure` only applies to ordered queues and keyed tasks: \
                 add `ordered = true` or `key = \"...\"`, or remove it",
            )),
            _ => Ok(()),
        }
    }
}

/// The error for an attribute without `queue`, spanned at its tokens (`all`).
fn missing_queue(all: TokenStream) -> Error {
    let message = "missing `queue` argument: write #[fifo(queue = \"name\")]";
    if all.is_empty() {
        Error::new(Span::call_site(), message)
    } else {
        Error::new_spanned(all, message)
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

/// Parses `= true` or `= false`; anything else is an error at its first token.
fn parse_ordered(input: ParseStream<'_>) -> syn::Result<LitBool> {
    input.parse::<Token![=]>()?;
    if input.peek(LitBool) {
        return input.parse();
    }
    let token: TokenTree = input.parse()?;
    Err(Error::new_spanned(
        token,
        "`ordered` must be `true` or `false`",
    ))
}

/// Parses `= "block" | "dead_letter"`: whether a failure is a dead letter at once.
fn parse_on_failure(input: ParseStream<'_>) -> syn::Result<bool> {
    input.parse::<Token![=]>()?;
    let lit: LitStr = input.parse()?;
    match lit.value().as_str() {
        "block" => Ok(false),
        "dead_letter" => Ok(true),
        _ => Err(Error::new_spanned(
            lit,
            "`on_failure` must be \"block\" or \"dead_letter\"",
        )),
    }
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
    fn ordering_keys() -> Result<(), String> {
        let args = parse(quote!(queue = "q"))?;
        assert!(!args.ordered && args.key.is_none() && !args.dead_letter_failures);
        let args = parse(quote!(queue = "q", ordered = true))?;
        assert!(args.ordered && args.key.is_none() && !args.dead_letter_failures);
        let args = parse(quote!(queue = "q", ordered = true, on_failure = "block"))?;
        assert!(args.ordered && !args.dead_letter_failures);
        let args = parse(quote!(
            queue = "q",
            key = "device_id",
            on_failure = "dead_letter"
        ))?;
        assert!(!args.ordered && args.dead_letter_failures);
        assert_eq!(args.key.map(|k| k.value()).as_deref(), Some("device_id"));
        // `ordered = false` is no ordered queue: a key goes with it.
        let args = parse(quote!(queue = "q", ordered = false, key = "k"))?;
        assert!(!args.ordered && args.key.is_some());
        Ok(())
    }

    #[test]
    fn ordering_errors() {
        assert_eq!(
            err(quote!(queue = "q", ordered = "yes")),
            "`ordered` must be `true` or `false`"
        );
        assert_eq!(
            err(quote!(queue = "q", ordered = yes)),
            "`ordered` must be `true` or `false`"
        );
        assert_eq!(
            err(quote!(queue = "q", key = "k", on_failure = "later")),
            "`on_failure` must be \"block\" or \"dead_letter\""
        );
        let without = "`on_failure` only applies to ordered queues and keyed tasks: \
                       add `ordered = true` or `key = \"...\"`, or remove it";
        assert_eq!(err(quote!(queue = "q", on_failure = "block")), without);
        assert_eq!(
            err(quote!(
                queue = "q",
                ordered = false,
                on_failure = "dead_letter"
            )),
            without
        );
        assert_eq!(
            err(quote!(queue = "q", ordered = true, key = "k")),
            "`key` cannot be used with `ordered = true`: an ordered queue already runs \
             all its tasks in order, so use one or the other"
        );
        assert_eq!(
            err(quote!(queue = "q", key = "")),
            "`key` must not be empty: name a parameter (for a batch task, a field of the item)"
        );
        assert_eq!(
            err(quote!(queue = "q", key = "a", key = "b")),
            "expected only a single `key` argument"
        );
        assert_eq!(
            err(quote!(queue = "q", ordered = true, ordered = true)),
            "expected only a single `ordered` argument"
        );
    }

    #[test]
    fn a_missing_queue_and_a_misplaced_on_failure_are_both_reported() {
        let errors: Vec<String> = match syn::parse2::<FifoArgs>(quote!(on_failure = "block")) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| e.to_string()).collect(),
        };
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(errors[0].starts_with("missing `queue` argument"));
        assert!(errors[1].starts_with("`on_failure` only applies"));
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
            "expected one of: `queue`, `name`, `workers`, `retries`, `fallback`, `priority`, `batch`, `store_result`, `ordered`, `key`, `on_failure`"
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
