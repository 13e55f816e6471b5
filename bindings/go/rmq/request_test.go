package rmq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// patient is long enough for a responder that is still starting (rebalance, first pull).
const patient = 30 * time.Second

// requestProducer is a started producer in a client instance of its own.
func requestProducer(t *testing.T) *Producer {
	t.Helper()
	return startedProducer(t, map[string]string{
		"producer.group": fmt.Sprintf("GoRmqRR_%s_%d", runID, topicSeq.Add(1)),
		"instance-name":  fmt.Sprintf("gorr_%s_%d", runID, topicSeq.Add(1)),
	})
}

// startResponder consumes topic and answers every request with "re: " + body; it returns the
// number of requests answered so far.
func startResponder(t *testing.T, topic string) *atomic.Int64 {
	t.Helper()
	replier := requestProducer(t)
	sendN(t, replier, topic, "not-a-request", 1, "") // the topic exists before the consumer starts
	var answered atomic.Int64
	c := newConsumer(t, nil)
	if err := c.Subscribe(topic, "*"); err != nil {
		t.Fatal(err)
	}
	err := c.Start(func(msgs []*ReceivedMessage) ConsumeResult {
		for _, m := range msgs {
			_, err := replier.Reply(m, append([]byte("re: "), m.Body...))
			var e *Error
			if errors.As(err, &e) && e.Status == StatusInvalidArgument {
				continue // not a request
			}
			if err != nil {
				return ReconsumeLater(1)
			}
			answered.Add(1)
		}
		return ConsumeSuccess
	})
	if err != nil {
		t.Fatal(err)
	}
	return &answered
}

func checkReply(t *testing.T, reply *Message, question string) {
	t.Helper()
	if reply == nil {
		t.Fatalf("%s: no reply", question)
	}
	defer reply.Close()
	if got := reply.Body(); !bytes.Equal(got, []byte("re: "+question)) {
		t.Errorf("%s: reply body %q", question, got)
	}
	if !strings.HasSuffix(reply.Topic(), "_REPLY_TOPIC") {
		t.Errorf("%s: reply topic %q", question, reply.Topic())
	}
	if v, _ := reply.Property("MSG_TYPE"); v != "reply" {
		t.Errorf("%s: MSG_TYPE %q", question, v)
	}
	if v, ok := reply.Property("CORRELATION_ID"); !ok || v == "" {
		t.Errorf("%s: no CORRELATION_ID", question)
	}
}

func TestRequestRoundTripsBlockingAsyncAndWithContext(t *testing.T) {
	topic := uniqueTopic(t)
	answered := startResponder(t, topic)
	p := requestProducer(t)

	q := newMsg(t, topic, []byte("q-blocking"))
	reply, err := p.Request(q, patient)
	if err != nil {
		t.Fatalf("Request: %v", err)
	}
	checkReply(t, reply, "q-blocking")
	if _, ok := q.Property("CORRELATION_ID"); ok {
		t.Error("the request message was changed")
	}

	ctx, cancel := context.WithTimeout(context.Background(), patient)
	defer cancel()
	reply, err = p.RequestContext(ctx, newMsg(t, topic, []byte("q-context")), time.Hour)
	if err != nil {
		t.Fatalf("RequestContext: %v", err)
	}
	checkReply(t, reply, "q-context")

	const n = 4
	type outcome struct {
		question string
		reply    *Message
		err      error
	}
	done := make(chan outcome, 2*n)
	for i := 0; i < n; i++ {
		question := fmt.Sprintf("q-async-%d", i)
		if err := p.RequestAsync(newMsg(t, topic, []byte(question)), patient, func(r *Message, err error) {
			done <- outcome{question, r, err}
		}); err != nil {
			t.Fatalf("RequestAsync: %v", err)
		}
	}
	for i := 0; i < n; i++ {
		select {
		case o := <-done:
			if o.err != nil {
				t.Fatalf("%s: %v", o.question, o.err)
			}
			checkReply(t, o.reply, o.question)
		case <-time.After(2 * patient):
			t.Fatal("a request callback did not run")
		}
	}
	// the broker answers the responder's send after it has pushed the reply to us
	eventually(t, "the responder counts every request answered", func() bool { return answered.Load() == 2+n })
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if len(done) != 0 {
		t.Error("a callback ran twice")
	}
}

func TestRequestNobodyAnswersTimesOutSayingNoReplyCame(t *testing.T) {
	p := requestProducer(t)
	topic := uniqueTopic(t)
	_, err := p.Request(newMsg(t, topic, []byte("anyone?")), 1500*time.Millisecond)
	if e := wantStatus(t, err, StatusTimeout); e != nil && !strings.Contains(e.Message, "no reply came within 1500 ms") {
		t.Errorf("message %q", e.Message)
	}
	done := make(chan error, 1)
	if err := p.RequestAsync(newMsg(t, topic, []byte("anyone?")), 1500*time.Millisecond, func(r *Message, err error) {
		done <- err
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		wantStatus(t, err, StatusTimeout)
	case <-time.After(within):
		t.Fatal("no callback")
	}
	// a context that ends first wins
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := p.RequestContext(ctx, newMsg(t, topic, []byte("anyone?")), time.Hour); err == nil {
		t.Error("RequestContext past its deadline succeeded")
	}
}

func TestShutdownCancelsWaitingRequests(t *testing.T) {
	p := requestProducer(t)
	topic := uniqueTopic(t)
	var calls atomic.Int32
	done := make(chan error, 2)
	if err := p.RequestAsync(newMsg(t, topic, []byte("wait")), 10*time.Minute, func(r *Message, err error) {
		calls.Add(1)
		done <- err
	}); err != nil {
		t.Fatal(err)
	}
	if err := p.Shutdown(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		wantStatus(t, err, StatusCancelled)
	case <-time.After(within):
		t.Fatal("no callback after shutdown")
	}
	p.Close()
	if calls.Load() != 1 {
		t.Errorf("callback ran %d times", calls.Load())
	}
}

func TestRequestMisuse(t *testing.T) {
	p := requestProducer(t)
	m := newMsg(t, uniqueTopic(t), []byte("x"))
	_, err := p.Request(m, 0)
	wantStatus(t, err, StatusInvalidArgument)
	wantStatus(t, p.RequestAsync(m, time.Second, nil), StatusInvalidArgument)
	_, err = NewReply(&ReceivedMessage{Properties: map[string]string{"KEYS": "k"}}, []byte("x"))
	if e := wantStatus(t, err, StatusInvalidArgument); e != nil && !strings.Contains(e.Message, "CLUSTER") {
		t.Errorf("message %q", e.Message)
	}
	req := &ReceivedMessage{Properties: map[string]string{
		"CLUSTER": "Cl", "REPLY_TO_CLIENT": "me", "CORRELATION_ID": "c-1", "TTL": "3000",
	}}
	reply, err := NewReply(req, []byte("ok"))
	if err != nil {
		t.Fatal(err)
	}
	defer reply.Close()
	if reply.Topic() != "Cl_REPLY_TOPIC" || string(reply.Body()) != "ok" {
		t.Errorf("reply %q %q", reply.Topic(), reply.Body())
	}
	for k, want := range map[string]string{"CORRELATION_ID": "c-1", "REPLY_TO_CLIENT": "me", "TTL": "3000", "MSG_TYPE": "reply"} {
		if v, _ := reply.Property(k); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
	p.Close()
	_, err = p.Request(m, time.Second)
	wantStatus(t, err, StatusInvalidHandle)
}
