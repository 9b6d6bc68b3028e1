//! Declares the `loom` cfg (a model-checking build of the synchronization
//! seam: `RUSTFLAGS="--cfg loom" cargo test -p ringlet-executor --lib loom`).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(loom)");
}
