package rmq

// This file holds the //export of the consumer's listener, so its preamble may only declare
// (cgo rule); the C side of the trampoline is in consumer.go.

/*
#include <stdint.h>
#include "rmq.h"
*/
import "C"

import (
	"runtime/cgo"
	"unsafe"
)

// rmqGoConsume receives every batch of every consumer, on one of that consumer's library
// threads ("rmq-c<id>-N"). The messages are borrowed until it returns, so they are copied
// before the handler runs. It never panics back into C: a panic in the handler (or while
// copying) is recovered and counts as reconsume-later.
//
//export rmqGoConsume
func rmqGoConsume(msgs **C.rmq_received_message_t, count C.size_t, ctx *C.rmq_consume_context_t, handle C.uintptr_t) (status C.rmq_consume_status_t) {
	status = C.RMQ_CONSUME_RECONSUME_LATER
	defer func() {
		if r := recover(); r != nil {
			status = C.RMQ_CONSUME_RECONSUME_LATER
			ctx.delay_level = 0
		}
	}()
	c := cgo.Handle(handle).Value().(*PushConsumer)
	views := unsafe.Slice(msgs, int(count))
	batch := make([]*ReceivedMessage, 0, len(views))
	for _, v := range views {
		m, err := copyReceived(v)
		if err != nil {
			return C.RMQ_CONSUME_RECONSUME_LATER
		}
		batch = append(batch, m)
	}
	res := c.deliver(batch)
	if res.reconsume {
		ctx.delay_level = C.int32_t(res.delayLevel)
		return C.RMQ_CONSUME_RECONSUME_LATER
	}
	return C.RMQ_CONSUME_SUCCESS
}
