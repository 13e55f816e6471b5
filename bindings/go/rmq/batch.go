package rmq

/*
#include <stdint.h>
#include "rmq.h"

// Defined in callback.go (//export).
extern void rmqGoSendCallback(rmq_send_callback_params_t *params, uintptr_t handle);

static void rmq_go_batch_send_trampoline(const rmq_send_callback_params_t *params, void *user_data) {
	rmqGoSendCallback((rmq_send_callback_params_t *)params, (uintptr_t)user_data);
}

static rmq_status_t rmq_go_send_batch_async(rmq_producer_t *p, const rmq_message_t *const *messages,
                                            size_t count, uintptr_t handle) {
	return rmq_producer_send_batch_async(p, messages, count, rmq_go_batch_send_trampoline, (void *)handle);
}
*/
import "C"

import (
	"runtime"
	"strings"
	"time"
)

// withHandles lends the handles of msgs to f, each message read-locked (once, even when it
// appears several times) and kept open meanwhile.
func withHandles(msgs []*Message, f func(hs []*C.rmq_message_t) error) error {
	hs := make([]*C.rmq_message_t, len(msgs))
	locked := make(map[*Message]bool, len(msgs))
	defer func() {
		for m := range locked {
			m.mu.RUnlock()
		}
	}()
	for i, m := range msgs {
		if m == nil {
			return invalidArgument("message %d is nil", i)
		}
		if !locked[m] {
			m.mu.RLock()
			locked[m] = true
		}
		if m.closed {
			return errMessageClosed()
		}
		hs[i] = m.h
	}
	return f(hs)
}

func handlesPtr(hs []*C.rmq_message_t) **C.rmq_message_t {
	if len(hs) == 0 {
		return nil
	}
	return &hs[0]
}

// SendBatch sends msgs, all of one topic, in one request and waits for the broker's answer,
// retrying on another broker as SendSync does. Java's rules hold: at least one message, one
// topic, no %RETRY% topic, no delay, the same WAIT flag; bodies are not compressed, and the
// encoded batch must fit producer.max-message-size (see SplitBatches). A broken rule fails with
// StatusInvalidArgument (or StatusMessageTooLarge) before anything is sent. The result's MsgIDs
// and OffsetMsgIDs list each message's ids in the order of msgs.
func (p *Producer) SendBatch(msgs []*Message) (*SendResult, error) {
	var res *SendResult
	err := p.use(func(ph *C.rmq_producer_t) error {
		return withHandles(msgs, func(hs []*C.rmq_message_t) error {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var r *C.rmq_send_result_t
			if err := check(C.rmq_producer_send_batch(ph, handlesPtr(hs), C.size_t(len(hs)), &r)); err != nil {
				return err
			}
			defer C.rmq_send_result_destroy(r)
			var err error
			res, err = copySendResult(r)
			return err
		})
	})
	return res, err
}

// SendBatchAsync sends msgs, all of one topic, in one request without waiting: the rules and
// result of SendBatch, the callback, retries and in-flight window of SendAsync (the batch holds
// one slot). If it returns nil, callback is called exactly once later, on a library callback
// thread; if it returns an error (a broken batch rule among them), nothing was sent and
// callback is never called. The messages may be modified or closed as soon as it returns.
func (p *Producer) SendBatchAsync(msgs []*Message, callback func(*SendResult, error)) error {
	if callback == nil {
		return invalidArgument("callback is nil")
	}
	return p.use(func(ph *C.rmq_producer_t) error {
		return withHandles(msgs, func(hs []*C.rmq_message_t) error {
			return submitAsync(callback, func(h C.uintptr_t) C.rmq_status_t {
				return C.rmq_go_send_batch_async(ph, handlesPtr(hs), C.size_t(len(hs)), h)
			})
		})
	})
}

// SplitBatches cuts msgs into consecutive batches that each fit producer.max-message-size, in
// order, for SendBatch. A message too large on its own fails with StatusMessageTooLarge. Only
// sizes are checked; the other batch rules are checked by SendBatch.
func (p *Producer) SplitBatches(msgs []*Message) ([][]*Message, error) {
	var batches [][]*Message
	err := p.use(func(ph *C.rmq_producer_t) error {
		return withHandles(msgs, func(hs []*C.rmq_message_t) error {
			lengths := make([]C.size_t, len(hs)+1)
			var n C.size_t
			err := call(func() C.rmq_status_t {
				return C.rmq_producer_split_batch(ph, handlesPtr(hs), C.size_t(len(hs)), &lengths[0], C.size_t(len(hs)), &n)
			})
			if err != nil {
				return err
			}
			start := 0
			for _, l := range lengths[:n] {
				batches = append(batches, msgs[start:start+int(l)])
				start += int(l)
			}
			return nil
		})
	})
	return batches, err
}

// MsgIDs are the message ids (UNIQ_KEY), one per message stored: several for a batch, in its
// order.
func (r *SendResult) MsgIDs() []string { return strings.Split(r.MsgID, ",") }

// OffsetMsgIDs are the store ids (for ViewMessage), in the order of MsgIDs.
func (r *SendResult) OffsetMsgIDs() []string { return strings.Split(r.OffsetMsgID, ",") }

// SetDelayLevel delays delivery by one of the broker's delay levels: 1 (1 s) to 18 (2 h) in the
// broker's default table; 0 removes the delay. It replaces any timer set with SetDelay or
// SetDeliverTime; another level fails with StatusInvalidArgument.
func (m *Message) SetDelayLevel(level int) error {
	if level < -1<<31 || level > 1<<31-1 {
		return invalidArgument("delay level %d is out of range", level)
	}
	return m.write(func(h *C.rmq_message_t) error {
		return call(func() C.rmq_status_t { return C.rmq_message_set_delay_level(h, C.int32_t(level)) })
	})
}

// DelayLevel is the delay level set on the message, 0 for none.
func (m *Message) DelayLevel() int {
	var v C.int32_t
	m.read(func(h *C.rmq_message_t) { C.rmq_message_delay_level(h, &v) })
	return int(v)
}

// SetDelay delivers d after the broker stores the message (a 5.x timer message, in whole
// milliseconds; the broker rounds down to its timer precision, 1 s by default). 0 removes the
// delay; a negative d fails with StatusInvalidArgument. It replaces any other delay.
func (m *Message) SetDelay(d time.Duration) error {
	return m.write(func(h *C.rmq_message_t) error {
		return call(func() C.rmq_status_t { return C.rmq_message_set_delay_ms(h, C.int64_t(d.Milliseconds())) })
	})
}

// SetDeliverTime delivers at t (a 5.x timer message, in whole milliseconds; rounded as for
// SetDelay; a time in the past is delivered at once). The zero time removes the delay. It
// replaces any other delay.
func (m *Message) SetDeliverTime(t time.Time) error {
	var ms int64
	if !t.IsZero() {
		ms = t.UnixMilli()
	}
	return m.write(func(h *C.rmq_message_t) error {
		return call(func() C.rmq_status_t { return C.rmq_message_set_deliver_time_ms(h, C.int64_t(ms)) })
	})
}
