//! Library version; the header's RMQ_VERSION_* macros come from the same Cargo.toml.
use std::ffi::c_char;

/// Static NUL-terminated version string, e.g. "0.1.0".
#[no_mangle]
pub extern "C" fn rmq_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

/// MAJOR * 1000000 + MINOR * 1000 + PATCH of the loaded library; compare with
/// RMQ_VERSION_NUMBER from the header you compiled against.
#[no_mangle]
pub extern "C" fn rmq_version_number() -> u32 {
    let num = |s: &str| s.parse::<u32>().unwrap_or(0);
    num(env!("CARGO_PKG_VERSION_MAJOR")) * 1_000_000
        + num(env!("CARGO_PKG_VERSION_MINOR")) * 1_000
        + num(env!("CARGO_PKG_VERSION_PATCH"))
}
