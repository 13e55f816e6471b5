package rmq

/*
#include <stdint.h>
#include <stdlib.h>
#include "rmq.h"

// One cgo call per batch: the poll and the views of every field of every message.
static rmq_status_t rmq_go_lite_poll(rmq_lite_pull_consumer_t *consumer, int64_t timeout_ms,
                                     rmq_received_batch_t **batch, const rmq_received_view_t **views,
                                     size_t *count) {
	rmq_status_t st = rmq_lite_pull_consumer_poll(consumer, timeout_ms, batch);
	if (st != RMQ_OK || *batch == NULL) return st;
	st = rmq_received_batch_views(*batch, views, count);
	if (st != RMQ_OK) rmq_received_batch_destroy(*batch);
	return st;
}

// Queue arrays live in C memory (cgo forbids C keeping pointers into Go memory in a struct).
static rmq_message_queue_t *rmq_go_queues_new(size_t n) {
	return (rmq_message_queue_t *)calloc(n ? n : 1, sizeof(rmq_message_queue_t));
}

static void rmq_go_queue_set(rmq_message_queue_t *qs, size_t i, const char *topic, size_t topic_len,
                             const char *broker, size_t broker_len, int32_t queue_id) {
	rmq_message_queue_t q = {topic, topic_len, broker, broker_len, queue_id};
	qs[i] = q;
}

static void rmq_go_queues_free(rmq_message_queue_t *qs, size_t n) {
	for (size_t i = 0; i < n; i++) {
		free((void *)qs[i].topic);
		free((void *)qs[i].broker_name);
	}
	free(qs);
}
*/
import "C"

