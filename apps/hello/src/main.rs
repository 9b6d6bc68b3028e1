//! The hello appliance.
fn main() {}
