package rmq

/*
#include <stdint.h>
#include "rmq.h"

// Defined in select_callback.go and callback.go (//export).
extern int32_t rmqGoSelect(rmq_message_queue_t *queues, size_t count, rmq_message_t *message, uintptr_t handle);
extern void rmqGoSendCallback(rmq_send_callback_params_t *params, uintptr_t handle);

static int32_t rmq_go_select_trampoline(const rmq_message_queue_t *queues, size_t count,
                                        const rmq_message_t *message, void *arg) {
	return rmqGoSelect((rmq_message_queue_t *)queues, count, (rmq_message_t *)message, (uintptr_t)arg);
}

static void rmq_go_ordered_send_trampoline(const rmq_send_callback_params_t *params, void *user_data) {
	rmqGoSendCallback((rmq_send_callback_params_t *)params, (uintptr_t)user_data);
}

static rmq_queue_selector_t rmq_go_selector(int32_t kind, const char *key, size_t key_len, uintptr_t select) {
	rmq_queue_selector_t s = {kind, key, key_len, kind == RMQ_SELECTOR_CALLBACK ? rmq_go_select_trampoline : NULL,
	                          (void *)select};
	return s;
}

static rmq_status_t rmq_go_send_sync_select(rmq_producer_t *p, const rmq_message_t *m, int32_t kind,
                                            const char *key, size_t key_len, uintptr_t select,
                                            rmq_send_result_t **out) {
	rmq_queue_selector_t s = rmq_go_selector(kind, key, key_len, select);
	return rmq_producer_send_sync_select(p, m, &s, out);
}

static rmq_status_t rmq_go_send_async_select(rmq_producer_t *p, const rmq_message_t *m, int32_t kind,
                                             const char *key, size_t key_len, uintptr_t select,
                                             uintptr_t callback) {
	rmq_queue_selector_t s = rmq_go_selector(kind, key, key_len, select);
	return rmq_producer_send_async_select(p, m, &s, rmq_go_ordered_send_trampoline, (void *)callback);
}

static rmq_status_t rmq_go_send_sync_to_queue(rmq_producer_t *p, const rmq_message_t *m, const char *topic,
                                              size_t topic_len, const char *broker, size_t broker_len,
                                              int32_t queue_id, rmq_send_result_t **out) {
	rmq_message_queue_t q = {topic, topic_len, broker, broker_len, queue_id};
	return rmq_producer_send_sync_to_queue(p, m, &q, out);
}

static rmq_status_t rmq_go_send_async_to_queue(rmq_producer_t *p, const rmq_message_t *m, const char *topic,
                                               size_t topic_len, const char *broker, size_t broker_len,
                                               int32_t queue_id, uintptr_t callback) {
	rmq_message_queue_t q = {topic, topic_len, broker, broker_len, queue_id};
	return rmq_producer_send_async_to_queue(p, m, &q, rmq_go_ordered_send_trampoline, (void *)callback);
}
*/
import "C"

import (
	"runtime"
	"runtime/cgo"
)

// MessageQueue is a queue of a topic on a broker.
type MessageQueue struct {
	Topic      string
	BrokerName string
	QueueID    int32
}

// QueueSelector chooses the queue of an ordered send: HashSelector, RandomSelector,
// RoundRobinSelector, or a SelectorFunc.
type QueueSelector interface {
	selector() (kind C.int32_t, key string, fn SelectorFunc)
}

// SelectorFunc returns the index in queues (the topic's writable queues, sorted by broker name
// and queue id, as Java lists them) of the queue msg goes to. It runs on the goroutine that
// called SendSyncSelect or SendAsyncSelect, before that call returns. msg is the message being
// sent, borrowed for the call: read it, do not modify or keep it. An index out of range, or a
// panic (recovered), fails the send with StatusQueueSelector; nothing is sent.
type SelectorFunc func(queues []MessageQueue, msg *Message) int

func (f SelectorFunc) selector() (C.int32_t, string, SelectorFunc) {
	return C.RMQ_SELECTOR_CALLBACK, "", f
}

type builtinSelector struct {
	kind C.int32_t
	key  string
}

func (b builtinSelector) selector() (C.int32_t, string, SelectorFunc) { return b.kind, b.key, nil }

// HashSelector puts every message of key on one queue: the one Java's
// SelectMessageQueueByHash picks (abs(key.hashCode() % n), Java's String.hashCode), so Java
// producers agree with it.
func HashSelector(key string) QueueSelector { return builtinSelector{C.RMQ_SELECTOR_HASH, key} }

// RandomSelector picks a random queue.
func RandomSelector() QueueSelector { return builtinSelector{kind: C.RMQ_SELECTOR_RANDOM} }

