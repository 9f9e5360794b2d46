//! Generating the instrumented code.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{
    Attribute, Block, Expr, FnArg, GenericParam, ImplItem, ImplItemFn, Item, ItemImpl, ReturnType,
    Signature, Stmt, Type, Visibility,
};

use crate::attr::{Args, Predicate};

/// The entry point: any item, with its arguments.
pub(crate) fn instrumented(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = match syn::parse2::<Args>(args) {
        Ok(args) => args,
        Err(error) => return with_item(error, item),
    };
    let parsed = match syn::parse2::<Item>(item.clone()) {
        Ok(parsed) => parsed,
        Err(_) => {
            // A trait method without a body is not an `Item`.
            if let Ok(f) = syn::parse2::<syn::TraitItemFn>(item.clone()) {
                let error = syn::Error::new(
                    f.sig.ident.span(),
                    "#[instrumented] needs a function body: put it on the implementations",
                );
                return with_item(error, item);
            }
            let error = syn::Error::new(
                Span::call_site(),
                "#[instrumented] goes on a function, a method or an impl block",
            );
            return with_item(error, item);
        }
    };
    let result = match parsed {
        Item::Fn(f) => {
            let original = f.to_token_stream();
            if args.skip.is_some() {
                return original;
            }
            instrument_fn(&args, &f.attrs, &f.vis, &f.sig, &f.block, &Owner::Free)
                .map_err(|e| (e, original))
        }
        Item::Impl(imp) => instrument_impl(&args, imp),
        other => Err((misplaced(&other), item)),
    };
    match result {
        Ok(tokens) => tokens,
        Err((error, fallback)) => with_item(error, fallback),
    }
}

/// The error, and the item as it was so that the rest of the crate still type-checks.
fn with_item(error: syn::Error, item: TokenStream) -> TokenStream {
    let error = error.to_compile_error();
    quote!(#error #item)
}

/// The error for an item that is neither a function nor an impl, on its keyword.
fn misplaced(item: &Item) -> syn::Error {
    let (span, what): (Span, &str) = match item {
        Item::Struct(s) => (s.struct_token.span, "a struct"),
        Item::Enum(e) => (e.enum_token.span, "an enum"),
        Item::Union(u) => (u.union_token.span, "a union"),
        Item::Trait(t) => {
            return syn::Error::new(
                t.trait_token.span,
                "#[instrumented] cannot go on a trait definition: put it on the trait's impl \
                 blocks or their methods",
            )
        }
        Item::Const(c) => (c.const_token.span, "a const"),
        Item::Static(s) => (s.static_token.span, "a static"),
        Item::Mod(m) => (m.mod_token.span, "a module"),
        Item::Type(t) => (t.type_token.span, "a type alias"),
        Item::Use(u) => (u.use_token.span, "a use declaration"),
        other => (other.span(), "this item"),
    };
    syn::Error::new(
        span,
        format!("#[instrumented] goes on a function, a method or an impl block, not on {what}"),
    )
}

/// Where a function is defined, for its `function` label.
enum Owner {
    /// A free function, or a method whose `impl` the macro does not see.
    Free,
    /// A method of an instrumented `impl` block.
    Impl {
        /// `Type`, or `<Type as Trait>`, or `Trait` for a blanket impl.
        prefix: String,
    },
}

fn instrument_impl(
    outer: &Args,
    mut imp: ItemImpl,
) -> Result<TokenStream, (syn::Error, TokenStream)> {
    if let Some((keyword, _)) = &outer.name {
        let error = syn::Error::new(
            keyword.span,
            "`name` names one function: put it on the method, not on the impl block",
        );
        strip_inner_attrs(&mut imp);
        return Err((error, imp.to_token_stream()));
    }
    if outer.skip.is_some() {
        strip_inner_attrs(&mut imp);
        return Ok(imp.to_token_stream());
    }
    let owner = Owner::Impl {
        prefix: impl_prefix(&imp),
    };
    let mut errors: Option<syn::Error> = None;
    let mut push_error = |e: syn::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };
    for item in &mut imp.items {
        let ImplItem::Fn(method) = item else { continue };
        let own = match take_own_args(&mut method.attrs) {
            Ok(own) => own.unwrap_or_default(),
            Err(e) => {
                push_error(e);
                continue;
            }
        };
        if own.skip.is_some() || method.sig.constness.is_some() {
            // `const fn`s cannot record at run time; an impl-wide attribute leaves them be.
            continue;
        }
        let args = own.inherit(outer);
        match instrument_fn(
            &args,
            &method.attrs,
            &method.vis,
            &method.sig,
            &method.block,
            &owner,
        ) {
            Ok(tokens) => match syn::parse2::<ImplItemFn>(tokens) {
                Ok(new) => *method = new,
                Err(e) => push_error(e),
            },
            Err(e) => push_error(e),
        }
    }
    match errors {
        Some(e) => {
            strip_inner_attrs(&mut imp);
            Err((e, imp.to_token_stream()))
        }
        None => Ok(imp.to_token_stream()),
    }
}

