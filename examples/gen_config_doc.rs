//! Rewrites docs/configuration.md from the key table (`cargo run --example gen_config_doc`).
fn main() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rmq::config::reference::PATH);
    std::fs::write(&path, rmq::config::reference::render())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    println!("wrote {}", path.display());
}
