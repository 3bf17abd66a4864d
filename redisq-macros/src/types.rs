//! Classifying and rewriting the types of a task's signature: what its return
//! type makes of the outcome ([`classify_output`], [`result_ok_type`]), the item
//! type of a batch task's `Vec` ([`vec_item`]), and relative paths rewritten for
//! the generated child module ([`reparent`], [`reparent_generics`]).

use syn::visit_mut::VisitMut;
use syn::{Generics, Ident, ReturnType, Type, Visibility};

/// How the value returned by the task's body becomes its outcome.
pub(crate) enum Output {
    /// No return type, or `()`.
    Unit,
    /// A type path whose last segment is `Result`: `Ok` is the value, `Err` a failure.
    Result,
    /// Anything else: the value, serialized.
    Value,
}

/// Classifies a return type, looking through parentheses.
pub(crate) fn classify_output(output: &ReturnType) -> Output {
    let ReturnType::Type(_, ty) = output else {
        return Output::Unit;
    };
    let mut ty: &Type = ty;
    loop {
        match ty {
            Type::Paren(inner) => ty = &inner.elem,
            Type::Group(inner) => ty = &inner.elem,
            Type::Tuple(tuple) if tuple.elems.is_empty() => return Output::Unit,
            Type::Path(path)
                if path.qself.is_none()
                    && path
                        .path
                        .segments
                        .last()
                        .is_some_and(|segment| segment.ident == "Result") =>
            {
                return Output::Result;
            }
            _ => return Output::Value,
        }
    }
}

/// `T` when `ty` is `Result<T, ..>` (by its last path segment) with type arguments.
pub(crate) fn result_ok_type(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else {
        return None;
    };
    let segment = path.path.segments.last()?;
    let syn::PathArguments::AngleBracketed(args) = &segment.arguments else {
        return None;
    };
    args.args.iter().find_map(|arg| match arg {
        syn::GenericArgument::Type(ok) => Some(ok),
        _ => None,
    })
}

/// `T` when `ty` is `Vec<T>` (by its last path segment).
pub(crate) fn vec_item(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else {
        return None;
    };
    let segment = path.path.segments.last()?;
    if segment.ident != "Vec" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &segment.arguments else {
        return None;
    };
    match args.args.iter().collect::<Vec<_>>().as_slice() {
        [syn::GenericArgument::Type(item)] => Some(item),
        _ => None,
    }
}

/// Rewrites a type written in the function's module so that it means the same
/// inside the generated child module: `self::X` becomes `super::X` and
/// `super::X` becomes `super::super::X`. Other paths resolve the same there,
/// through `use super::*`.
struct ReparentPaths;

impl VisitMut for ReparentPaths {
    fn visit_path_mut(&mut self, path: &mut syn::Path) {
        if path.leading_colon.is_none() {
            if let Some(first) = path.segments.first_mut() {
                if first.ident == "self" {
                    first.ident = Ident::new("super", first.ident.span());
                } else if first.ident == "super" {
                    let span = first.ident.span();
                    path.segments
                        .insert(0, syn::PathSegment::from(Ident::new("super", span)));
                }
            }
        }
        syn::visit_mut::visit_path_mut(self, path);
    }

    fn visit_visibility_mut(&mut self, _: &mut Visibility) {}
}

/// [`ReparentPaths`] on a copy of `ty`.
pub(crate) fn reparent(ty: &Type) -> Type {
    let mut ty = ty.clone();
    ReparentPaths.visit_type_mut(&mut ty);
    ty
}

/// [`ReparentPaths`] on a copy of `generics` (their bounds and `where` clause).
pub(crate) fn reparent_generics(generics: &Generics) -> Generics {
    let mut generics = generics.clone();
    ReparentPaths.visit_generics_mut(&mut generics);
    generics
}

#[cfg(test)]
mod tests {
    use super::{classify_output, reparent, Output};
    use quote::quote;
    use syn::{ItemFn, Type};

    fn output_of(item: proc_macro2::TokenStream) -> Result<Output, syn::Error> {
        let func: ItemFn = syn::parse2(item)?;
        Ok(classify_output(&func.sig.output))
    }

    #[test]
    fn classifies_return_types() -> syn::Result<()> {
        assert!(matches!(
            output_of(quote!(
                fn f() {}
            ))?,
            Output::Unit
        ));
        assert!(matches!(
            output_of(quote!(
                fn f() -> () {}
            ))?,
            Output::Unit
        ));
        assert!(matches!(
            output_of(quote!(
                fn f() -> (()) {}
            ))?,
            Output::Unit
        ));
        assert!(matches!(
            output_of(quote!(
                fn f() -> Result<u8, E> {}
            ))?,
            Output::Result
        ));
        assert!(matches!(
            output_of(quote!(
                fn f() -> std::io::Result<u8> {}
            ))?,
            Output::Result
        ));
        assert!(matches!(
            output_of(quote!(
                fn f() -> Option<u8> {}
            ))?,
            Output::Value
        ));
        assert!(matches!(
            output_of(quote!(
                fn f() -> (u8, u8) {}
            ))?,
            Output::Value
        ));
        Ok(())
    }

    #[test]
    fn reparents_relative_paths() -> syn::Result<()> {
        let ty: Type = syn::parse2(quote!(Vec<(self::A, super::B, crate::C, D, ::e::F)>))?;
        let ty = reparent(&ty);
        assert_eq!(
            quote!(#ty).to_string(),
            quote!(Vec<(super::A, super::super::B, crate::C, D, ::e::F)>).to_string()
        );
        Ok(())
    }
}
