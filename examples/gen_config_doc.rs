//! Rewrites docs/configuration.md, and the key table of README.md between its config-keys
//! markers, from the key table (`cargo run --example gen_config_doc`, or `make config-doc`).
use std::path::Path;

const BEGIN: &str = "<!-- config-keys:begin -->";
const END: &str = "<!-- config-keys:end -->";

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join(rmq::config::reference::PATH);
    std::fs::write(&path, rmq::config::reference::render())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    println!("wrote {}", path.display());

    let readme_path = root.join("README.md");
    let readme = std::fs::read_to_string(&readme_path).expect("README.md is readable");
    let (head, rest) = readme
        .split_once(BEGIN)
        .expect("README has the begin marker");
    let (_, tail) = rest.split_once(END).expect("README has the end marker");
    let mut table = String::from("\n| key | default | meaning |\n|---|---|---|\n");
    for key in rmq::config::CONFIG_KEYS {
        let default = if key.default.is_empty() {
            String::new()
        } else {
            format!("`{}`", key.default)
        };
        table.push_str(&format!(
            "| `{}` | {} | {} |\n",
            key.name, default, key.description
        ));
    }
    std::fs::write(&readme_path, format!("{head}{BEGIN}{table}{END}{tail}"))
        .expect("README.md is writable");
    println!("wrote {}", readme_path.display());
}