fn is_ours(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|s| s.ident == "instrumented")
}

/// Removes `#[instrumented(...)]` from a method and returns its arguments.
fn take_own_args(attrs: &mut Vec<Attribute>) -> syn::Result<Option<Args>> {
    let Some(i) = attrs.iter().position(is_ours) else {
        return Ok(None);
    };
    let attr = attrs.remove(i);
    if let Some(second) = attrs.iter().find(|a| is_ours(a)) {
        return Err(syn::Error::new_spanned(
            second,
            "#[instrumented] is specified more than once on this method",
        ));
    }
    match &attr.meta {
        syn::Meta::Path(_) => Ok(Some(Args::default())),
        _ => attr.parse_args::<Args>().map(Some),
    }
}

fn strip_inner_attrs(imp: &mut ItemImpl) {
    for item in &mut imp.items {
        if let ImplItem::Fn(method) = item {
            method.attrs.retain(|a| !is_ours(a));
        }
    }
}

/// `Type`, `<Type as Trait>`, or `Trait` when the type is the impl's own type parameter.
fn impl_prefix(imp: &ItemImpl) -> String {
    let type_params: Vec<String> = imp
        .generics
        .params
        .iter()
        .filter_map(|p| match p {
            GenericParam::Type(t) => Some(t.ident.to_string()),
            _ => None,
        })
        .collect();
    let self_name = type_name(&imp.self_ty);
    match &imp.trait_ {
        None => self_name,
        Some((_, path, _)) => {
            let trait_name = path
                .segments
                .last()
                .map_or_else(String::new, |s| s.ident.to_string());
            if type_params.contains(&self_name) {
                trait_name
            } else {
                format!("<{self_name} as {trait_name}>")
            }
        }
    }
}

/// A type's short name: the last path segment without generics.
fn type_name(ty: &Type) -> String {
    match ty {
        Type::Path(p) if p.qself.is_none() => p
            .path
            .segments
            .last()
            .map_or_else(String::new, |s| s.ident.to_string()),
        Type::Reference(r) => type_name(&r.elem),
        Type::Paren(p) => type_name(&p.elem),
        Type::Group(g) => type_name(&g.elem),
        other => other
            .to_token_stream()
            .to_string()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect(),
    }
}

/// How the body runs.
enum Shape<'a> {
    /// A plain function: the body runs in a closure whose value is classified.
    Sync,
    /// An `async fn`: the body runs in an inner `async move` block, awaited.
    Async,
    /// A function whose body ends in `Box::pin(async move { .. })`, as `#[async_trait]`
    /// writes them: the boxed block is instrumented.
    Boxed {
        stmts: &'a [Stmt],
        /// `Box::pin`, as the body wrote it.
        func: &'a Expr,
        /// The `async move` block.
        future: &'a Expr,
    },
}

