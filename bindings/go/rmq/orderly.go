package rmq

/*
#include <stdint.h>
#include "rmq.h"

// Defined in orderly_export.go (//export), with the exact C types cgo gives it there.
extern rmq_consume_orderly_status_t rmqGoConsumeOrderly(rmq_received_message_t **msgs, size_t count,
                                                        rmq_consume_orderly_context_t *ctx, uintptr_t handle);

static rmq_consume_orderly_status_t rmq_go_consume_orderly_trampoline(const rmq_received_message_t *const *msgs,
                                                                      size_t count,
                                                                      rmq_consume_orderly_context_t *ctx,
                                                                      void *user_data) {
	return rmqGoConsumeOrderly((rmq_received_message_t **)msgs, count, ctx, (uintptr_t)user_data);
}

static rmq_status_t rmq_go_set_orderly_listener(rmq_push_consumer_t *consumer, uintptr_t handle) {
	return rmq_push_consumer_set_orderly_listener(consumer, rmq_go_consume_orderly_trampoline, (void *)handle);
}
*/
import "C"

import "time"

// OrderlyResult is what an orderly handler says about its batch: OrderlySuccess or
// SuspendCurrentQueue(d). The zero value is OrderlySuccess.
type OrderlyResult struct {
	suspend bool
	after   time.Duration
}

// OrderlySuccess: the batch is consumed; the queue goes on with its next messages.
var OrderlySuccess = OrderlyResult{}

// SuspendCurrentQueue stops the batch's queue for d and then delivers the same messages again,
// in the same order; other queues go on meanwhile. d <= 0 means
// consumer.suspend-current-queue-time-millis; d is kept within 10 ms..30 s. After
// consumer.max-reconsume-times suspensions a message goes to the dead-letter queue instead.
func SuspendCurrentQueue(d time.Duration) OrderlyResult {
	return OrderlyResult{suspend: true, after: d}
}

// IsSuccess tells OrderlySuccess from SuspendCurrentQueue.
func (r OrderlyResult) IsSuccess() bool { return !r.suspend }

// OrderlyHandler consumes a batch of one queue's messages, in queue order. Calls for one queue
// never overlap; calls for different queues run at once on the consumer's own threads. A panic
// counts as SuspendCurrentQueue(0) and goes no further.
type OrderlyHandler func(msgs []*ReceivedMessage) OrderlyResult

// StartOrderly starts an orderly consumer: each queue is locked at its broker before it is
// consumed (and again every 20 s), so no other consumer of the group gets its messages, and it
// is unlocked after its offset is committed when a rebalance moves it and at shutdown. The
// handler gets each queue's messages one batch at a time, in order. Use Start, Messages or
// StartOrderly, once.
func (c *PushConsumer) StartOrderly(handler OrderlyHandler) error {
	if handler == nil {
		return invalidArgument("handler is nil")
	}
	return c.startWith(
		func(h *C.rmq_push_consumer_t, self C.uintptr_t) C.rmq_status_t {
			return C.rmq_go_set_orderly_listener(h, self)
		},
		func() { c.orderly = handler })
}

// deliverOrderly runs on a consumer thread (through rmqGoConsumeOrderly).
func (c *PushConsumer) deliverOrderly(batch []*ReceivedMessage) OrderlyResult {
	c.enterHandler()
	defer c.leaveHandler()
	return c.orderly(batch)
}
