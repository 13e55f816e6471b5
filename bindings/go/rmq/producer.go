package rmq

/*
#include <stdlib.h>
#include "rmq.h"

// Defined in callback.go (//export). Declared here with the exact C types cgo gives it there.
extern void rmqGoSendCallback(rmq_send_callback_params_t *params, uintptr_t handle);

// The library passes a const params pointer and a void * user_data; the Go side takes the
// cgo.Handle as an integer so no integer ever travels through a Go unsafe.Pointer.
static void rmq_go_send_trampoline(const rmq_send_callback_params_t *params, void *user_data) {
	rmqGoSendCallback((rmq_send_callback_params_t *)params, (uintptr_t)user_data);
}

static rmq_status_t rmq_go_send_async(rmq_producer_t *producer, const rmq_message_t *message,
                                      uintptr_t handle) {
	return rmq_producer_send_async(producer, message, rmq_go_send_trampoline, (void *)handle);
}
*/
import "C"

import (
	"errors"
	"math"
	"runtime"
	"runtime/cgo"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// SendStatus is the store status of a successful send.
type SendStatus int

// Store statuses (rmq_send_status_t).
const (
	// SendOK: stored (and flushed/replicated as the broker is configured).
	SendOK SendStatus = C.RMQ_SEND_OK
	// SendFlushDiskTimeout: stored, but the flush to disk timed out (SYNC_FLUSH brokers).
	SendFlushDiskTimeout SendStatus = C.RMQ_SEND_FLUSH_DISK_TIMEOUT
	// SendFlushSlaveTimeout: stored, but replication to the slave timed out (SYNC_MASTER brokers).
	SendFlushSlaveTimeout SendStatus = C.RMQ_SEND_FLUSH_SLAVE_TIMEOUT
	// SendSlaveNotAvailable: stored, but no slave was available (SYNC_MASTER brokers).
	SendSlaveNotAvailable SendStatus = C.RMQ_SEND_SLAVE_NOT_AVAILABLE
)

// String is the library's name of the send status (rmq_send_status_name), e.g. "SEND_OK";
// "UNKNOWN" for a value the library does not define.
func (s SendStatus) String() string {
	return C.GoString(C.rmq_send_status_name(C.rmq_send_status_t(s)))
}

// SendResult is the outcome of a successful send, copied out of the library.
type SendResult struct {
	Status     SendStatus
	StatusName string // Status.String()
	// MsgID is the message id (UNIQ_KEY) the producer gave the message.
	MsgID string
	// OffsetMsgID is the broker's store id; pass it to ViewMessage.
	OffsetMsgID string
	Topic       string
	BrokerName  string
	QueueID     int32
	QueueOffset int64
	// TransactionID is the transaction id as the broker reported it ("" when none).
	TransactionID string
	// RegionID is the broker's region.
	RegionID string
}

// Queue is the queue the message was written to.
func (r *SendResult) Queue() MessageQueue {
	return MessageQueue{Topic: r.Topic, BrokerName: r.BrokerName, QueueID: r.QueueID}
}

// copySendResult copies a (borrowed or owned) C send result into Go memory, in one C call.
func copySendResult(r *C.rmq_send_result_t) (*SendResult, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var v C.rmq_send_result_view_t
	if err := check(C.rmq_send_result_get(r, &v)); err != nil {
		return nil, err
	}
	res := &SendResult{
		Status:        SendStatus(v.status),
		MsgID:         goString(v.msg_id, v.msg_id_len),
		OffsetMsgID:   goString(v.offset_msg_id, v.offset_msg_id_len),
		Topic:         goString(v.topic, v.topic_len),
		BrokerName:    goString(v.broker_name, v.broker_name_len),
		QueueID:       int32(v.queue_id),
		QueueOffset:   int64(v.queue_offset),
		TransactionID: goString(v.transaction_id, v.transaction_id_len),
		RegionID:      goString(v.region_id, v.region_id_len),
	}
	res.StatusName = res.Status.String()
	return res, nil
}

// Producer sends messages. Create it with NewProducer, then Start it; Close it when done.
// All methods may be called from any goroutine, concurrently.
type Producer struct {
	// mu.RLock is held by every call that uses h; Close takes mu.Lock only to set closed, so a
	// closed producer's handle is never passed to C again.
	mu     sync.RWMutex
	h      *C.rmq_producer_t
	closed bool
}

// NewProducer creates a producer from configuration values keyed by the library's keys (see
// ConfigKeys); "name-server" and "producer.group" are required. An unknown key fails with
// StatusUnknownConfigKey, a bad value with StatusInvalidConfigValue. Nothing is sent before
// Start.
func NewProducer(config map[string]string) (*Producer, error) {
	var h *C.rmq_producer_t
	if err := withConfig(config, func(cfg *C.rmq_config_t) C.rmq_status_t {
		return C.rmq_producer_create(cfg, &h)
	}); err != nil {
		return nil, err
	}
	return &Producer{h: h}, nil
}

func errProducerClosed() *Error { return newError(StatusInvalidHandle, "producer is closed") }

// use lends the handle to f unless the producer is closed.
func (p *Producer) use(f func(h *C.rmq_producer_t) error) error {
	if p == nil {
		return invalidArgument("producer is nil")
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return errProducerClosed()
	}
	return f(p.h)
}

// Start starts the producer (route refresh and heartbeats). Starting twice, or after
// Shutdown, fails with StatusInvalidState.
func (p *Producer) Start() error {
	return p.use(producerStart)
}

func producerStart(h *C.rmq_producer_t) error {
	return call(func() C.rmq_status_t { return C.rmq_producer_start(h) })
}

// Shutdown stops the producer: async sends still in flight complete at once with
// StatusCancelled (their callbacks may still be running when Shutdown returns; Close waits for
// them), it unregisters from the brokers, and its client instance closes its connections if
// this was its last producer. Nothing is sent afterwards; later sends fail with
// StatusInvalidState. Idempotent. Close still has to be called.
func (p *Producer) Shutdown() error {
	return p.use(func(h *C.rmq_producer_t) error {
		return call(func() C.rmq_status_t { return C.rmq_producer_shutdown(h) })
	})
}

// Close shuts the producer down if needed, waits until the callback of every accepted
// SendAsync has run and returned, and frees the producer: no callback of this producer runs
// after Close returns. In-flight sends fail at once with StatusCancelled, so the wait is as
// long as the slowest pending callback. Later calls on the producer return an error with
// StatusInvalidHandle. Close is idempotent and returns nil; only the first call waits.
//
// Calls running concurrently with Close (for instance a SendSync) finish first; Close waits
// for them.
//
// Because Close waits for callbacks without a time limit, a callback must never wait for the
// goroutine that calls Close (for example by sending on an unbuffered channel that goroutine
// reads only after Close returns, or by locking a mutex it holds around Close): that is a
// deadlock. Calling methods of p from inside its callback is allowed, but Close of p itself
// is refused there (it would wait for that very callback) with StatusInvalidState and p stays
// open. Closing another producer from a callback is allowed and waits for that producer's
// callbacks, running them on the calling thread when they are queued behind it.
func (p *Producer) Close() error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	// Not under mu: callbacks running meanwhile may call methods of p (they get the closed
	// error) and Close must not block them.
	if st := C.rmq_producer_destroy(p.h); st != C.RMQ_OK {
		// Refused (from one of p's own callbacks): p stays open; close it from elsewhere.
		err := lastError(st)
		p.mu.Lock()
		p.closed = false
		p.mu.Unlock()
		return err
	}
	return nil
}

