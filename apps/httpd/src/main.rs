//! The httpd appliance (see the crate docs).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

#[ringlet::main]
async fn main(_env: ringlet::Env) {}
