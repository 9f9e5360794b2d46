//! Parsing and checking `#[instrumented(...)]` arguments.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{bracketed, parenthesized, Ident, LitStr, Path, Token};

mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(buckets);
    syn::custom_keyword!(registry);
    syn::custom_keyword!(skip);
    syn::custom_keyword!(ok_if);
    syn::custom_keyword!(error_if);
    syn::custom_keyword!(labels);
}

/// The label names the macro sets itself, which constant labels may not reuse.
const RESERVED_LABELS: &[&str] = &["function", "module", "result", "le"];

/// The arguments of one `#[instrumented(...)]`.
#[derive(Default, Clone)]
pub(crate) struct Args {
    /// `name = "..."`: the `function` label.
    pub(crate) name: Option<(kw::name, String)>,
    /// `buckets = [...]`: duration bucket bounds in seconds, checked.
    pub(crate) buckets: Option<(kw::buckets, Vec<f64>)>,
    /// `registry = path`: a static that dereferences to a `Registry`.
    pub(crate) registry: Option<(kw::registry, Path)>,
    /// `skip`: leave this function alone.
    pub(crate) skip: Option<kw::skip>,
    /// `ok_if = path` or `error_if = path`: a predicate over the returned value.
    pub(crate) predicate: Option<Predicate>,
    /// `labels(key = "value", ...)`: constant labels.
    pub(crate) labels: Option<(kw::labels, Vec<(String, String)>)>,
    /// `crate = path`: where the core crate is, for a dependency renamed or re-exported.
    pub(crate) krate: Option<(Token![crate], Path)>,
}