// SendSync sends msg and waits for the broker's answer, retrying on another broker within
// producer.send-message-timeout. The message is not consumed; it can be sent again.
func (p *Producer) SendSync(msg *Message) (*SendResult, error) {
	var res *SendResult
	err := p.use(func(ph *C.rmq_producer_t) error {
		return msg.withHandle(func(mh *C.rmq_message_t) error {
			var err error
			res, err = producerSendSync(ph, mh)
			return err
		})
	})
	return res, err
}

func producerSendSync(ph *C.rmq_producer_t, mh *C.rmq_message_t) (*SendResult, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var r *C.rmq_send_result_t
	if err := check(C.rmq_producer_send_sync(ph, mh, &r)); err != nil {
		return nil, err
	}
	defer C.rmq_send_result_destroy(r)
	return copySendResult(r)
}

// liveAsyncHandles counts the cgo.Handles of SendAsync calls whose callback has not run.
var liveAsyncHandles atomic.Int64

// SendAsync sends msg without waiting. If it returns nil, callback is called exactly once
// later, with the result or the error; if it returns an error, nothing was sent and callback
// is never called. The message may be modified or closed as soon as SendAsync returns.
//
// Callbacks run on a library callback thread ("rmq-callback-N", never the caller's), one at
// a time unless client.callback-executor-threads says more, so a callback should return quickly and hand longer work to
// another goroutine. It may call methods of the producer, Close included. A panic in a
// callback crashes the program, as in any goroutine.
//
// With producer.max-in-flight-async-sends sends in flight (each counted until its callback has
// returned) SendAsync waits for one to complete, at most producer.send-message-timeout, or
// fails with StatusInFlightFull at once when producer.block-when-in-flight-full is false. From
// inside a callback it never waits: it fails with StatusInFlightFull.
func (p *Producer) SendAsync(msg *Message, callback func(*SendResult, error)) error {
	if callback == nil {
		return invalidArgument("callback is nil")
	}
	return p.use(func(ph *C.rmq_producer_t) error {
		return msg.withHandle(func(mh *C.rmq_message_t) error {
			return producerSendAsync(ph, mh, callback)
		})
	})
}

