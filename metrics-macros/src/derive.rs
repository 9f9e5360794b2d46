//! `#[derive(LabelSet)]` and `#[derive(LabelValue)]`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::ext::IdentExt as _;
use syn::spanned::Spanned as _;
use syn::{Data, DeriveInput, Fields, LitStr, Path, Type};

/// What `#[label(...)]` says on the item, a field or a variant.
#[derive(Default)]
struct LabelAttr {
    krate: Option<Path>,
    name: Option<LitStr>,
    value: Option<LitStr>,
}

/// Where a `#[label(...)]` attribute sits, which decides the keys it may hold.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    Item,
    Field,
    Variant,
}

fn label_attr(attrs: &[syn::Attribute], place: Place) -> syn::Result<LabelAttr> {
    let mut out = LabelAttr::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("label")) {
        attr.parse_nested_meta(|meta| {
            let key = meta.path.get_ident().map(ToString::to_string);
            let duplicate = || meta.error("given twice");
            match (key.as_deref(), place) {
                (Some("crate"), Place::Item) => {
                    if out.krate.is_some() {
                        return Err(duplicate());
                    }
                    out.krate = Some(meta.value()?.parse()?);
                }
                (Some("name"), Place::Field) => {
                    if out.name.is_some() {
                        return Err(duplicate());
                    }
                    out.name = Some(meta.value()?.parse()?);
                }
                (Some("value"), Place::Variant) => {
                    if out.value.is_some() {
                        return Err(duplicate());
                    }
                    out.value = Some(meta.value()?.parse()?);
                }
                _ => {
                    let expected = match place {
                        Place::Item => "`crate = path`",
                        Place::Field => "`name = \"...\"`",
                        Place::Variant => "`value = \"...\"`",
                    };
                    return Err(
                        meta.error(format!("unknown `label` argument; expected {expected}"))
                    );
                }
            }
            Ok(())
        })?;
    }
    Ok(out)
}

fn krate(attr: &LabelAttr) -> TokenStream {
    match &attr.krate {
        Some(path) => quote!(#path),
        None => quote!(::vitals_core),
    }
}

/// `f32`, `f64`, or a reference to one.
fn is_float(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => is_float(&r.elem),
        Type::Paren(p) => is_float(&p.elem),
        Type::Group(g) => is_float(&g.elem),
        Type::Path(p) if p.qself.is_none() => p
            .path
            .segments
            .last()
            .is_some_and(|s| s.arguments.is_none() && (s.ident == "f32" || s.ident == "f64")),
        _ => false,
    }
}

/// Whether the type names one of these generic parameters anywhere.
fn mentions_any(ty: &Type, params: &[String]) -> bool {
    fn walk(tokens: TokenStream, params: &[String]) -> bool {
        tokens.into_iter().any(|token| match token {
            proc_macro2::TokenTree::Ident(ident) => params.iter().any(|p| ident == p),
            proc_macro2::TokenTree::Group(group) => walk(group.stream(), params),
            _ => false,
        })
    }
    !params.is_empty() && walk(quote!(#ty), params)
}

pub(crate) fn label_set(input: DeriveInput) -> syn::Result<TokenStream> {
    let attr = label_attr(&input.attrs, Place::Item)?;
    let krate = krate(&attr);
    let fields = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => &named.named,
            Fields::Unnamed(_) | Fields::Unit => return Err(syn::Error::new_spanned(
                &input.ident,
                "`LabelSet` needs a struct with named fields: each field's name is a label name",
            )),
        },
        Data::Enum(e) => {
            return Err(syn::Error::new(
                e.enum_token.span,
                "`LabelSet` is derived for structs with named fields; for an enum that is one \
                 label's value, derive `LabelValue` and use it as a field",
            ))
        }
        Data::Union(u) => {
            return Err(syn::Error::new(
                u.union_token.span,
                "`LabelSet` is derived for structs with named fields",
            ))
        }
    };
    let type_params: Vec<String> = input
        .generics
        .type_params()
        .map(|p| p.ident.to_string())
        .collect();
    let mut names = Vec::new();
    let mut visits = Vec::new();
    let mut bounds = Vec::new();
    for field in fields {
        let ident = field.ident.as_ref().expect("named fields have names");
        let ty = &field.ty;
        if is_float(ty) {
            return Err(syn::Error::new_spanned(
                ty,
                "a float cannot be a label value: its text is not stable and every value would \
                 be a series of its own; record it in a histogram, or round it into an integer \
                 or an enum of ranges",
            ));
        }
        let field_attr = label_attr(&field.attrs, Place::Field)?;
        names.push(match field_attr.name {
            Some(name) => name,
            None => LitStr::new(&ident.unraw().to_string(), ident.span()),
        });
        visits.push(quote_spanned! {ty.span()=>
            #krate::LabelValue::visit_value(&self.#ident, visit);
        });
        // A bound for fields of generic types only: for the others the call above checks the
        // type, and its error points at the field.
        if mentions_any(ty, &type_params) {
            bounds.push(quote_spanned! {ty.span()=> #ty: #krate::LabelValue });
        }
    }
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let mut predicates: Vec<TokenStream> = where_clause
        .map(|w| w.predicates.iter().map(|p| quote!(#p)).collect())
        .unwrap_or_default();
    predicates.extend(bounds);
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics #krate::LabelSet for #name #ty_generics
        where
            #(#predicates,)*
        {
            const NAMES: &'static [&'static str] = &[#(#names),*];

            fn visit_values(&self, visit: &mut dyn ::core::ops::FnMut(&str)) {
                #(#visits)*
            }
        }
    })
}

pub(crate) fn label_value(input: DeriveInput) -> syn::Result<TokenStream> {
    let attr = label_attr(&input.attrs, Place::Item)?;
    let krate = krate(&attr);
    let Data::Enum(data) = &input.data else {
        let span = match &input.data {
            Data::Struct(s) => s.struct_token.span,
            Data::Union(u) => u.union_token.span,
            Data::Enum(_) => unreachable!(),
        };
        return Err(syn::Error::new(
            span,
            "`LabelValue` is derived for enums without fields; a struct of labels derives \
             `LabelSet`",
        ));
    };
    let mut arms = Vec::new();
    for variant in &data.variants {
        if !matches!(variant.fields, Fields::Unit) {
            return Err(syn::Error::new_spanned(
                &variant.fields,
                "a `LabelValue` enum's variants have no fields: each variant is one label value",
            ));
        }
        let variant_attr = label_attr(&variant.attrs, Place::Variant)?;
        let ident = &variant.ident;
        let value = variant_attr
            .value
            .unwrap_or_else(|| LitStr::new(&ident.unraw().to_string(), ident.span()));
        arms.push(quote!(Self::#ident => #value,));
    }
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let body = if arms.is_empty() {
        // An enum without variants has no values: nothing to visit.
        quote!(match *self {})
    } else {
        quote!(visit(match self { #(#arms)* });)
    };
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics #krate::LabelValue for #name #ty_generics #where_clause {
            fn visit_value(&self, visit: &mut dyn ::core::ops::FnMut(&str)) {
                #body
            }
        }
    })
}

/// Parses the derive input, or gives the parse error as tokens.
pub(crate) fn expand(
    input: TokenStream,
    derive: fn(DeriveInput) -> syn::Result<TokenStream>,
) -> TokenStream {
    syn::parse2::<DeriveInput>(input)
        .and_then(derive)
        .unwrap_or_else(syn::Error::into_compile_error)
}