/// A user predicate deciding the `result` label.
#[derive(Clone)]
pub(crate) enum Predicate {
    /// `ok_if = path`: `true` is ok, `false` is an error.
    OkIf(Path),
    /// `error_if = path`: `true` is an error, `false` is ok.
    ErrorIf(Path),
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args::default();
        while !input.is_empty() {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::name) {
                let keyword: kw::name = input.parse()?;
                once(&args.name, keyword.span, "name")?;
                input.parse::<Token![=]>()?;
                let lit: LitStr = input.parse()?;
                args.name = Some((keyword, check_function_name(&lit)?));
            } else if lookahead.peek(kw::buckets) {
                let keyword: kw::buckets = input.parse()?;
                once(&args.buckets, keyword.span, "buckets")?;
                input.parse::<Token![=]>()?;
                args.buckets = Some((keyword, parse_buckets(input)?));
            } else if lookahead.peek(kw::registry) {
                let keyword: kw::registry = input.parse()?;
                once(&args.registry, keyword.span, "registry")?;
                input.parse::<Token![=]>()?;
                args.registry = Some((keyword, input.parse()?));
            } else if lookahead.peek(kw::skip) {
                let keyword: kw::skip = input.parse()?;
                once(&args.skip, keyword.span, "skip")?;
                if input.peek(Token![=]) || input.peek(syn::token::Paren) {
                    return Err(syn::Error::new(input.span(), "`skip` takes no value"));
                }
                args.skip = Some(keyword);
            } else if lookahead.peek(kw::ok_if) || lookahead.peek(kw::error_if) {
                let ok = input.peek(kw::ok_if);
                let span = input.span();
                if ok {
                    input.parse::<kw::ok_if>()?;
                } else {
                    input.parse::<kw::error_if>()?;
                }
                let keyword = if ok { "ok_if" } else { "error_if" };
                if let Some(previous) = &args.predicate {
                    let message = match (previous, ok) {
                        (Predicate::OkIf(_), true) | (Predicate::ErrorIf(_), false) => {
                            format!("`{keyword}` is specified more than once")
                        }
                        _ => "`ok_if` and `error_if` cannot be used together: give one predicate"
                            .to_owned(),
                    };
                    return Err(syn::Error::new(span, message));
                }
                input.parse::<Token![=]>()?;
                let path: Path = input.parse()?;
                args.predicate = Some(if ok {
                    Predicate::OkIf(path)
                } else {
                    Predicate::ErrorIf(path)
                });
            } else if lookahead.peek(kw::labels) {
                let keyword: kw::labels = input.parse()?;
                once(&args.labels, keyword.span, "labels")?;
                args.labels = Some((keyword, parse_labels(input)?));
            } else if lookahead.peek(Token![crate]) {
                let keyword: Token![crate] = input.parse()?;
                once(&args.krate, keyword.span, "crate")?;
                input.parse::<Token![=]>()?;
                args.krate = Some((keyword, input.parse()?));
            } else {
                return Err(lookahead.error());
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}

/// The one error for an argument given twice, on the second keyword.
fn once<T>(previous: &Option<T>, span: Span, keyword: &str) -> syn::Result<()> {
    match previous {
        Some(_) => Err(syn::Error::new(
            span,
            format!("`{keyword}` is specified more than once"),
        )),
        None => Ok(()),
    }
}

fn check_function_name(lit: &LitStr) -> syn::Result<String> {
    let name = lit.value();
    if name.trim().is_empty() {
        return Err(syn::Error::new(
            lit.span(),
            "the function name cannot be empty",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(syn::Error::new(
            lit.span(),
            "the function name cannot contain control characters",
        ));
    }
    Ok(name)
}

/// `[0.005, 0.1, 1, 2.5e1]`: numbers, finite, strictly increasing.
fn parse_buckets(input: ParseStream<'_>) -> syn::Result<Vec<f64>> {
    let content;
    let bracket = bracketed!(content in input);
    let mut bounds: Vec<f64> = Vec::new();
    while !content.is_empty() {
        let negative = content.peek(Token![-]);
        let minus_span = if negative {
            Some(content.parse::<Token![-]>()?.span)
        } else {
            None
        };
        let lookahead = content.lookahead1();
        let (value, span) = if lookahead.peek(syn::LitFloat) {
            let lit: syn::LitFloat = content.parse()?;
            (lit.base10_parse::<f64>()?, lit.span())
        } else if lookahead.peek(syn::LitInt) {
            let lit: syn::LitInt = content.parse()?;
            (lit.base10_parse::<f64>()?, lit.span())
        } else {
            return Err(syn::Error::new(
                content.span(),
                "expected a number: bucket bounds are seconds, such as `0.25`",
            ));
        };
        let span = minus_span
            .and_then(|minus| minus.join(span))
            .unwrap_or(span);
        let value = if negative { -value } else { value };
        if !value.is_finite() {
            return Err(syn::Error::new(span, "a bucket bound must be finite"));
        }
        if let Some(&last) = bounds.last() {
            if value <= last {
                return Err(syn::Error::new(
                    span,
                    format!(
                        "bucket bounds must be strictly increasing: {value} is not above {last}"
                    ),
                ));
            }
        }
        bounds.push(value);
        if content.is_empty() {
            break;
        }
        content.parse::<Token![,]>()?;
    }
    if bounds.is_empty() {
        return Err(syn::Error::new(
            bracket.span.join(),
            "give at least one bucket bound",
        ));
    }
    Ok(bounds)
}

/// `(team = "billing", tier = "1")`: valid, unreserved, distinct label names.
fn parse_labels(input: ParseStream<'_>) -> syn::Result<Vec<(String, String)>> {
    let content;
    parenthesized!(content in input);
    let pairs = Punctuated::<(Ident, LitStr), Token![,]>::parse_terminated_with(&content, |p| {
        let key = Ident::parse_any(p)?;
        p.parse::<Token![=]>()?;
        Ok((key, p.parse()?))
    })?;
    let mut labels: Vec<(String, String)> = Vec::new();
    for (key, value) in pairs {
        let name = key.unraw().to_string();
        if name.starts_with("__") {
            return Err(syn::Error::new(
                key.span(),
                "label names starting with `__` are reserved for Prometheus",
            ));
        }
        if RESERVED_LABELS.contains(&name.as_str()) {
            return Err(syn::Error::new(
                key.span(),
                format!("`{name}` is a label #[instrumented] sets itself"),
            ));
        }
        if labels.iter().any(|(k, _)| *k == name) {
            return Err(syn::Error::new(
                key.span(),
                format!("the label `{name}` is specified more than once"),
            ));
        }
        labels.push((name, value.value()));
    }
    Ok(labels)
}

impl Args {
    /// This function's arguments given those of its `impl` block: the method's own win.
    pub(crate) fn inherit(self, outer: &Args) -> Args {
        Args {
            name: self.name,
            buckets: self.buckets.or_else(|| outer.buckets.clone()),
            registry: self.registry.or_else(|| outer.registry.clone()),
            skip: self.skip,
            predicate: self.predicate.or_else(|| outer.predicate.clone()),
            krate: self.krate.or_else(|| outer.krate.clone()),
            labels: match (self.labels, &outer.labels) {
                (Some((kw, mut own)), Some((_, theirs))) => {
                    for (k, v) in theirs {
                        if !own.iter().any(|(own_k, _)| own_k == k) {
                            own.push((k.clone(), v.clone()));
                        }
                    }
                    Some((kw, own))
                }
                (own, theirs) => own.or_else(|| theirs.clone()),
            },
        }
    }
}
