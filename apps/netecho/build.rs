//! Links the PVH kernel with Ringlet's linker script on x86_64-unknown-none.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let script = std::env::var("DEP_RINGLET_LINKER_SCRIPT")
            .expect("the ringlet crate publishes its linker script (links = \"ringlet\")");
        println!("cargo::rustc-link-arg-bins=-T{script}");
        println!("cargo::rustc-link-arg-bins=--no-pie");
    }
}
