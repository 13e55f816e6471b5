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

// One cgo call per batch: the poll and the views of every field of every message.
static rmq_status_t rmq_go_poll(rmq_push_consumer_t *consumer, size_t max, int64_t timeout_ms,
                                rmq_received_batch_t **batch, const rmq_received_view_t **views,
                                size_t *count) {
	rmq_status_t st = rmq_push_consumer_poll(consumer, max, timeout_ms, batch);
	if (st != RMQ_OK || *batch == NULL) return st;
	st = rmq_received_batch_views(*batch, views, count);
	if (st != RMQ_OK) rmq_received_batch_destroy(*batch);
	return st;
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
	"unsafe"
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

// Delivery is a batch handed out by Messages, taken from the library in one call (poll mode).
// Answer it once with Ack, Reconsume or AckEach (the first answer counts); until then its
// messages hold back their queues' committed offsets, and after consumer.consume-timeout they
// are sent back for a later retry. A Delivery dropped unanswered is reconsumed later once the
// garbage collector finds it; one still unanswered when the consumer closes is not committed
// and is delivered again later.
type Delivery struct {
	Messages []*ReceivedMessage
	mu       sync.Mutex
	batch    *C.rmq_received_batch_t
}

// Ack marks the batch consumed.
func (d *Delivery) Ack() { _ = d.AckEach(nil) }

// Reconsume asks for the batch again after delayLevel (see ReconsumeLater).
func (d *Delivery) Reconsume(delayLevel int32) {
	all := make([]ConsumeResult, len(d.Messages))
	for i := range all {
		all[i] = ReconsumeLater(delayLevel)
	}
	_ = d.AckEach(all)
}

// AckEach answers each message on its own: results[i] is ConsumeSuccess or ReconsumeLater(n)
// for Messages[i]; nil means all consumed. A second answer fails with StatusInvalidState, a
// wrong number of results with StatusInvalidArgument (the Delivery stays unanswered), and an
// answer after the consumer closed with StatusInvalidState (its messages come again later).
func (d *Delivery) AckEach(results []ConsumeResult) error {
	if results != nil && len(results) != len(d.Messages) {
		return invalidArgument("%d results for a delivery of %d messages", len(results), len(d.Messages))
	}
	d.mu.Lock()
	b := d.batch
	d.batch = nil
	d.mu.Unlock()
	if b == nil {
		return newError(StatusInvalidState, "this delivery was already answered")
	}
	runtime.SetFinalizer(d, nil)
	if results == nil {
		return call(func() C.rmq_status_t { return C.rmq_received_batch_ack(b) })
	}
	statuses := make([]C.rmq_consume_status_t, len(results))
	levels := make([]C.int32_t, len(results))
	for i, r := range results {
		if r.reconsume {
			statuses[i], levels[i] = C.RMQ_CONSUME_RECONSUME_LATER, C.int32_t(r.delayLevel)
		}
	}
	return call(func() C.rmq_status_t {
		return C.rmq_received_batch_ack_each(b, unsafe.SliceData(statuses), unsafe.SliceData(levels), C.size_t(len(results)))
	})
}

// release gives the batch back unanswered (its messages are reconsumed later).
func (d *Delivery) release() {
	d.mu.Lock()
	b := d.batch
	d.batch = nil
	d.mu.Unlock()
	if b != nil {
		C.rmq_received_batch_destroy(b)
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
	// stop is closed when shutdown begins.
	stop     chan struct{}
	stopOnce sync.Once
}

// NewPushConsumer creates a consumer from configuration values keyed by the library's keys
// (see ConfigKeys); "name-server" and "consumer.group" are required, the consumer.* keys tune
// it. Nothing is received before Start.
func NewPushConsumer(config map[string]string) (*PushConsumer, error) {
	c := &PushConsumer{stop: make(chan struct{})}
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
	return c.start(handler)
}

// start installs a handler, or poll mode when handler is nil.
func (c *PushConsumer) start(handler Handler) error {
	return c.startWith(
		func(h *C.rmq_push_consumer_t, self C.uintptr_t) C.rmq_status_t {
			if handler == nil {
				return C.rmq_push_consumer_set_poll_mode(h)
			}
			return C.rmq_go_set_listener(h, self)
		},
		func() { c.handler = handler })
}

// startWith holds mu for writing: install sets the handler before any consumer thread can read
// it (the C start happens after), and it never changes afterwards. setListener registers the
// C listener (or poll mode) with the consumer's cgo handle.
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

// Messages starts the consumer in channel mode (the library's poll mode): a goroutine takes
// batches of up to 32 messages, each in one call into the library, and sends each batch on
// the returned channel as a *Delivery to Ack, Reconsume or AckEach. When ctx is done the
// consumer is closed (as by Close) and the channel is closed; batches handed out but not
// answered then are delivered again later. Use either Start or Messages, once.
func (c *PushConsumer) Messages(ctx context.Context) (<-chan *Delivery, error) {
	ch := make(chan *Delivery)
	if err := c.start(nil); err != nil {
		return nil, err
	}
	go func() {
		select {
		case <-ctx.Done():
		case <-c.stop:
		}
		// Wakes the poll below: it returns an error once the consumer shuts down.
		_ = c.Close()
	}()
	go func() {
		defer close(ch)
		for {
			d, err := c.poll(pollBatch, -1)
			if err != nil {
				return // closed or shut down
			}
			select {
			case ch <- d:
			case <-ctx.Done():
				d.release()
				return
			case <-c.stop:
				d.release()
				return
			}
		}
	}()
	return ch, nil
}

// pollBatch is the most messages one Delivery of Messages carries.
const pollBatch = 32

// poll takes one batch (waiting up to timeoutMs, negative: until shutdown); nil when none came.
// mu is not held while the call waits, so Close can run and wake it.
func (c *PushConsumer) poll(max int, timeoutMs int64) (*Delivery, error) {
	c.mu.RLock()
	h, closed := c.h, c.closed
	c.mu.RUnlock()
	if closed {
		return nil, errConsumerClosed()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var batch *C.rmq_received_batch_t
	var views *C.rmq_received_view_t
	var count C.size_t
	if err := check(C.rmq_go_poll(h, C.size_t(max), C.int64_t(timeoutMs), &batch, &views, &count)); err != nil {
		return nil, err
	}
	if batch == nil {
		return nil, nil
	}
	d := &Delivery{batch: batch, Messages: make([]*ReceivedMessage, 0, int(count))}
	for _, v := range unsafe.Slice(views, int(count)) {
		d.Messages = append(d.Messages, fromView(&v))
	}
	runtime.SetFinalizer(d, (*Delivery).release)
	return d, nil
}

// fromView copies one message out of its batch's views (memory reads, no cgo call).
func fromView(v *C.rmq_received_view_t) *ReceivedMessage {
	m := &ReceivedMessage{
		Topic:          goString(v.topic, v.topic_len),
		Body:           goBytes(v.body, v.body_len),
		Tags:           goString(v.tags, v.tags_len),
		MsgID:          goString(v.msg_id, v.msg_id_len),
		OffsetMsgID:    goString(v.offset_msg_id, v.offset_msg_id_len),
		BrokerName:     goString(v.broker_name, v.broker_name_len),
		QueueID:        int32(v.queue_id),
		QueueOffset:    int64(v.queue_offset),
		ReconsumeTimes: int32(v.reconsume_times),
		BornTimestamp:  time.UnixMilli(int64(v.born_timestamp)),
		StoreTimestamp: time.UnixMilli(int64(v.store_timestamp)),
		Properties:     make(map[string]string, int(v.property_count)),
	}
	if keys := goString(v.keys, v.keys_len); keys != "" {
		m.Keys = strings.Split(keys, " ")
	}
	for _, p := range unsafe.Slice(v.properties, int(v.property_count)) {
		m.Properties[goString(p.name, p.name_len)] = goString(p.value, p.value_len)
	}
	return m
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
	return c.handler(batch)
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
