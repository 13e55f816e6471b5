package rmq

// This file holds the //export of queue selectors, so its preamble may only declare (cgo rule);
// the C side of the trampoline is in ordered.go.

/*
#include <stdint.h>
#include "rmq.h"
*/
import "C"

import (
	"fmt"
	"runtime/cgo"
	"unsafe"
)

// rmqGoSelect runs a SelectorFunc for the library, on the goroutine that called
// SendSyncSelect or SendAsyncSelect (the library calls selectors on the calling thread). The
// queues and the message are borrowed until it returns. A panic is recovered and reported as
// the send's error; -1 makes the library fail the send with StatusQueueSelector.
//
//export rmqGoSelect
func rmqGoSelect(queues *C.rmq_message_queue_t, count C.size_t, message *C.rmq_message_t, handle C.uintptr_t) (index C.int32_t) {
	call := cgo.Handle(handle).Value().(*selectCall)
	defer func() {
		if r := recover(); r != nil {
			call.failure = fmt.Sprintf("the queue selector panicked: %v", r)
			index = -1
		}
	}()
	views := unsafe.Slice(queues, int(count))
	qs := make([]MessageQueue, len(views))
	for i, v := range views {
		qs[i] = MessageQueue{
			Topic:      goString(v.topic, v.topic_len),
			BrokerName: goString(v.broker_name, v.broker_name_len),
			QueueID:    int32(v.queue_id),
		}
	}
	// The caller's message is read-locked by the send; the selector reads it through this
	// borrowed wrapper, which takes no lock of its own and is closed when the selector returns.
	borrowed := &Message{h: message}
	defer func() {
		borrowed.mu.Lock()
		borrowed.closed = true
		borrowed.mu.Unlock()
	}()
	i := call.fn(qs, borrowed)
	if i < 0 || i >= len(qs) {
		call.failure = fmt.Sprintf("the queue selector returned %d for %d queue(s)", i, len(qs))
		return -1
	}
	return C.int32_t(i)
}
