package rmq

/*
#include <stdlib.h>
#include "rmq.h"

// Defined in request_export.go (//export). Declared here with the exact C types cgo gives it.
extern void rmqGoRequestCallback(rmq_request_callback_params_t *params, uintptr_t handle);

static void rmq_go_request_trampoline(const rmq_request_callback_params_t *params, void *user_data) {
	rmqGoRequestCallback((rmq_request_callback_params_t *)params, (uintptr_t)user_data);
}

static rmq_status_t rmq_go_request_async(rmq_producer_t *producer, const rmq_message_t *message,
                                         int64_t timeout_ms, uintptr_t handle) {
	return rmq_producer_request_async(producer, message, timeout_ms, rmq_go_request_trampoline,
	                                  (void *)handle);
}
*/
import "C"

import (
	"context"
	"runtime"
	"strings"
	"time"
	"unsafe"
)

// Request-reply (RPC over RocketMQ), with the Java client's properties (CORRELATION_ID,
// REPLY_TO_CLIENT, TTL; CLUSTER added by the broker), so Java requesters and responders work
// with these. A requester calls Request (or RequestAsync, RequestContext) and gets the reply as
// a *Message it owns; a responder is any consumer of the topic, answering each request it
// receives with Reply (or NewReply and any send).

func timeoutMillis(timeout time.Duration) (C.int64_t, error) {
	if timeout <= 0 {
		return 0, invalidArgument("request timeout must be positive, not %v", timeout)
	}
	ms := timeout.Milliseconds()
	if ms == 0 {
		ms = 1
	}
	return C.int64_t(ms), nil
}

// Request sends msg as a request and waits at most timeout for the reply a responder sends
// (see Reply); the caller owns the reply and should Close it. No reply in time is an *Error
// with StatusTimeout whose message says no reply came; shutdown meanwhile is StatusCancelled.
// msg is not changed.
func (p *Producer) Request(msg *Message, timeout time.Duration) (*Message, error) {
	ms, err := timeoutMillis(timeout)
	if err != nil {
		return nil, err
	}
	var reply *Message
	err = p.use(func(ph *C.rmq_producer_t) error {
		return msg.withHandle(func(mh *C.rmq_message_t) error {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var out *C.rmq_message_t
			if err := check(C.rmq_producer_request(ph, mh, ms, &out)); err != nil {
				return err
			}
			reply = wrapMessage(out)
			return nil
		})
	})
	return reply, err
}

// RequestAsync is Request without waiting: if it returns nil, callback runs exactly once
// later, on a library callback thread as SendAsync's callbacks do, with the reply (which the
// callback owns and should Close) or the error; if it returns an error, callback never runs.
// A pending request holds a slot of producer.max-in-flight-async-sends as an async send does.
func (p *Producer) RequestAsync(msg *Message, timeout time.Duration, callback func(*Message, error)) error {
	if callback == nil {
		return invalidArgument("callback is nil")
	}
	ms, err := timeoutMillis(timeout)
	if err != nil {
		return err
	}
	return p.use(func(ph *C.rmq_producer_t) error {
		return msg.withHandle(func(mh *C.rmq_message_t) error {
			return submitHandle(callback, func(h C.uintptr_t) C.rmq_status_t {
				return C.rmq_go_request_async(ph, mh, ms, h)
			})
		})
	})
}

// RequestContext is Request bounded by ctx as well: the request's timeout is the shorter of
// timeout and ctx's deadline, and it returns ctx.Err() as soon as ctx is done (a reply that
// comes later is dropped). The request itself is not taken back: the responder may still
// receive it.
func (p *Producer) RequestContext(ctx context.Context, msg *Message, timeout time.Duration) (*Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if deadline, ok := ctx.Deadline(); ok {
		if left := time.Until(deadline); left < timeout {
			timeout = left
		}
		if timeout <= 0 {
			return nil, context.DeadlineExceeded
		}
	}
	type outcome struct {
		reply *Message
		err   error
	}
	done := make(chan outcome, 1)
	if err := p.RequestAsync(msg, timeout, func(reply *Message, err error) {
		done <- outcome{reply, err}
	}); err != nil {
		return nil, err
	}
	select {
	case o := <-done:
		return o.reply, o.err
	case <-ctx.Done():
		go func() {
			if o := <-done; o.reply != nil {
				o.reply.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// NewReply builds the reply to req (a request a consumer received) with body: topic
// "<cluster>_REPLY_TOPIC", MSG_TYPE=reply and the request's CORRELATION_ID, REPLY_TO_CLIENT
// and TTL, as Java's MessageUtil.createReplyMessage. Send it with any producer; the caller owns
// it and should Close it. A message that is not a request is StatusInvalidArgument.
func NewReply(req *ReceivedMessage, body []byte) (*Message, error) {
	if req == nil {
		return nil, invalidArgument("request is nil")
	}
	var props strings.Builder
	for k, v := range req.Properties {
		props.WriteString(k)
		props.WriteByte(1)
		props.WriteString(v)
		props.WriteByte(2)
	}
	cp, cn := cText(props.String())
	var bp *C.uint8_t
	if len(body) > 0 {
		bp = (*C.uint8_t)(unsafe.Pointer(&body[0]))
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var out *C.rmq_message_t
	if err := check(C.rmq_message_create_reply(cp, cn, bp, C.size_t(len(body)), &out)); err != nil {
		return nil, err
	}
	return wrapMessage(out), nil
}

// Reply answers req with body: NewReply, then SendSync, which returns once the broker has
// pushed the reply to the requester.
func (p *Producer) Reply(req *ReceivedMessage, body []byte) (*SendResult, error) {
	reply, err := NewReply(req, body)
	if err != nil {
		return nil, err
	}
	defer reply.Close()
	return p.SendSync(reply)
}