func producerSendAsync(ph *C.rmq_producer_t, mh *C.rmq_message_t, callback func(*SendResult, error)) error {
	return submitAsync(callback, func(h C.uintptr_t) C.rmq_status_t { return C.rmq_go_send_async(ph, mh, h) })
}

// submitAsync hands callback, as a cgo.Handle, to the async send that start makes; the handle
// is freed by rmqGoSendCallback, or here when the send is not accepted.
func submitAsync(callback func(*SendResult, error), start func(h C.uintptr_t) C.rmq_status_t) error {
	return submitHandle(callback, start)
}

// submitHandle hands callback (any func the export that start names expects) as a cgo.Handle
// to the async call start makes; the export frees it, or this does when the call is refused.
func submitHandle(callback any, start func(h C.uintptr_t) C.rmq_status_t) error {
	h := cgo.NewHandle(callback)
	liveAsyncHandles.Add(1)
	err := call(func() C.rmq_status_t { return start(C.uintptr_t(h)) })
	if err != nil {
		// Not accepted: the callback will never run, so the handle is ours to free.
		h.Delete()
		liveAsyncHandles.Add(-1)
	}
	return err
}

// SendOneway sends msg once without waiting for or learning the outcome. It blocks only while
// the topic's route is first fetched or a connection first opened. A busy broker may drop
// oneway messages.
func (p *Producer) SendOneway(msg *Message) error {
	return p.use(func(ph *C.rmq_producer_t) error {
		return msg.withHandle(func(mh *C.rmq_message_t) error {
			return call(func() C.rmq_status_t { return C.rmq_producer_send_oneway(ph, mh) })
		})
	})
}

// ViewMessage reads a stored message back from its broker by its offset message id
// (SendResult.OffsetMsgID). The caller owns the returned message and should Close it.
func (p *Producer) ViewMessage(offsetMsgID string) (*Message, error) {
	var msg *Message
	err := p.use(func(ph *C.rmq_producer_t) error {
		cid, err := cString("offset message id", offsetMsgID)
		if err != nil {
			return err
		}
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var mh *C.rmq_message_t
		if err := check(C.rmq_producer_view_message(ph, cid, &mh)); err != nil {
			return err
		}
		msg = wrapMessage(mh)
		return nil
	})
	return msg, err
}

// QueryMessage finds stored messages of topic whose keys include key, stored between begin
// and end, at most maxNum per broker. The broker indexes keys shortly after storing, so a
// message sent a moment ago may not be found yet. The caller owns the returned messages and
// should Close them.
func (p *Producer) QueryMessage(topic, key string, maxNum int, begin, end time.Time) ([]*Message, error) {
	if maxNum < 1 || maxNum > math.MaxInt32 {
		return nil, invalidArgument("maxNum %d is outside 1..%d", maxNum, math.MaxInt32)
	}
	var msgs []*Message
	err := p.use(func(ph *C.rmq_producer_t) error {
		ct, err := cString("topic", topic)
		if err != nil {
			return err
		}
		ck, err := cString("key", key)
		if err != nil {
			return err
		}
		// maxNum is per broker, so more may be found than asked for: then the library hands
		// nothing over, says how many with StatusBufferTooSmall, and the query is made again
		// with room for them all.
		capacity := maxNum
		for attempt := 0; ; attempt++ {
			var found int
			msgs, found, err = producerQuery(ph, ct, ck, int32(maxNum), begin.UnixMilli(), end.UnixMilli(), capacity)
			var e *Error
			if attempt < 3 && errors.As(err, &e) && e.Status == StatusBufferTooSmall {
				capacity = found
				continue
			}
			return err
		}
	})
	return msgs, err
}

func producerQuery(ph *C.rmq_producer_t, topic, key *C.char, maxNum int32, begin, end int64, capacity int) ([]*Message, int, error) {
	arr := (**C.rmq_message_t)(C.calloc(C.size_t(capacity), C.size_t(unsafe.Sizeof((*C.rmq_message_t)(nil)))))
	if arr == nil {
		return nil, 0, newError(StatusInvalidArgument, "cannot allocate the result array")
	}
	defer C.free(unsafe.Pointer(arr))
	var count C.size_t
	err := call(func() C.rmq_status_t {
		return C.rmq_producer_query_message(ph, topic, key, C.int32_t(maxNum), C.int64_t(begin), C.int64_t(end),
			arr, C.size_t(capacity), &count)
	})
	if err != nil {
		return nil, int(count), err
	}
	n := min(int(count), capacity)
	msgs := make([]*Message, 0, n)
	for _, h := range unsafe.Slice(arr, capacity)[:n] {
		msgs = append(msgs, wrapMessage(h))
	}
	return msgs, int(count), nil
}
