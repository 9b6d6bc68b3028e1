//! Ringlet's entry attribute, `#[ringlet::main]`; use it through the
//! `ringlet` crate, which re-exports it.
//!
//! ```text
//! #[ringlet::main]
//! async fn main(env: ringlet::Env) -> Result<(), MyError> { ... }
//! ```
//!
//! The function must be `async`, take no argument or one (`ringlet::Env`),
//! and return `()` or a `Result<(), E>` with `E: Display` (anything that
//! implements `ringlet::rt::MainResult`). The attribute keeps it (renamed)
//! and generates both entries, chosen by `cfg` in the appliance's crate:
//!
//! - `target_os = "none"`: `ringlet_pvh_main`, the symbol the PVH boot path
//!   calls once the hypervisor is set up; it runs
//!   `ringlet::rt::pvh_main` (executor, main, poweroff or crash). Exporting
//!   an unmangled symbol counts as `unsafe_code`, so the generated item
//!   allows it: an appliance may `#![deny(unsafe_code)]`, not `forbid`.
//! - otherwise: `fn main()`, which runs the same function on the software
//!   Xen with `ringlet::rt::sim_main`.
//!
//! The crate itself needs `#![cfg_attr(target_os = "none", no_std, no_main)]`
//! (an attribute macro cannot add crate attributes) and a build script that
//! passes the kernel linker script (see the `ringlet` crate's docs).
#![deny(unsafe_code)]
#![warn(missing_docs)]

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::{parse_macro_input, spanned::Spanned, Error, Ident, ItemFn};

/// Turns `async fn main` into a Ringlet appliance entry (see the crate docs).
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    if !args.is_empty() {
        let args = proc_macro2::TokenStream::from(args);
        return Error::new(args.span(), "#[ringlet::main] takes no arguments")
            .to_compile_error()
            .into();
    }
    let function = parse_macro_input!(item as ItemFn);
    match expand(function) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

fn expand(mut function: ItemFn) -> Result<proc_macro2::TokenStream, Error> {
    let signature = &function.sig;
    if signature.asyncness.is_none() {
        return Err(Error::new(
            signature.fn_token.span(),
            "#[ringlet::main] needs an `async fn`",
        ));
    }
    if signature.ident != "main" {
        return Err(Error::new(
            signature.ident.span(),
            "#[ringlet::main] goes on `async fn main`",
        ));
    }
    if !signature.generics.params.is_empty() || signature.generics.where_clause.is_some() {
        return Err(Error::new(
            signature.generics.span(),
            "`main` cannot be generic",
        ));
    }
    let takes_env = match signature.inputs.len() {
        0 => false,
        1 => true,
        _ => {
            return Err(Error::new(
                signature.inputs.span(),
                "`main` takes no argument or one `ringlet::Env`",
            ))
        }
    };
    let inner = Ident::new("__ringlet_main", Span::call_site());
    function.sig.ident = inner.clone();
    let call = if takes_env {
        quote!(|env: ::ringlet::Env| #inner(env))
    } else {
        quote!(|_env: ::ringlet::Env| #inner())
    };
    Ok(quote! {
        #function

        #[cfg(target_os = "none")]
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        fn ringlet_pvh_main(xen: ::ringlet::xen::pvh::Pvh) -> ! {
            ::ringlet::rt::pvh_main(xen, #call)
        }

        #[cfg(not(target_os = "none"))]
        fn main() -> ::std::process::ExitCode {
            ::ringlet::rt::sim_main(::core::env!("CARGO_PKG_NAME"), #call)
        }
    })
}

#[cfg(test)]
mod test {
    use super::*;

    fn expand_str(source: &str) -> Result<String, String> {
        let function: ItemFn = syn::parse_str(source).map_err(|e| e.to_string())?;
        expand(function)
            .map(|t| t.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn generates_both_entries_and_renames_main() {
        let out =
            expand_str("async fn main(env: ringlet::Env) -> Result<(), E> { run(env).await }")
                .unwrap();
        assert!(
            out.contains("async fn __ringlet_main (env : ringlet :: Env)"),
            "{out}"
        );
        assert!(out.contains("fn ringlet_pvh_main"), "{out}");
        assert!(out.contains("no_mangle"), "{out}");
        assert!(out.contains(":: ringlet :: rt :: pvh_main"), "{out}");
        assert!(out.contains(":: ringlet :: rt :: sim_main"), "{out}");
        assert!(out.contains("__ringlet_main (env)"), "{out}");
    }

    #[test]
    fn main_without_env() {
        let out = expand_str("async fn main() {}").unwrap();
        assert!(
            out.contains("| _env : :: ringlet :: Env | __ringlet_main ()"),
            "{out}"
        );
    }

    #[test]
    fn rejects_what_it_cannot_run() {
        assert!(expand_str("fn main() {}").unwrap_err().contains("async fn"));
        assert!(expand_str("async fn start() {}")
            .unwrap_err()
            .contains("async fn main"));
        assert!(expand_str("async fn main(a: u8, b: u8) {}")
            .unwrap_err()
            .contains("no argument or one"));
        assert!(expand_str("async fn main<T>() {}")
            .unwrap_err()
            .contains("generic"));
    }
}
