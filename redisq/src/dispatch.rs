//! Calling a registered function with a task's JSON arguments, and turning what it
//! returns into an outcome the consumer can record.

use std::collections::BTreeMap;
use std::fmt::Display;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;

/// Why a call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The arguments do not fit the function: the task can never run (dead letter).
    BadArgs(String),
    /// The function ran and returned an error (or panicked).
    Failed(String),
}

impl CallError {
    /// The message, whatever the kind.
    pub(crate) fn into_message(self) -> String {
        match self {
            CallError::BadArgs(message) | CallError::Failed(message) => message,
        }
    }
}

/// What a registered function's call gives: its result as JSON, or why it did not succeed.
pub type CallResult = Result<String, CallError>;

/// A task's raw `args` value, handed to the generated call function.
#[derive(Debug, Clone, Copy)]
pub struct Args<'a> {
    raw: Option<&'a RawValue>,
}

impl<'a> Args<'a> {
    pub(crate) fn new(raw: Option<&'a RawValue>) -> Args<'a> {
        Args { raw }
    }

    /// Matches the arguments against the parameter names: a JSON array must have one
    /// element per parameter, an object one key per parameter name.
    pub fn list(self, params: &'static [&'static str]) -> Result<ArgList<'a>, CallError> {
        let Some(raw) = self.raw else {
            return ArgList::checked(Vec::new(), params);
        };
        let text = raw.get().trim_start();
        if text.starts_with('[') {
            let items: Vec<&'a RawValue> = serde_json::from_str(raw.get())
                .map_err(|e| CallError::BadArgs(format!("args is not a JSON array: {e}")))?;
            ArgList::checked(items, params)
        } else if text.starts_with('{') {
            let mut named: BTreeMap<String, &'a RawValue> = serde_json::from_str(raw.get())
                .map_err(|e| CallError::BadArgs(format!("args is not a JSON object: {e}")))?;
            let mut items = Vec::with_capacity(params.len());
            for param in params {
                match named.remove(*param) {
                    Some(value) => items.push(value),
                    None => {
                        return Err(CallError::BadArgs(format!("missing argument `{param}`")));
                    }
                }
            }
            if let Some(extra) = named.keys().next() {
                return Err(CallError::BadArgs(format!("unexpected argument `{extra}`")));
            }
            ArgList::checked(items, params)
        } else if text == "null" {
            ArgList::checked(Vec::new(), params)
        } else {
            Err(CallError::BadArgs(
                "args must be a JSON array or object".to_owned(),
            ))
        }
    }
}

/// The arguments of one call, in parameter order.
#[derive(Debug)]
pub struct ArgList<'a> {
    items: std::vec::IntoIter<&'a RawValue>,
    params: &'static [&'static str],
    index: usize,
}

impl<'a> ArgList<'a> {
    fn checked(
        items: Vec<&'a RawValue>,
        params: &'static [&'static str],
    ) -> Result<ArgList<'a>, CallError> {
        if items.len() != params.len() {
            return Err(CallError::BadArgs(format!(
                "expected {} argument(s), got {}",
                params.len(),
                items.len()
            )));
        }
        Ok(ArgList {
            items: items.into_iter(),
            params,
            index: 0,
        })
    }

    /// The next argument's raw JSON.
    pub(crate) fn next_raw(&mut self) -> Option<&'a RawValue> {
        self.index += 1;
        self.items.next()
    }

    /// Deserializes the next argument.
    #[allow(clippy::should_implement_trait)]
    pub fn next<T: DeserializeOwned>(&mut self) -> Result<T, CallError> {
        let name = self.params.get(self.index).copied().unwrap_or("?");
        self.index += 1;
        let raw = self
            .items
            .next()
            .ok_or_else(|| CallError::BadArgs(format!("missing argument `{name}`")))?;
        serde_json::from_str(raw.get())
            .map_err(|e| CallError::BadArgs(format!("argument `{name}`: {e}")))
    }
}

/// The outcome of a function that returns nothing.
pub fn outcome_unit() -> CallResult {
    Ok("null".to_owned())
}

/// The outcome of a function that returns a value.
pub fn outcome_from_value<T: Serialize + ?Sized>(value: &T) -> CallResult {
    serde_json::to_string(value)
        .map_err(|e| CallError::Failed(format!("result could not be serialized: {e}")))
}

/// The outcome of a function that returns a `Result`: `Err` fails the task with its message.
pub fn outcome_from_result<T: Serialize, E: Display>(result: Result<T, E>) -> CallResult {
    match result {
        Ok(value) => outcome_from_value(&value),
        Err(err) => Err(CallError::Failed(err.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: &[&str] = &["to", "count"];

    fn decode(args: &str) -> Result<(String, u32), CallError> {
        let raw = RawValue::from_string(args.to_owned()).expect("json");
        let mut list = Args::new(Some(&raw)).list(PARAMS)?;
        Ok((list.next()?, list.next()?))
    }

    #[test]
    fn positional_and_named_arguments() {
        assert_eq!(decode(r#"["a", 2]"#), Ok(("a".to_owned(), 2)));
        assert_eq!(
            decode(r#"{"count": 2, "to": "a"}"#),
            Ok(("a".to_owned(), 2))
        );
    }

    #[test]
    fn argument_errors_name_the_problem() {
        let err = |s| match decode(s) {
            Err(CallError::BadArgs(msg)) => msg,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(err(r#"["a"]"#), "expected 2 argument(s), got 1");
        assert_eq!(err(r#"{"to": "a"}"#), "missing argument `count`");
        assert_eq!(
            err(r#"{"to": "a", "count": 1, "x": 0}"#),
            "unexpected argument `x`"
        );
        assert!(err(r#"["a", "b"]"#).starts_with("argument `count`: invalid type"));
        assert_eq!(err("3"), "args must be a JSON array or object");
    }

    #[test]
    fn missing_args_mean_none() {
        assert!(Args::new(None).list(&[]).is_ok());
        assert!(Args::new(None).list(PARAMS).is_err());
    }

    #[test]
    fn outcomes() {
        assert_eq!(outcome_unit(), Ok("null".to_owned()));
        assert_eq!(outcome_from_result::<u8, &str>(Ok(3)), Ok("3".to_owned()));
        assert_eq!(
            outcome_from_result::<u8, &str>(Err("boom")),
            Err(CallError::Failed("boom".to_owned()))
        );
    }
}
