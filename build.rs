//! Generates include/rmq.h from the FFI layer with cbindgen.
//!
//! The header is written to OUT_DIR first and copied over include/rmq.h only when its bytes
//! differ, so an unchanged API causes no rebuild churn and no dirty tree.
use std::{env, fs, path::PathBuf};

fn main() {
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=Cargo.toml");

    // The shared library's SONAME carries the ABI major version, so programs linked against
    // librmq.so.0 keep loading it across compatible releases (make install adds the symlinks).
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,librmq.so.0");
    }

    let version = env::var("CARGO_PKG_VERSION").unwrap();
    let mut parts = version
        .split('.')
        .map(|p| p.split('-').next().unwrap().parse::<u32>().unwrap());
    let (major, minor, patch) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );

    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml must parse");
    let version_block = format!(
        "\n#define RMQ_VERSION_MAJOR {major}\n#define RMQ_VERSION_MINOR {minor}\n#define RMQ_VERSION_PATCH {patch}\n\
         #define RMQ_VERSION_STRING \"{version}\"\n\
         /* MAJOR * 1000000 + MINOR * 1000 + PATCH, as rmq_version_number() returns */\n\
         #define RMQ_VERSION_NUMBER ({major} * 1000000 + {minor} * 1000 + {patch})\n"
    );
    config.after_includes = Some(config.after_includes.unwrap_or_default() + &version_block);

    // Only the FFI files: the core's public constants are not part of the C ABI.
    // Only the FFI module (cbindgen follows its `mod` items): the core's public constants are
    // not part of the C ABI.
    let builder = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/ffi/mod.rs"));
    let generated = match builder.generate() {
        Ok(bindings) => bindings,
        Err(err) => panic!("cbindgen failed: {err}"),
    };
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("rmq.h");
    generated.write_to_file(&out);
    // cbindgen ends its C++ guards with // comments; C89 has none, so they become /* */ and
    // the header compiles as C89 -pedantic too.
    let text = fs::read_to_string(&out).unwrap();
    let new_bytes = text
        .replace("#endif // __cplusplus", "#endif /* __cplusplus */")
        .replace("#endif  // __cplusplus", "#endif /* __cplusplus */")
        .replace("}  // extern \"C\"", "}  /* extern \"C\" */")
        .into_bytes();
    // The Go module carries its own copy, so a Go program needs the module's source alone.
    for target in [
        crate_dir.join("include").join("rmq.h"),
        crate_dir.join("bindings/go/rmq/rmq.h"),
    ] {
        if fs::read(&target).ok().as_deref() != Some(new_bytes.as_slice()) {
            fs::create_dir_all(target.parent().unwrap()).unwrap();
            fs::write(&target, &new_bytes).unwrap();
        }
    }
}