// RoundRobinSelector picks the next queue of the producer's round-robin counter.
func RoundRobinSelector() QueueSelector { return builtinSelector{kind: C.RMQ_SELECTOR_ROUND_ROBIN} }

// selectCall is what a SelectorFunc's trampoline needs, and what it reports back.
type selectCall struct {
	fn      SelectorFunc
	failure string
}

// withSelector lends sel to C for one call as (kind, key, handle) and turns a failure of a
// SelectorFunc into its own message.
func withSelector(sel QueueSelector, f func(kind C.int32_t, key *C.char, keyLen C.size_t, handle C.uintptr_t) C.rmq_status_t) error {
	if sel == nil {
		return invalidArgument("selector is nil")
	}
	kind, key, fn := sel.selector()
	var handle cgo.Handle
	call := &selectCall{fn: fn}
	if fn != nil {
		handle = cgo.NewHandle(call)
		defer handle.Delete()
	}
	ck, kn := cText(key)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := f(kind, ck, kn, C.uintptr_t(handle))
	runtime.KeepAlive(key)
	if st == C.RMQ_ERR_QUEUE_SELECTOR && call.failure != "" {
		return newError(int(st), call.failure)
	}
	return check(st)
}

// SendSyncSelect sends msg to the queue sel chooses and waits for the broker's answer. One
// attempt: an ordered send is never retried on another queue.
func (p *Producer) SendSyncSelect(msg *Message, sel QueueSelector) (*SendResult, error) {
	var res *SendResult
	err := p.use(func(ph *C.rmq_producer_t) error {
		return msg.withHandle(func(mh *C.rmq_message_t) error {
			var r *C.rmq_send_result_t
			err := withSelector(sel, func(kind C.int32_t, key *C.char, kn C.size_t, h C.uintptr_t) C.rmq_status_t {
				return C.rmq_go_send_sync_select(ph, mh, kind, key, kn, h, &r)
			})
			if err != nil {
				return err
			}
			defer C.rmq_send_result_destroy(r)
			res, err = copySendResult(r)
			return err
		})
	})
	return res, err
}

// SendAsyncSelect is the async SendSyncSelect: sel runs on this goroutine before the call
// returns; the send then goes to that queue in the background, transport failures retried on
// the same queue. callback as for SendAsync.
func (p *Producer) SendAsyncSelect(msg *Message, sel QueueSelector, callback func(*SendResult, error)) error {
	if callback == nil {
		return invalidArgument("callback is nil")
	}
	return p.use(func(ph *C.rmq_producer_t) error {
		return msg.withHandle(func(mh *C.rmq_message_t) error {
			cb := cgo.NewHandle(callback)
			liveAsyncHandles.Add(1)
			err := withSelector(sel, func(kind C.int32_t, key *C.char, kn C.size_t, h C.uintptr_t) C.rmq_status_t {
				return C.rmq_go_send_async_select(ph, mh, kind, key, kn, h, C.uintptr_t(cb))
			})
			if err != nil {
				cb.Delete()
				liveAsyncHandles.Add(-1)
			}
			return err
		})
	})
}

// SendSyncToQueue sends msg to q (of msg's topic) and waits for the broker's answer; one attempt.
func (p *Producer) SendSyncToQueue(msg *Message, q MessageQueue) (*SendResult, error) {
	var res *SendResult
	err := p.use(func(ph *C.rmq_producer_t) error {
		return msg.withHandle(func(mh *C.rmq_message_t) error {
			ct, tn := cText(q.Topic)
			cb, bn := cText(q.BrokerName)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var r *C.rmq_send_result_t
			st := C.rmq_go_send_sync_to_queue(ph, mh, ct, tn, cb, bn, C.int32_t(q.QueueID), &r)
			runtime.KeepAlive(q)
			if err := check(st); err != nil {
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

// SendAsyncToQueue sends msg to q without waiting, transport failures retried on q; callback
// as for SendAsync.
func (p *Producer) SendAsyncToQueue(msg *Message, q MessageQueue, callback func(*SendResult, error)) error {
	if callback == nil {
		return invalidArgument("callback is nil")
	}
	return p.use(func(ph *C.rmq_producer_t) error {
		return msg.withHandle(func(mh *C.rmq_message_t) error {
			h := cgo.NewHandle(callback)
			liveAsyncHandles.Add(1)
			ct, tn := cText(q.Topic)
			cb, bn := cText(q.BrokerName)
			err := call(func() C.rmq_status_t {
				return C.rmq_go_send_async_to_queue(ph, mh, ct, tn, cb, bn, C.int32_t(q.QueueID), C.uintptr_t(h))
			})
			runtime.KeepAlive(q)
			if err != nil {
				h.Delete()
				liveAsyncHandles.Add(-1)
			}
			return err
		})
	})
}
