package rmq

// This file holds the //export of the orderly listener, so its preamble may only declare (cgo
// rule); the C side of the trampoline is in orderly.go.

/*
#include <stdint.h>
#include "rmq.h"
*/
import "C"

import (
	"runtime/cgo"
	"time"
	"unsafe"
)

// rmqGoConsumeOrderly receives every batch of every orderly consumer, on one of that
// consumer's library threads ("rmq-c<id>-N"). The messages are borrowed until it returns, so
// they are copied before the handler runs. It never panics back into C: a panic in the handler
// (or while copying) is recovered and suspends the queue for the configured time.
//
//export rmqGoConsumeOrderly
func rmqGoConsumeOrderly(msgs **C.rmq_received_message_t, count C.size_t, ctx *C.rmq_consume_orderly_context_t, handle C.uintptr_t) (status C.rmq_consume_orderly_status_t) {
	status = C.RMQ_CONSUME_ORDERLY_SUSPEND
	defer func() {
		if r := recover(); r != nil {
			status = C.RMQ_CONSUME_ORDERLY_SUSPEND
		}
	}()
	c := cgo.Handle(handle).Value().(*PushConsumer)
	views := unsafe.Slice(msgs, int(count))
	batch := make([]*ReceivedMessage, 0, len(views))
	for _, v := range views {
		m, err := copyReceived(v)
		if err != nil {
			return C.RMQ_CONSUME_ORDERLY_SUSPEND
		}
		batch = append(batch, m)
	}
	res := c.deliverOrderly(batch)
	if !res.suspend {
		return C.RMQ_CONSUME_ORDERLY_SUCCESS
	}
	if res.after > 0 {
		ms := res.after / time.Millisecond
		if ms < 10 {
			ms = 10
		} else if ms > 30000 {
			ms = 30000
		}
		ctx.suspend_millis = C.int64_t(ms)
	}
	return C.RMQ_CONSUME_ORDERLY_SUSPEND
}