import (
	"context"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// LitePullConsumer lets the application pull at its own pace, as Java's
// DefaultLitePullConsumer: Subscribe topics (their queues are shared among the group's
// consumers by rebalance) or Assign queues (FetchMessageQueues lists them), Start, then Poll.
// A polled message counts as consumed: with consumer.auto-commit (the default) offsets are
// committed every consumer.auto-commit-interval and at Shutdown/Close, otherwise by Commit.
// Methods may be called from any goroutine.
type LitePullConsumer struct {
	mu     sync.RWMutex
	h      *C.rmq_lite_pull_consumer_t
	closed bool
}

// NewLitePullConsumer creates a lite pull consumer from configuration values keyed by the
// library's keys (see ConfigKeys); "name-server" and "consumer.group" are required;
// consumer.pull-batch-size is the most messages one Poll returns.
func NewLitePullConsumer(config map[string]string) (*LitePullConsumer, error) {
	c := &LitePullConsumer{}
	err := withConfig(config, func(cfg *C.rmq_config_t) C.rmq_status_t {
		return C.rmq_lite_pull_consumer_create(cfg, &c.h)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// handle returns the C handle without holding mu during the call that follows: a Close meanwhile
// makes that call fail with StatusInvalidHandle (or wakes it), never crash.
func (c *LitePullConsumer) handle() (*C.rmq_lite_pull_consumer_t, error) {
	if c == nil {
		return nil, invalidArgument("consumer is nil")
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return nil, errConsumerClosed()
	}
	return c.h, nil
}

func (c *LitePullConsumer) do(f func(h *C.rmq_lite_pull_consumer_t) C.rmq_status_t) error {
	h, err := c.handle()
	if err != nil {
		return err
	}
	return call(func() C.rmq_status_t { return f(h) })
}

// withQueues lends qs to C as an rmq_message_queue_t array for one call on a locked OS thread.
func withQueues(qs []MessageQueue, f func(arr *C.rmq_message_queue_t, n C.size_t) C.rmq_status_t) error {
	n := C.size_t(len(qs))
	arr := C.rmq_go_queues_new(n)
	if arr == nil {
		return newError(StatusResource, "out of memory for the queue list")
	}
	for i, q := range qs {
		topic := C.CBytes([]byte(q.Topic))
		broker := C.CBytes([]byte(q.BrokerName))
		C.rmq_go_queue_set(arr, C.size_t(i), (*C.char)(topic), C.size_t(len(q.Topic)),
			(*C.char)(broker), C.size_t(len(q.BrokerName)), C.int32_t(q.QueueID))
	}
	defer C.rmq_go_queues_free(arr, n)
	return call(func() C.rmq_status_t { return f(arr, n) })
}

// readQueueList copies an rmq_message_queue_list_t and frees it.
func readQueueList(list *C.rmq_message_queue_list_t) ([]MessageQueue, error) {
	defer C.rmq_message_queue_list_destroy(list)
	var views *C.rmq_message_queue_t
	var n C.size_t
	if err := call(func() C.rmq_status_t { return C.rmq_message_queue_list_views(list, &views, &n) }); err != nil {
		return nil, err
	}
	out := make([]MessageQueue, 0, int(n))
	for _, v := range unsafe.Slice(views, int(n)) {
		out = append(out, MessageQueue{
			Topic:      goString(v.topic, v.topic_len),
			BrokerName: goString(v.broker_name, v.broker_name_len),
			QueueID:    int32(v.queue_id),
		})
	}
	return out, nil
}

// Subscribe subscribes topic with a tag expression ("*", "TagA || TagB"). Before Start; not
// with Assign.
func (c *LitePullConsumer) Subscribe(topic, expression string) error {
	return c.subscribe(topic, expression, false)
}

// SubscribeSQL92 subscribes topic with an SQL92 expression over message properties; the broker
// needs enablePropertyFilter=true.
func (c *LitePullConsumer) SubscribeSQL92(topic, expression string) error {
	return c.subscribe(topic, expression, true)
}

func (c *LitePullConsumer) subscribe(topic, expression string, sql92 bool) error {
	ct, err := cString("topic", topic)
	if err != nil {
		return err
	}
	ce, err := cString("expression", expression)
	if err != nil {
		return err
	}
	return c.do(func(h *C.rmq_lite_pull_consumer_t) C.rmq_status_t {
		if sql92 {
			return C.rmq_lite_pull_consumer_subscribe_sql92(h, ct, ce)
		}
		return C.rmq_lite_pull_consumer_subscribe(h, ct, ce)
	})
}

// Assign takes exactly these queues (every message), replacing an earlier assignment. A queue
// starts at the group's committed offset, else at consumer.consume-from-where. Before or after
// Start; not with Subscribe.
func (c *LitePullConsumer) Assign(queues []MessageQueue) error {
	h, err := c.handle()
	if err != nil {
		return err
	}
	return withQueues(queues, func(arr *C.rmq_message_queue_t, n C.size_t) C.rmq_status_t {
		return C.rmq_lite_pull_consumer_assign(h, arr, n)
	})
}

// Start registers the group, takes the assigned queues or rebalances the subscribed topics, and
// starts pulling in the background.
func (c *LitePullConsumer) Start() error {
	return c.do(func(h *C.rmq_lite_pull_consumer_t) C.rmq_status_t {
		return C.rmq_lite_pull_consumer_start(h)
	})
}

// FetchMessageQueues returns the readable queues of topic, sorted (what Assign takes). After
// Start.
func (c *LitePullConsumer) FetchMessageQueues(topic string) ([]MessageQueue, error) {
	ct, err := cString("topic", topic)
	if err != nil {
		return nil, err
	}
	var list *C.rmq_message_queue_list_t
	if err := c.do(func(h *C.rmq_lite_pull_consumer_t) C.rmq_status_t {
		return C.rmq_lite_pull_consumer_fetch_message_queues(h, ct, &list)
	}); err != nil {
		return nil, err
	}
	return readQueueList(list)
}

// Assignment returns the queues the consumer owns now (assigned, or given by rebalance), sorted.
func (c *LitePullConsumer) Assignment() ([]MessageQueue, error) {
	var list *C.rmq_message_queue_list_t
	if err := c.do(func(h *C.rmq_lite_pull_consumer_t) C.rmq_status_t {
		return C.rmq_lite_pull_consumer_assignment(h, &list)
	}); err != nil {
		return nil, err
	}
	return readQueueList(list)
}

// litePollSlice is the longest single wait inside the library, so a done ctx is noticed soon.
const litePollSlice = 200 * time.Millisecond

// Poll waits until messages come or ctx is done, and returns up to consumer.pull-batch-size of
// them (they count as consumed); with ctx done first it returns ctx.Err(). Any goroutine may
// poll. Shutdown or Close from another goroutine ends a waiting Poll with an error
// (StatusInvalidState or StatusInvalidHandle), as does a Poll before Start.
func (c *LitePullConsumer) Poll(ctx context.Context) ([]*ReceivedMessage, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		wait := litePollSlice
		if d, ok := ctx.Deadline(); ok && time.Until(d) < wait {
			wait = max(time.Until(d), 0)
		}
		msgs, err := c.pollOnce(wait)
		if err != nil || msgs != nil {
			return msgs, err
		}
	}
}

// pollOnce makes one cgo call; nil messages when none came within wait.
func (c *LitePullConsumer) pollOnce(wait time.Duration) ([]*ReceivedMessage, error) {
	h, err := c.handle()
	if err != nil {
		return nil, err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var batch *C.rmq_received_batch_t
	var views *C.rmq_received_view_t
	var count C.size_t
	if err := check(C.rmq_go_lite_poll(h, C.int64_t(wait.Milliseconds()), &batch, &views, &count)); err != nil {
		return nil, err
	}
	if batch == nil {
		return nil, nil
	}
	// A lite pull batch is consumed when polled: destroying it only frees it.
	defer C.rmq_received_batch_destroy(batch)
	msgs := make([]*ReceivedMessage, 0, int(count))
	for _, v := range unsafe.Slice(views, int(count)) {
		msgs = append(msgs, fromView(&v))
	}
	return msgs, nil
}

// Commit commits every owned queue's consumed offset and waits for the broker's answers.
func (c *LitePullConsumer) Commit() error {
	return c.do(func(h *C.rmq_lite_pull_consumer_t) C.rmq_status_t {
		return C.rmq_lite_pull_consumer_commit(h)
	})
}

// CommitOffsets commits these offsets (the next offset to consume) of owned queues and waits.
func (c *LitePullConsumer) CommitOffsets(offsets map[MessageQueue]int64) error {
	h, err := c.handle()
	if err != nil {
		return err
	}
	qs := make([]MessageQueue, 0, len(offsets))
	offs := make([]C.int64_t, 0, len(offsets)+1)
	for q, o := range offsets {
		qs = append(qs, q)
		offs = append(offs, C.int64_t(o))
	}
	offs = append(offs, 0) // never empty, so &offs[0] is valid
	return withQueues(qs, func(arr *C.rmq_message_queue_t, n C.size_t) C.rmq_status_t {
		return C.rmq_lite_pull_consumer_commit_offsets(h, arr, &offs[0], n)
	})
}

// Committed returns the group's offset of q stored at the broker; ok is false when it has none.
func (c *LitePullConsumer) Committed(q MessageQueue) (offset int64, ok bool, err error) {
	h, err := c.handle()
	if err != nil {
		return 0, false, err
	}
	var out C.int64_t
	err = withQueues([]MessageQueue{q}, func(arr *C.rmq_message_queue_t, _ C.size_t) C.rmq_status_t {
		return C.rmq_lite_pull_consumer_committed(h, arr, &out)
	})
	if e, isErr := err.(*Error); isErr && e.Status == StatusNotFound {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return int64(out), true, nil
}

func (c *LitePullConsumer) onQueue(q MessageQueue, f func(h *C.rmq_lite_pull_consumer_t, q *C.rmq_message_queue_t) C.rmq_status_t) error {
	h, err := c.handle()
	if err != nil {
		return err
	}
	return withQueues([]MessageQueue{q}, func(arr *C.rmq_message_queue_t, _ C.size_t) C.rmq_status_t {
		return f(h, arr)
	})
}

// Seek makes polls of q (owned) continue from offset, which must lie within the queue's
// offsets (StatusInvalidArgument otherwise); q's consumed offset becomes offset.
func (c *LitePullConsumer) Seek(q MessageQueue, offset int64) error {
	return c.onQueue(q, func(h *C.rmq_lite_pull_consumer_t, cq *C.rmq_message_queue_t) C.rmq_status_t {
		return C.rmq_lite_pull_consumer_seek(h, cq, C.int64_t(offset))
	})
}

// SeekToBegin seeks q to its first stored message.
func (c *LitePullConsumer) SeekToBegin(q MessageQueue) error {
	return c.onQueue(q, func(h *C.rmq_lite_pull_consumer_t, cq *C.rmq_message_queue_t) C.rmq_status_t {
		return C.rmq_lite_pull_consumer_seek_to_begin(h, cq)
	})
}

// SeekToEnd seeks q past its last message: only later messages are polled.
func (c *LitePullConsumer) SeekToEnd(q MessageQueue) error {
	return c.onQueue(q, func(h *C.rmq_lite_pull_consumer_t, cq *C.rmq_message_queue_t) C.rmq_status_t {
		return C.rmq_lite_pull_consumer_seek_to_end(h, cq)
	})
}

// SeekToTimestamp seeks q to the first message stored at or after t.
func (c *LitePullConsumer) SeekToTimestamp(q MessageQueue, t time.Time) error {
	return c.onQueue(q, func(h *C.rmq_lite_pull_consumer_t, cq *C.rmq_message_queue_t) C.rmq_status_t {
		return C.rmq_lite_pull_consumer_seek_to_timestamp(h, cq, C.int64_t(t.UnixMilli()))
	})
}

// OffsetForTimestamp returns the offset of the first message of q stored at or after t.
func (c *LitePullConsumer) OffsetForTimestamp(q MessageQueue, t time.Time) (int64, error) {
	var out C.int64_t
	err := c.onQueue(q, func(h *C.rmq_lite_pull_consumer_t, cq *C.rmq_message_queue_t) C.rmq_status_t {
		return C.rmq_lite_pull_consumer_offset_for_timestamp(h, cq, C.int64_t(t.UnixMilli()), &out)
	})
	return int64(out), err
}

// Pause stops these queues: polls return none of their messages until Resume.
func (c *LitePullConsumer) Pause(queues ...MessageQueue) error {
	h, err := c.handle()
	if err != nil {
		return err
	}
	return withQueues(queues, func(arr *C.rmq_message_queue_t, n C.size_t) C.rmq_status_t {
		return C.rmq_lite_pull_consumer_pause(h, arr, n)
	})
}

// Resume lets pulling and polling of these queues go on from their consumed offsets.
func (c *LitePullConsumer) Resume(queues ...MessageQueue) error {
	h, err := c.handle()
	if err != nil {
		return err
	}
	return withQueues(queues, func(arr *C.rmq_message_queue_t, n C.size_t) C.rmq_status_t {
		return C.rmq_lite_pull_consumer_resume(h, arr, n)
	})
}

// Shutdown stops the consumer (idempotent): pulling stops, waiting polls fail, and with
// consumer.auto-commit the consumed offsets are committed.
func (c *LitePullConsumer) Shutdown() error {
	return c.do(func(h *C.rmq_lite_pull_consumer_t) C.rmq_status_t {
		return C.rmq_lite_pull_consumer_shutdown(h)
	})
}

// Close shuts the consumer down if needed and frees it. Idempotent.
func (c *LitePullConsumer) Close() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	h := c.h
	c.mu.Unlock()
	return call(func() C.rmq_status_t { return C.rmq_lite_pull_consumer_destroy(h) })
}
