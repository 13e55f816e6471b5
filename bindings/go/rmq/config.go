package rmq

/*
#include "rmq.h"
*/
import "C"

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
