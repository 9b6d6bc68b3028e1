//! Publishes the PVH kernel linker script to appliances' build scripts as
//! `DEP_RINGLET_LINKER_SCRIPT` (this crate has `links = "ringlet"`).

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let script = std::path::Path::new(&dir).join("kernel.ld");
    println!("cargo::rerun-if-changed=kernel.ld");
    println!("cargo::metadata=linker_script={}", script.display());
}
