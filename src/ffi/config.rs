//! rmq_config_*: configuration by string keys (see rmq_config_keys()).
use std::ffi::{c_char, CString};
use std::sync::Arc;

use parking_lot::Mutex;

use once_cell::sync::Lazy;

use super::boundary::*;
use super::handles::Registry;
use super::status::*;
use crate::config::{Config, CONFIG_KEYS};

/// A set of configuration values. Create with rmq_config_create, free with rmq_config_destroy.
/// Safe to use from several threads.
pub struct rmq_config_t {
    _private: [u8; 0],
}

pub(crate) static CONFIGS: Registry<Mutex<Config>> = Registry::new("config");

/// Creates an empty configuration (every key at its default).
/// Ownership: the caller owns the result; free it with rmq_config_destroy. NULL only if a panic
/// was caught (see rmq_last_error_message).
#[no_mangle]
pub extern "C" fn rmq_config_create() -> *mut rmq_config_t {
    guard_value(std::ptr::null_mut(), || {
        Ok(CONFIGS.insert(Arc::new(Mutex::new(Config::new()))))
    })
}

/// Frees a configuration. NULL is a no-op; destroying twice is an error the library detects
/// (nothing happens) but must not be relied on. Objects created from it keep their own copy.
#[no_mangle]
pub extern "C" fn rmq_config_destroy(config: *mut rmq_config_t) {
    guard_value((), || {
        CONFIGS.remove(config);
        Ok(())
    })
}

/// Sets `key` to `value`, both NUL-terminated UTF-8, borrowed for the call.
/// Fails with RMQ_ERR_UNKNOWN_CONFIG_KEY or RMQ_ERR_INVALID_CONFIG_VALUE; the old value stays.
#[no_mangle]
pub unsafe extern "C" fn rmq_config_set(
    config: *mut rmq_config_t,
    key: *const c_char,
    value: *const c_char,
) -> rmq_status_t {
    guard(|| {
        let cfg = CONFIGS.get(config)?;
        let key = arg_str(key, "key")?;
        let value = arg_str(value, "value")?;
        cfg.lock().set(key, value)?;
        Ok(())
    })
}

/// Copies the value of `key` (or its default) into `buf` as a NUL-terminated string and writes
/// its length without the NUL to *out_len. With a NULL or too small `buf` (cap <= length) it
/// writes only *out_len and returns RMQ_ERR_BUFFER_TOO_SMALL. RMQ_ERR_NOT_FOUND if the key is
/// unset and has no default.
#[no_mangle]
pub unsafe extern "C" fn rmq_config_get(
    config: *const rmq_config_t,
    key: *const c_char,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
) -> rmq_status_t {
    guard(|| {
        let cfg = CONFIGS.get(config)?;
        let key = arg_str(key, "key")?;
        let out_len = out_ptr(out_len, "out_len")?;
        let cfg = cfg.lock();
        if crate::config::find_key(key).is_none() {
            return Err(crate::Error::UnknownConfigKey(key.to_string()).into());
        }
        let value = cfg.get(key).ok_or_else(|| {
            FfiError::new(
                RMQ_ERR_NOT_FOUND,
                format!("'{key}' is not set and has no default"),
            )
        })?;
        *out_len = value.len();
        if buf.is_null() || cap <= value.len() {
            return Err(FfiError::new(
                RMQ_ERR_BUFFER_TOO_SMALL,
                format!("value of '{key}' needs {} bytes plus the NUL", value.len()),
            ));
        }
        std::ptr::copy_nonoverlapping(value.as_ptr(), buf as *mut u8, value.len());
        *buf.add(value.len()) = 0;
        Ok(())
    })
}

/// One configuration key (rmq_config_keys).
#[repr(C)]
pub struct rmq_config_key_t {
    /// Static NUL-terminated key, e.g. "producer.group".
    pub name: *const c_char,
    /// Static NUL-terminated default value; "" when the key has none.
    pub default_value: *const c_char,
    /// Static NUL-terminated description.
    pub description: *const c_char,
}

// SAFETY: pointers to leaked, immutable, process-lifetime strings.
unsafe impl Send for rmq_config_key_t {}
unsafe impl Sync for rmq_config_key_t {}

static KEYS: Lazy<Vec<rmq_config_key_t>> = Lazy::new(|| {
    let leak = |s: &str| CString::new(s).unwrap().into_raw() as *const c_char;
    CONFIG_KEYS
        .iter()
        .map(|k| rmq_config_key_t {
            name: leak(k.name),
            default_value: leak(k.default),
            description: leak(k.description),
        })
        .collect()
});

/// Every configuration key the library accepts. Returns a static array (never free it) and
/// writes its length to *out_count.
#[no_mangle]
pub unsafe extern "C" fn rmq_config_keys(out_count: *mut usize) -> *const rmq_config_key_t {
    if !out_count.is_null() {
        *out_count = KEYS.len();
    }
    KEYS.as_ptr()
}
