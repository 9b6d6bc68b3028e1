//! The hello appliance (boot test stage).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use ringlet::executor::{sleep, Duration, Instant};

#[ringlet::main]
async fn main(env: ringlet::Env) {
    log::info!("hello from ringlet on {}", env.hypervisor());
    if env.cmdline_has("panic") {
        panic!("ringlet-hello: panic requested on the command line");
    }
    let want = Duration::from_millis(100);
    let start = Instant::now();
    sleep(want).await;
    let took = start.elapsed();
    log::info!(
        "hello: slept {} ms, late by {} us",
        want.as_millis(),
        took.as_micros() as i128 - want.as_micros() as i128
    );
}
