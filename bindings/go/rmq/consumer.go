package rmq

/*
#include <pthread.h>
#include <stdint.h>
#include "rmq.h"

// Defined in consumer_export.go (//export), with the exact C types cgo gives it there.
extern rmq_consume_status_t rmqGoConsume(rmq_received_message_t **msgs, size_t count,
                                         rmq_consume_context_t *ctx, uintptr_t handle);

static rmq_consume_status_t rmq_go_consume_trampoline(const rmq_received_message_t *const *msgs,
                                                      size_t count, rmq_consume_context_t *ctx,
                                                      void *user_data) {
	return rmqGoConsume((rmq_received_message_t **)msgs, count, ctx, (uintptr_t)user_data);
}

static rmq_status_t rmq_go_set_listener(rmq_push_consumer_t *consumer, uintptr_t handle) {
	return rmq_push_consumer_set_listener(consumer, rmq_go_consume_trampoline, (void *)handle);
}
*/
import "C"

import (
	"context"
	"runtime"
	"runtime/cgo"
	"strings"
	"sync"
	"time"
)

// ReceivedMessage is a message given to a consumer, copied out of the library (keep it as
// long as you like).
type ReceivedMessage struct {
	// Topic is the topic it was sent to (a retried message shows its original topic).
	Topic      string
	Body       []byte
	Tags       string
	Keys       []string
	Properties map[string]string
	// MsgID is the id the producer gave it (SendResult.MsgID); OffsetMsgID the broker's store id.
	MsgID       string
	OffsetMsgID string
	BrokerName  string
	QueueID     int32
	QueueOffset int64
	// ReconsumeTimes counts earlier deliveries that ended in reconsume-later (0 the first time).
	ReconsumeTimes int32
	BornTimestamp  time.Time
	StoreTimestamp time.Time
}

// ConsumeResult is what a handler says about its batch: ConsumeSuccess or ReconsumeLater(n).
// The zero value is ConsumeSuccess.
type ConsumeResult struct {
	reconsume  bool
	delayLevel int32
}

// ConsumeSuccess: the batch is consumed.
var ConsumeSuccess = ConsumeResult{}

// ReconsumeLater: deliver the batch again after delayLevel: 0 lets the broker choose (3 +
// times reconsumed), 1 = 1 s, 2 = 5 s, 3 = 10 s, ...; a negative level sends the messages to
// the dead-letter queue at once.
func ReconsumeLater(delayLevel int32) ConsumeResult {
	return ConsumeResult{reconsume: true, delayLevel: delayLevel}
}

// IsSuccess tells ConsumeSuccess from ReconsumeLater.
func (r ConsumeResult) IsSuccess() bool { return !r.reconsume }

// DelayLevel is the delay level of a ReconsumeLater result (0 for ConsumeSuccess).
func (r ConsumeResult) DelayLevel() int32 { return r.delayLevel }

// Handler consumes a batch of messages (at most consumer.consume-message-batch-max-size, one
// queue's). It runs on the consumer's own threads, several at once. A panic counts as
// ReconsumeLater(0) and goes no further.
type Handler func(msgs []*ReceivedMessage) ConsumeResult

// Delivery is a batch handed out by Messages; answer it with Ack or Reconsume (the first
// answer counts). Until then the consumer thread that received it waits.
type Delivery struct {
	Messages []*ReceivedMessage
	answer   chan ConsumeResult
}

// Ack marks the batch consumed.
func (d *Delivery) Ack() { d.reply(ConsumeSuccess) }

// Reconsume asks for the batch again after delayLevel (see ReconsumeLater).
func (d *Delivery) Reconsume(delayLevel int32) { d.reply(ReconsumeLater(delayLevel)) }

func (d *Delivery) reply(r ConsumeResult) {
	select {
	case d.answer <- r:
	default: // answered already
	}
}

