//! Ringlet's benchmarks.
fn main() {
    eprintln!("usage: cargo xtask bench <suite>");
}
