package rmq

/*
#include "rmq.h"
*/
import "C"

import (
	"os"
	"sync"
	"syscall"
)

// completionBatch is how many results one cgo call takes.
const completionBatch = 256

// Completion is the outcome of one send made with CompletionQueue.Send: Result on success,
// else Err (an *Error; StatusCancelled if the producer was closed first).
type Completion struct {
	Tag    uint64
	Result *SendResult
	Err    error
}

// CompletionQueue collects the results of async sends from any number of producers and
// delivers them on a channel. One goroutine takes up to 256 results per cgo call and feeds the
// channel, so results cross into Go in batches instead of one callback each.
//
// It owes at most its capacity of results at a time (sends in flight plus results not yet
// read from the channel's feeder): Send fails with StatusInFlightFull past that, so read
// Completions while sending. Close the producers before the queue to receive every result.
// All methods may be called from any goroutine.
type CompletionQueue struct {
	mu     sync.RWMutex
	h      *C.rmq_completion_queue_t
	closed bool
	out    chan Completion
	stop   chan struct{}
	done   chan struct{}
}

// NewCompletionQueue makes a queue that owes at most capacity results (at least 1) and starts
// its poller goroutine.
func NewCompletionQueue(capacity int) (*CompletionQueue, error) {
	if capacity < 1 {
		return nil, invalidArgument("capacity must be at least 1, not %d", capacity)
	}
	var h *C.rmq_completion_queue_t
	if err := call(func() C.rmq_status_t { return C.rmq_completion_queue_new(C.size_t(capacity), &h) }); err != nil {
		return nil, err
	}
	q := &CompletionQueue{
		h:    h,
		out:  make(chan Completion, completionBatch),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go q.poll()
	return q, nil
}

// Completions is the channel of results, in the order they arrived. It is closed by Close.
func (q *CompletionQueue) Completions() <-chan Completion { return q.out }

// Send sends msg with p without waiting; its Completion, carrying tag, arrives on
// Completions exactly once. An error means nothing was sent and no Completion will come:
// StatusInFlightFull when the queue owes its capacity (read Completions, then send again) or
// p's in-flight window is full (see Producer.SendAsync), StatusInvalidState for a stopped
// producer, message errors. The message may be changed or closed as soon as Send returns.
func (q *CompletionQueue) Send(p *Producer, msg *Message, tag uint64) error {
	if q == nil {
		return invalidArgument("completion queue is nil")
	}
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return newError(StatusInvalidHandle, "completion queue is closed")
	}
	return p.use(func(ph *C.rmq_producer_t) error {
		return msg.withHandle(func(mh *C.rmq_message_t) error {
			return call(func() C.rmq_status_t {
				return C.rmq_producer_send_async_queued(ph, mh, q.h, C.uint64_t(tag))
			})
		})
	})
}

// poll is the one goroutine that takes results from C: one cgo call per batch of up to 256.
// It waits in Go's network poller on the queue's descriptor, so no OS thread sits blocked in C
// between batches (a blocked cgo call costs a thread hand-off on every wake-up); where the
// descriptor cannot be polled it falls back to waiting inside rmq_completion_queue_poll.
// It ends when the queue is destroyed (the descriptor turns readable and the next poll fails).
func (q *CompletionQueue) poll() {
	defer close(q.done)
	buf := make([]C.rmq_completion_t, completionBatch)
	deliver := func(n int) bool {
		for i := 0; i < n; i++ {
			select {
			case q.out <- completionOf(&buf[i]):
			case <-q.stop:
				return false
			}
		}
		return true
	}
	take := func(timeoutMs C.int32_t) (int, error) {
		var n C.size_t
		err := call(func() C.rmq_status_t {
			return C.rmq_completion_queue_poll(q.h, &buf[0], completionBatch, timeoutMs, &n)
		})
		return int(n), err
	}
	if rc := q.pollableFd(); rc != nil {
		defer rc.Close()
		if conn, err := rc.SyscallConn(); err == nil {
			for {
				var n int
				var pollErr error
				err := conn.Read(func(uintptr) bool {
					n, pollErr = take(0)
					return pollErr != nil || n > 0 // false: wait until readable, then ask again
				})
				if pollErr != nil {
					return // destroyed
				}
				if err != nil {
					break // not pollable after all (nothing was taken): wait in C below
				}
				if !deliver(n) {
					return
				}
			}
		}
	}
	for {
		n, err := take(-1)
		if err != nil || !deliver(n) {
			return // destroyed, or closed
		}
	}
}

// pollableFd is a duplicate of the queue's descriptor as an *os.File that Go's poller watches
// (the queue owns and closes its own descriptor; the duplicate is ours), or nil.
func (q *CompletionQueue) pollableFd() *os.File {
	var fd C.int32_t
	if call(func() C.rmq_status_t { return C.rmq_completion_queue_fd(q.h, &fd) }) != nil {
		return nil
	}
	syscall.ForkLock.RLock()
	dup, err := syscall.Dup(int(fd))
	if err == nil {
		syscall.CloseOnExec(dup)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil
	}
	// The descriptor is non-blocking (the library made it so), so NewFile registers it with
	// the poller.
	return os.NewFile(uintptr(dup), "rmq-completion-queue")
}

func completionOf(c *C.rmq_completion_t) Completion {
	r := Completion{Tag: uint64(c.user_tag)}
	if c.status != C.RMQ_OK {
		e := newError(int(c.status), C.GoString(&c.error_message[0]))
		e.BrokerCode = int(c.broker_code)
		r.Err = e
		return r
	}
	res := &SendResult{
		Status:      SendStatus(c.send_status),
		MsgID:       C.GoString(&c.msg_id[0]),
		OffsetMsgID: C.GoString(&c.offset_msg_id[0]),
		Topic:       C.GoString(&c.topic[0]),
		BrokerName:  C.GoString(&c.broker_name[0]),
		QueueID:     int32(c.queue_id),
		QueueOffset: int64(c.queue_offset),
	}
	res.StatusName = res.Status.String()
	r.Result = res
	return r
}

// Counts reports the results owed (sends in flight plus results not yet taken by the poller)
// and those waiting in the queue.
func (q *CompletionQueue) Counts() (owed, waiting int, err error) {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return 0, 0, newError(StatusInvalidHandle, "completion queue is closed")
	}
	var o, w C.size_t
	err = call(func() C.rmq_status_t { return C.rmq_completion_queue_counts(q.h, &o, &w) })
	return int(o), int(w), err
}

// Close frees the queue, stops the poller and closes the Completions channel. Results not
// yet received are dropped, as are results of sends still in flight when they arrive (close
// the producers first to receive them all). Idempotent; returns nil.
func (q *CompletionQueue) Close() error {
	if q == nil {
		return nil
	}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	q.mu.Unlock()
	close(q.stop)
	C.rmq_completion_queue_destroy(q.h) // wakes the poller's wait
	<-q.done
	close(q.out)
	return nil
}