// PushConsumer receives the messages of its subscriptions. Create it with NewPushConsumer,
// Subscribe, then Start it with a handler (or call Messages); Close it when done. Methods may
// be called from any goroutine.
type PushConsumer struct {
	mu      sync.RWMutex
	h       *C.rmq_push_consumer_t
	closed  bool
	self    cgo.Handle
	started bool
	// closeMu serializes Close; handler threads never take it (see inOwnHandler).
	closeMu sync.Mutex
	// inHandler counts, per OS thread, the handler calls of this consumer running there.
	inHandlerMu sync.Mutex
	inHandler   map[C.pthread_t]int
	handler     Handler
	orderly     OrderlyHandler
	// channel mode (Messages)
	deliveries chan *Delivery
	// stop is closed when shutdown begins; destroyed once the last handler call has returned.
	stop      chan struct{}
	stopOnce  sync.Once
	destroyed chan struct{}
}

// NewPushConsumer creates a consumer from configuration values keyed by the library's keys
// (see ConfigKeys); "name-server" and "consumer.group" are required, the consumer.* keys tune
// it. Nothing is received before Start.
func NewPushConsumer(config map[string]string) (*PushConsumer, error) {
	c := &PushConsumer{stop: make(chan struct{}), destroyed: make(chan struct{})}
	err := withConfig(config, func(cfg *C.rmq_config_t) C.rmq_status_t {
		return C.rmq_push_consumer_create(cfg, &c.h)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

func errConsumerClosed() *Error { return newError(StatusInvalidHandle, "consumer is closed") }

func (c *PushConsumer) use(f func(h *C.rmq_push_consumer_t) error) error {
	if c == nil {
		return invalidArgument("consumer is nil")
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return errConsumerClosed()
	}
	return f(c.h)
}

// Subscribe subscribes topic with a tag expression: "*", "TagA" or "TagA || TagB". Before
// Start; subscribing a topic again replaces its expression.
func (c *PushConsumer) Subscribe(topic, expression string) error {
	return c.subscribe(topic, expression, false)
}

// SubscribeSQL92 subscribes topic with an SQL92 expression over message properties, e.g.
// "n >= 30"; the broker needs enablePropertyFilter=true.
func (c *PushConsumer) SubscribeSQL92(topic, expression string) error {
	return c.subscribe(topic, expression, true)
}

func (c *PushConsumer) subscribe(topic, expression string, sql92 bool) error {
	return c.use(func(h *C.rmq_push_consumer_t) error {
		ct, err := cString("topic", topic)
		if err != nil {
			return err
		}
		ce, err := cString("expression", expression)
		if err != nil {
			return err
		}
		return call(func() C.rmq_status_t {
			if sql92 {
				return C.rmq_push_consumer_subscribe_sql92(h, ct, ce)
			}
			return C.rmq_push_consumer_subscribe(h, ct, ce)
		})
	})
}

// Start starts receiving; handler is called with each batch (see Handler). A second Start,
// or one after Shutdown, fails with StatusInvalidState, as does a Start without a
// subscription.
func (c *PushConsumer) Start(handler Handler) error {
	if handler == nil {
		return invalidArgument("handler is nil")
	}
	return c.start(handler, nil)
}

func (c *PushConsumer) start(handler Handler, deliveries chan *Delivery) error {
	return c.startWith(
		func(h *C.rmq_push_consumer_t, self C.uintptr_t) C.rmq_status_t { return C.rmq_go_set_listener(h, self) },
		func() { c.handler, c.deliveries = handler, deliveries })
}

// startWith holds mu for writing: install sets the handler before any consumer thread can read
// it (the C start happens after), and it never changes afterwards. setListener registers the
// C listener with the consumer's cgo handle.
func (c *PushConsumer) startWith(setListener func(*C.rmq_push_consumer_t, C.uintptr_t) C.rmq_status_t, install func()) error {
	if c == nil {
		return invalidArgument("consumer is nil")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errConsumerClosed()
	}
	if c.started {
		return newError(StatusInvalidState, "consumer already started")
	}
	if c.self == 0 {
		c.self = cgo.NewHandle(c)
	}
	install()
	h, self := c.h, C.uintptr_t(c.self)
	err := call(func() C.rmq_status_t { return setListener(h, self) })
	if err == nil {
		err = call(func() C.rmq_status_t { return C.rmq_push_consumer_start(h) })
	}
	c.started = err == nil
	return err
}

// Messages starts the consumer in channel mode: each batch arrives on the returned channel as
// a *Delivery to Ack or Reconsume. When ctx is done the consumer is closed (as by Close) and
// the channel is closed after the last delivery; batches handed out but not answered then
// are delivered again later. Use either Start or Messages, once.
func (c *PushConsumer) Messages(ctx context.Context) (<-chan *Delivery, error) {
	ch := make(chan *Delivery)
	if err := c.start(nil, ch); err != nil {
		return nil, err
	}
	go func() {
		select {
		case <-ctx.Done():
		case <-c.stop:
		}
		_ = c.Close()
		// Close may be running on another goroutine: close the channel only once no handler
		// call can send on it any more.
		<-c.destroyed
		close(ch)
	}()
	return ch, nil
}

// enterHandler and leaveHandler bracket a handler call on the calling OS thread (a cgo
// callback keeps its goroutine on that thread).
func (c *PushConsumer) enterHandler() {
	t := C.pthread_self()
	c.inHandlerMu.Lock()
	if c.inHandler == nil {
		c.inHandler = map[C.pthread_t]int{}
	}
	c.inHandler[t]++
	c.inHandlerMu.Unlock()
}

func (c *PushConsumer) leaveHandler() {
	t := C.pthread_self()
	c.inHandlerMu.Lock()
	if c.inHandler[t]--; c.inHandler[t] == 0 {
		delete(c.inHandler, t)
	}
	c.inHandlerMu.Unlock()
}

// inOwnHandler: whether the calling goroutine is running one of this consumer's handler calls.
// The caller holds runtime.LockOSThread.
func (c *PushConsumer) inOwnHandler() bool {
	t := C.pthread_self()
	c.inHandlerMu.Lock()
	defer c.inHandlerMu.Unlock()
	return c.inHandler[t] > 0
}

func errOwnHandler(what string) *Error {
	return newError(StatusInvalidState, what+" from the consumer's own handler would wait for itself; call it from another goroutine")
}

// deliver runs on a consumer thread (through rmqGoConsume).
func (c *PushConsumer) deliver(batch []*ReceivedMessage) ConsumeResult {
	c.enterHandler()
	defer c.leaveHandler()
	if c.handler != nil {
		return c.handler(batch)
	}
	d := &Delivery{Messages: batch, answer: make(chan ConsumeResult, 1)}
	select {
	case c.deliveries <- d:
	case <-c.stop:
		return ReconsumeLater(0)
	}
	select {
	case r := <-d.answer:
		return r
	case <-c.stop:
		return ReconsumeLater(0)
	}
}

// Shutdown stops the consumer: pulling stops, running handler calls get up to
// consumer.await-termination-millis-when-shutdown, offsets are committed, the group is
// unregistered. Idempotent. From the consumer's own handler it fails with StatusInvalidState.
// Close still has to be called.
func (c *PushConsumer) Shutdown() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if c != nil && c.inOwnHandler() {
		return errOwnHandler("Shutdown")
	}
	return c.use(func(h *C.rmq_push_consumer_t) error {
		c.stopOnce.Do(func() { close(c.stop) })
		return call(func() C.rmq_status_t { return C.rmq_push_consumer_shutdown(h) })
	})
}

// Close shuts the consumer down if needed, waits until its last handler call has returned
// (no handler call runs after Close returns) and frees it. Idempotent. From the consumer's
// own handler it would wait for itself: it fails with StatusInvalidState and the consumer
// stays open.
func (c *PushConsumer) Close() error {
	if c == nil {
		return nil
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// Checked before anything else: another goroutine may be closing c right now and waiting
	// for this very handler call to return.
	if c.inOwnHandler() {
		return errOwnHandler("Close")
	}
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.stopOnce.Do(func() { close(c.stop) })
	// Not under mu: handler calls running meanwhile may call methods of c.
	if st := C.rmq_push_consumer_destroy(c.h); st != C.RMQ_OK {
		err := lastError(st)
		c.mu.Lock()
		c.closed = false
		c.mu.Unlock()
		return err
	}
	if c.self != 0 {
		c.self.Delete()
	}
	close(c.destroyed)
	return nil
}

// copyReceived copies a borrowed received message; it runs on the consumer thread that
// called rmqGoConsume, so the last error is read on the failing call's thread.
func copyReceived(v *C.rmq_received_message_t) (*ReceivedMessage, error) {
	m := &ReceivedMessage{}
	str := func(f func(out **C.char, n *C.size_t) C.rmq_status_t) (string, error) {
		var p *C.char
		var n C.size_t
		if err := check(f(&p, &n)); err != nil {
			return "", err
		}
		return goString(p, n), nil
	}
	var keys string
	for _, f := range []struct {
		dst *string
		get func(out **C.char, n *C.size_t) C.rmq_status_t
	}{
		{&m.Topic, func(o **C.char, n *C.size_t) C.rmq_status_t { return C.rmq_received_message_topic(v, o, n) }},
		{&m.Tags, func(o **C.char, n *C.size_t) C.rmq_status_t { return C.rmq_received_message_tags(v, o, n) }},
		{&keys, func(o **C.char, n *C.size_t) C.rmq_status_t { return C.rmq_received_message_keys(v, o, n) }},
		{&m.MsgID, func(o **C.char, n *C.size_t) C.rmq_status_t { return C.rmq_received_message_msg_id(v, o, n) }},
		{&m.OffsetMsgID, func(o **C.char, n *C.size_t) C.rmq_status_t { return C.rmq_received_message_offset_msg_id(v, o, n) }},
		{&m.BrokerName, func(o **C.char, n *C.size_t) C.rmq_status_t { return C.rmq_received_message_broker_name(v, o, n) }},
	} {
		s, err := str(f.get)
		if err != nil {
			return nil, err
		}
		*f.dst = s
	}
	if keys != "" {
		m.Keys = strings.Split(keys, " ")
	}
	var body *C.uint8_t
	var blen C.size_t
	if err := check(C.rmq_received_message_body(v, &body, &blen)); err != nil {
		return nil, err
	}
	m.Body = goBytes(body, blen)
	var qid, times C.int32_t
	var off, born, stored C.int64_t
	for _, get := range []func() C.rmq_status_t{
		func() C.rmq_status_t { return C.rmq_received_message_queue_id(v, &qid) },
		func() C.rmq_status_t { return C.rmq_received_message_queue_offset(v, &off) },
		func() C.rmq_status_t { return C.rmq_received_message_reconsume_times(v, &times) },
		func() C.rmq_status_t { return C.rmq_received_message_born_timestamp(v, &born) },
		func() C.rmq_status_t { return C.rmq_received_message_store_timestamp(v, &stored) },
	} {
		if err := check(get()); err != nil {
			return nil, err
		}
	}
	m.QueueID, m.QueueOffset, m.ReconsumeTimes = int32(qid), int64(off), int32(times)
	m.BornTimestamp, m.StoreTimestamp = time.UnixMilli(int64(born)), time.UnixMilli(int64(stored))
	var count C.size_t
	if err := check(C.rmq_received_message_property_count(v, &count)); err != nil {
		return nil, err
	}
	m.Properties = make(map[string]string, int(count))
	for i := C.size_t(0); i < count; i++ {
		var np, vp *C.char
		var nl, vl C.size_t
		if err := check(C.rmq_received_message_property_at(v, i, &np, &nl, &vp, &vl)); err != nil {
			return nil, err
		}
		m.Properties[goString(np, nl)] = goString(vp, vl)
	}
	return m, nil
}