fn instrument_fn(
    args: &Args,
    attrs: &[Attribute],
    vis: &Visibility,
    sig: &Signature,
    block: &Block,
    owner: &Owner,
) -> syn::Result<TokenStream> {
    if let Some(constness) = &sig.constness {
        return Err(syn::Error::new(
            constness.span,
            "#[instrumented] cannot go on a `const fn`: it records at run time",
        ));
    }
    let name = function_label(args, sig, owner);
    let method_of_self = args.name.is_none()
        && matches!(owner, Owner::Free)
        && matches!(sig.inputs.first(), Some(FnArg::Receiver(_)));
    let site = site_static(args, &name);
    let start = call_start(args, method_of_self);
    let finish = call_finish(args);

    let private = private(args);
    let shape = if sig.asyncness.is_some() {
        Shape::Async
    } else {
        boxed_future(block).unwrap_or(Shape::Sync)
    };
    let never_returns =
        matches!(&sig.output, ReturnType::Type(_, ty) if matches!(**ty, Type::Never(_)));
    let ret_type = return_annotation(sig);
    let body = match shape {
        // Nothing to classify: it can only end by unwinding, which the guard records.
        Shape::Sync | Shape::Async if never_returns => quote! {
            #site
            let __vitals_call = #start;
            #block
        },
        Shape::Sync => {
            let inner = typed_block(sig, block);
            quote! {
                #site
                let __vitals_call = #start;
                #[allow(clippy::redundant_closure_call)]
                let __vitals_ret #ret_type = #private::call_once(move || #inner);
                #finish
            }
        }
        Shape::Async => {
            let inner = typed_block(sig, block);
            quote! {
                #site
                let __vitals_call = #start;
                let __vitals_ret #ret_type = async move #inner.await;
                #finish
            }
        }
        Shape::Boxed {
            stmts,
            func,
            future: fut,
        } => {
            quote! {
                #(#stmts)*
                #func(async move {
                    #site
                    let __vitals_call = #start;
                    let __vitals_ret = #fut.await;
                    #finish
                })
            }
        }
    };
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #body
        }
    })
}

/// The `function` label: the `name` argument, else the impl's type and the method, else the
/// function's name.
fn function_label(args: &Args, sig: &Signature, owner: &Owner) -> String {
    if let Some((_, name)) = &args.name {
        return name.clone();
    }
    let ident = sig.ident.unraw_string();
    match owner {
        Owner::Impl { prefix } => format!("{prefix}::{ident}"),
        Owner::Free => ident,
    }
}

trait UnrawString {
    fn unraw_string(&self) -> String;
}

impl UnrawString for syn::Ident {
    fn unraw_string(&self) -> String {
        syn::ext::IdentExt::unraw(self).to_string()
    }
}

