package rmq

// This file holds the //export, so its preamble may only declare (cgo rule); the C side of
// the trampoline is in request.go.

/*
#include <stdint.h>
#include "rmq.h"
*/
import "C"

import "runtime/cgo"

// rmqGoRequestCallback receives every async request completion, on a library
// "rmq-callback-N" thread. The reply in params is ours: it is wrapped into a *Message, which
// the user's callback owns.
//
//export rmqGoRequestCallback
func rmqGoRequestCallback(params *C.rmq_request_callback_params_t, handle C.uintptr_t) {
	h := cgo.Handle(handle)
	callback := h.Value().(func(*Message, error))
	h.Delete()
	liveAsyncHandles.Add(-1)

	if params.status == C.RMQ_OK && params.reply != nil {
		callback(wrapMessage(params.reply), nil)
		return
	}
	e := newError(int(params.status), C.GoString(params.error_message))
	e.BrokerCode = int(params.broker_code)
	callback(nil, e)
}
