package rmq

// This file holds the //export, so its preamble may only declare (cgo rule); the C side of
// the trampoline is in producer.go.

/*
#include <stdint.h>
#include "rmq.h"
*/
import "C"

import "runtime/cgo"

// rmqGoSendCallback receives every async send completion, on a library "rmq-callback-N"
// thread. params and the result in it are borrowed until this returns, so the result is
// copied before the user's callback runs.
//
//export rmqGoSendCallback
func rmqGoSendCallback(params *C.rmq_send_callback_params_t, handle C.uintptr_t) {
	h := cgo.Handle(handle)
	callback := h.Value().(func(*SendResult, error))
	h.Delete()
	liveAsyncHandles.Add(-1)

	var res *SendResult
	var err error
	if params.status == C.RMQ_OK {
		res, err = copySendResult(params.result)
	} else {
		e := newError(int(params.status), C.GoString(params.error_message))
		e.BrokerCode = int(params.broker_code)
		err = e
	}
	callback(res, err)
}