/// The path of the core crate's private module: `::vitals_core::__private`, or the
/// `crate = path` argument's (spanned there, so that a wrong path is an error at it).
fn private(args: &Args) -> TokenStream {
    match &args.krate {
        Some((_, path)) => quote_spanned!(path.span()=> #path::__private),
        None => quote!(::vitals_core::__private),
    }
}

fn site_static(args: &Args, function: &str) -> TokenStream {
    let private = private(args);
    let (buckets, bounds) = match &args.buckets {
        Some((_, bounds)) => {
            let n = bounds.len() + 1;
            let lits = bounds.iter().map(|&b| Literal::f64_suffixed(b));
            (quote!(#n), quote!(&[#(#lits),*]))
        }
        None => (
            quote!({ #private::DEFAULT_BUCKETS }),
            quote!(#private::DEFAULT_BOUNDS),
        ),
    };
    let labels = args
        .labels
        .iter()
        .flat_map(|(_, labels)| labels)
        .map(|(k, v)| quote!((#k, #v)));
    quote! {
        static __VITALS_SITE: #private::Site<#buckets> =
            #private::Site::new(#private::SiteMeta {
                function: #function,
                module: ::core::module_path!(),
                bounds: #bounds,
                labels: &[#(#labels),*],
            });
    }
}

fn call_start(args: &Args, method_of_self: bool) -> TokenStream {
    let private = private(args);
    let registry = match &args.registry {
        Some((_, path)) => quote_spanned! {path.span()=>
            || -> &'static #private::Registry { &#path }
        },
        None => quote!(#private::Registry::global),
    };
    let self_type = if method_of_self {
        quote!(|| ::core::option::Option::Some(::core::any::type_name::<Self>()))
    } else {
        quote!(|| ::core::option::Option::None)
    };
    quote!(#private::Call::start(&__VITALS_SITE, #registry, #self_type))
}

/// Classifies `__vitals_ret`, records, and gives it back.
fn call_finish(args: &Args) -> TokenStream {
    let private = private(args);
    let outcome = match &args.predicate {
        // `ok_if`: `true` is ok; `error_if`: `true` is an error. Spanned at the user's path, so
        // that a predicate of the wrong type is an error there.
        Some(Predicate::OkIf(path)) => quote_spanned! {path.span()=>
            #private::outcome::from_predicate(!#path(&__vitals_ret))
        },
        Some(Predicate::ErrorIf(path)) => quote_spanned! {path.span()=>
            #private::outcome::from_predicate(#path(&__vitals_ret))
        },
        None => quote! {{
            #[allow(unused_imports)]
            use #private::outcome::{
                AnyResult as _, Anything as _, Response as _, ResultOfResponse as _, StatusLast as _,
            };
            (&&&&&#private::outcome::Classify(&__vitals_ret)).__vitals_outcome()
        }},
    };
    quote! {
        let __vitals_outcome = #outcome;
        __vitals_call.finish(__vitals_outcome);
        __vitals_ret
    }
}

/// The declared return type as a local may name it: `impl Trait` becomes `_`. `None` when no
/// type is written, when it holds `!` (not nameable in a `let`), or when it is all `_`.
fn nameable_return_type(sig: &Signature) -> Option<Type> {
    let ReturnType::Type(_, ty) = &sig.output else {
        return None;
    };
    let mut ty = (**ty).clone();
    if has_never(&ty) {
        return None;
    }
    ImplToInfer.visit_type_mut(&mut ty);
    (!matches!(ty, Type::Infer(_))).then_some(ty)
}

/// `: Type` for the variable holding the body's value: the declared return type (`()` when
/// none is written), so that the value's type is known before it is classified, even when
/// the body diverges (a body that only panics has no type of its own).
fn return_annotation(sig: &Signature) -> TokenStream {
    match (&sig.output, nameable_return_type(sig)) {
        (ReturnType::Default, _) => quote!(: ()),
        (_, Some(ty)) => quote!(: #ty),
        (_, None) => TokenStream::new(),
    }
}

/// The body, with a return of the declared type first so that every `return`, `?` and tail
/// expression in the body is checked against that type, as in the function itself
/// (conversions and inference such as `.collect()` keep working). `impl Trait` becomes `_`.
fn typed_block(sig: &Signature, block: &Block) -> TokenStream {
    let Some(ty) = nameable_return_type(sig) else {
        return block.to_token_stream();
    };
    let stmts = &block.stmts;
    quote_spanned! {block.span()=>
        {
            #[allow(
                unreachable_code,
                clippy::diverging_sub_expression,
                clippy::empty_loop,
                clippy::let_unit_value,
                clippy::let_with_type_underscore,
                clippy::needless_return
            )]
            if false {
                let __vitals_type: #ty = loop {};
                return __vitals_type;
            }
            #(#stmts)*
        }
    }
}

struct ImplToInfer;

impl VisitMut for ImplToInfer {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::ImplTrait(imp) = ty {
            *ty = Type::Infer(syn::TypeInfer {
                underscore_token: syn::Token![_](imp.impl_token.span),
            });
            return;
        }
        syn::visit_mut::visit_type_mut(self, ty);
    }
}

fn has_never(ty: &Type) -> bool {
    struct Finder(bool);
    impl Visit<'_> for Finder {
        fn visit_type_never(&mut self, _: &syn::TypeNever) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    finder.visit_type(ty);
    finder.0
}

/// Matches a body that ends in `Box::pin(async move { .. })`.
fn boxed_future(block: &Block) -> Option<Shape<'_>> {
    let (last, stmts) = block.stmts.split_last()?;
    let Stmt::Expr(Expr::Call(call), None) = last else {
        return None;
    };
    let Expr::Path(func) = &*call.func else {
        return None;
    };
    let segments: Vec<String> = func
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    let is_box_pin = segments.len() >= 2 && segments[segments.len() - 2..] == ["Box", "pin"];
    if !is_box_pin || call.args.len() != 1 {
        return None;
    }
    match &call.args[0] {
        future @ Expr::Async(a) if a.capture.is_some() => Some(Shape::Boxed {
            stmts,
            func: &call.func,
            future,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(args: TokenStream, item: TokenStream) -> String {
        instrumented(args, item).to_string()
    }

    #[test]
    fn docs_attributes_visibility_and_signature_are_kept() {
        let out = expand(
            quote!(),
            quote! {
                /// Finds a user.
                #[inline]
                #[cfg_attr(test, allow(dead_code))]
                pub(crate) async fn find<'a, T: Clone>(id: &'a T) -> Result<T, String>
                where
                    T: Send,
                { Ok(id.clone()) }
            },
        );
        let expected_head = quote! {
            #[doc = r" Finds a user."]
            #[inline]
            #[cfg_attr(test, allow(dead_code))]
            pub(crate) async fn find<'a, T: Clone>(id: &'a T) -> Result<T, String>
            where
                T: Send,
        }
        .to_string();
        assert!(out.starts_with(&expected_head), "{out}");
    }

    #[test]
    fn generated_code_names_only_private_paths_of_vitals_core() {
        let out = expand(
            quote!(),
            quote!(
                fn f() -> u8 {
                    1
                }
            ),
        );
        for path in out.split(":: vitals_core ::").skip(1) {
            assert!(path.trim_start().starts_with("__private"), "{out}");
        }
        assert!(out.contains(":: vitals_core :: __private :: Call :: start"));
    }

    #[test]
    fn a_crate_path_replaces_vitals_core_everywhere_and_impl_methods_inherit_it() {
        let out = expand(
            quote!(crate = my_app::observability),
            quote!(
                fn f() -> u8 {
                    1
                }
            ),
        );
        assert!(!out.contains("vitals_core"), "{out}");
        assert!(out.contains("my_app :: observability :: __private :: Call :: start"));

        let out = expand(
            quote!(crate = renamed),
            quote!(
                impl Store {
                    fn get(&self) -> u8 {
                        1
                    }
                }
            ),
        );
        assert!(!out.contains("vitals_core"), "{out}");
        assert!(out.contains("renamed :: __private :: Site"), "{out}");
    }

    #[test]
    fn an_error_keeps_the_item_so_the_rest_still_compiles() {
        let out = expand(
            quote!(nmae = "x"),
            quote!(
                fn keep_me() {}
            ),
        );
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.contains("fn keep_me"), "{out}");
    }

    #[test]
    fn impl_names() {
        let names = |imp: TokenStream| {
            let imp: ItemImpl = syn::parse2(imp).unwrap();
            impl_prefix(&imp)
        };
        assert_eq!(
            names(quote!(
                impl<T> Store<T> {}
            )),
            "Store"
        );
        assert_eq!(
            names(quote!(impl Display for app::Money {})),
            "<Money as Display>"
        );
        assert_eq!(
            names(quote!(
                impl<T: Debug> Loud for T {}
            )),
            "Loud"
        );
        assert_eq!(
            names(quote!(impl Greet for &Person {})),
            "<Person as Greet>"
        );
    }
}
