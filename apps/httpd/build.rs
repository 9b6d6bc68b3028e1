//! Links the PVH kernel with Ringlet's linker script on x86_64-unknown-none
//! (as apps/hello/build.rs does; see docs/boot.md).

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        // Without the `appliance` feature there is no binary and no `ringlet`
        // dependency, hence no script to pass.
        if std::env::var("CARGO_FEATURE_APPLIANCE").is_err() {
            return;
        }
        let script = std::env::var("DEP_RINGLET_LINKER_SCRIPT")
            .expect("the ringlet crate publishes its linker script (links = \"ringlet\")");
        println!("cargo::rustc-link-arg-bins=-T{script}");
        println!("cargo::rustc-link-arg-bins=--no-pie");
    }
}
