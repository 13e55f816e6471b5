package rmq

/*
#include "rmq.h"
*/
import "C"

import (
	"runtime"
	"sort"
)

// ConfigKey is one configuration key the library accepts (rmq_config_keys).
type ConfigKey struct {
	// Name is the key, e.g. "producer.group".
	Name string
	// Default is the default value; "" when the key has none.
	Default string
	// Description says what the key does.
	Description string
}

// ConfigKeys returns every configuration key the library accepts, from the library's own
// table, in its order. Use the names as keys of the map given to NewProducer.
func ConfigKeys() []ConfigKey {
	var n C.size_t
	keys := C.rmq_config_keys(&n)
	out := make([]ConfigKey, 0, int(n))
	for _, k := range unsafeSlice(keys, n) {
		out = append(out, ConfigKey{
			Name:        C.GoString(k.name),
			Default:     C.GoString(k.default_value),
			Description: C.GoString(k.description),
		})
	}
	return out
}

// withConfig builds a C configuration from config (keys in sorted order, so the first bad key
// reported is always the same) and lends it to create, on one locked OS thread; the
// configuration is freed afterwards. An unknown key fails with StatusUnknownConfigKey, a bad
// value with StatusInvalidConfigValue.
func withConfig(config map[string]string, create func(cfg *C.rmq_config_t) C.rmq_status_t) error {
	keys := make([]string, 0, len(config))
	for k := range config {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cfg := C.rmq_config_create()
	if cfg == nil {
		return lastError(C.rmq_last_error_status())
	}
	// Deferred calls run after the return values (and so the error message) are evaluated.
	defer C.rmq_config_destroy(cfg)
	for _, k := range keys {
		ck, err := cString("config key "+k, k)
		if err != nil {
			return err
		}
		cv, err := cString("value of config key "+k, config[k])
		if err != nil {
			return err
		}
		if err := check(C.rmq_config_set(cfg, ck, cv)); err != nil {
			return err
		}
	}
	return check(create(cfg))
}
