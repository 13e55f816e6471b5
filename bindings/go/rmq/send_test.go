package rmq

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestSendSyncRoundTrip(t *testing.T) {
	p := startedProducer(t, nil)
	topic := uniqueTopic(t)
	warmUp(t, p, topic)
	for _, c := range roundTripCases("sync", topic) {
		t.Run(c.name, func(t *testing.T) {
			msg := c.message(t, topic)
			sentAt := time.Now()
			res, err := p.SendSync(msg)
			if err != nil {
				t.Fatalf("SendSync: %v", err)
			}
			checkSendResult(t, res, topic)
			got, err := p.ViewMessage(res.OffsetMsgID)
			if err != nil {
				t.Fatalf("ViewMessage(%s): %v", res.OffsetMsgID, err)
			}
			defer got.Close()
			checkStored(t, got, c, topic, res, sentAt)
		})
	}
	_, err := p.ViewMessage("not-an-id")
	wantStatus(t, err, StatusInvalidArgument)
	probe, err := NewMessage(topic, []byte("probe"))
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	probeRes, err := p.SendSync(probe)
	if err != nil {
		t.Fatalf("SendSync(probe): %v", err)
	}
	// this broker's store address, with a commit log offset nothing is stored at
	_, err = p.ViewMessage(probeRes.OffsetMsgID[:16] + "00000000FFFFFFFF")
	var e *Error
	if !errors.As(err, &e) || !e.IsBrokerError() {
		t.Errorf("viewing an absent message: got %v, want a broker error", err)
	}
}

func TestSendAsyncRoundTrip(t *testing.T) {
	p := startedProducer(t, nil)
	topic := uniqueTopic(t)
	warmUp(t, p, topic)
	cases := roundTripCases("async", topic)
	type outcome struct {
		res *SendResult
		err error
	}
	outcomes := make([]outcome, len(cases))
	calls := make([]atomic.Int32, len(cases))
	var wg sync.WaitGroup
	sentAt := time.Now()
	for i, c := range cases {
		msg := c.message(t, topic)
		wg.Add(1)
		err := p.SendAsync(msg, func(res *SendResult, err error) {
			if calls[i].Add(1) == 1 { // a second call is reported below, not a panic here
				outcomes[i] = outcome{res, err}
				wg.Done()
			}
		})
		if err != nil {
			t.Fatalf("SendAsync(%s): %v", c.name, err)
		}
		// The library copied the message: it may go away before the callback runs.
		msg.Close()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	waitTimeout(t, done, 30*time.Second, "async callbacks")
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if n := calls[i].Load(); n != 1 {
				t.Fatalf("callback ran %d times", n)
			}
			o := outcomes[i]
			if o.err != nil {
				t.Fatalf("async send failed: %v", o.err)
			}
			checkSendResult(t, o.res, topic)
			got, err := p.ViewMessage(o.res.OffsetMsgID)
			if err != nil {
				t.Fatalf("ViewMessage(%s): %v", o.res.OffsetMsgID, err)
			}
			defer got.Close()
			checkStored(t, got, c, topic, o.res, sentAt)
		})
	}
}

func TestSendOnewayRoundTrip(t *testing.T) {
	p := startedProducer(t, nil)
	topic := uniqueTopic(t)
	warmUp(t, p, topic)
	cases := roundTripCases("oneway", topic)
	sentAt := time.Now()
	for _, c := range cases {
		if err := p.SendOneway(c.message(t, topic)); err != nil {
			t.Fatalf("SendOneway(%s): %v", c.name, err)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := c.keys[0] // unique to this message
			var found []*Message
			var lastErr error
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) {
				found, lastErr = p.QueryMessage(topic, key, 32, sentAt.Add(-time.Minute), time.Now().Add(time.Minute))
				if lastErr == nil && len(found) > 0 {
					break
				}
				time.Sleep(250 * time.Millisecond)
			}
			for _, m := range found {
				defer m.Close()
			}
			if len(found) != 1 {
				t.Fatalf("QueryMessage(%s, %s) found %d messages within 20 s (last error: %v)", topic, key, len(found), lastErr)
			}
			checkStored(t, found[0], c, topic, nil, sentAt)
			// The same message again, by its store id.
			again, err := p.ViewMessage(found[0].OffsetMsgID())
			if err != nil {
				t.Fatalf("ViewMessage: %v", err)
			}
			defer again.Close()
			checkStored(t, again, c, topic, nil, sentAt)
		})
	}
	// The key all three share finds all three.
	shared := cases[0].keys[1]
	all, err := p.QueryMessage(topic, shared, 32, sentAt.Add(-time.Minute), time.Now().Add(time.Minute))
	if err != nil {
		t.Fatalf("QueryMessage(shared key): %v", err)
	}
	for _, m := range all {
		m.Close()
	}
	if len(all) != len(cases) {
		t.Errorf("shared key found %d messages, want %d", len(all), len(cases))
	}
	// maxNum limits the answer (per broker; this cluster has one).
	one, err := p.QueryMessage(topic, shared, 1, sentAt.Add(-time.Minute), time.Now().Add(time.Minute))
	if err != nil {
		t.Fatalf("QueryMessage(maxNum 1): %v", err)
	}
	for _, m := range one {
		m.Close()
	}
	if len(one) != 1 {
		t.Errorf("maxNum 1 found %d messages", len(one))
	}
	// A key nobody used.
	none, err := p.QueryMessage(topic, "no-such-key-"+topic, 8, sentAt.Add(-time.Minute), time.Now().Add(time.Minute))
	t.Logf("query of an unused key: %d messages, error %v", len(none), err)
	if len(none) != 0 {
		t.Errorf("unused key found %d messages", len(none))
	}
	_, err = p.QueryMessage(topic, shared, 0, sentAt, time.Now())
	wantStatus(t, err, StatusInvalidArgument)
}

func TestConcurrentSendAsync(t *testing.T) {
	const goroutines, perGoroutine = 8, 25
	const total = goroutines * perGoroutine
	baseHandles := liveAsyncHandles.Load()
	p := startedProducer(t, nil)
	topic := uniqueTopic(t)
	warmUp(t, p, topic)

	var calls [total]atomic.Int32
	var results [total]*SendResult
	var errs [total]error
	var wg sync.WaitGroup
	wg.Add(total)
	var senders sync.WaitGroup
	sendErrs := make(chan error, total)
	for g := 0; g < goroutines; g++ {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for j := 0; j < perGoroutine; j++ {
				i := g*perGoroutine + j
				msg, err := NewMessage(topic, []byte(fmt.Sprintf("concurrent-%d-%s", i, runID)))
				if err != nil {
					sendErrs <- err
					wg.Done()
					continue
				}
				err = p.SendAsync(msg, func(res *SendResult, err error) {
					if calls[i].Add(1) == 1 { // a second call is reported below
						results[i], errs[i] = res, err
						wg.Done()
					}
				})
				msg.Close()
				if err != nil {
					sendErrs <- fmt.Errorf("SendAsync %d: %w", i, err)
					wg.Done()
				}
			}
		}()
	}
	senders.Wait()
	close(sendErrs)
	for err := range sendErrs {
		t.Error(err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	waitTimeout(t, done, 60*time.Second, fmt.Sprintf("%d async callbacks", total))

	msgIDs := map[string]int{}
	offsetIDs := map[string]int{}
	for i := 0; i < total; i++ {
		if n := calls[i].Load(); n != 1 {
			t.Errorf("send %d: callback ran %d times", i, n)
			continue
		}
		if errs[i] != nil {
			t.Errorf("send %d failed: %v", i, errs[i])
			continue
		}
		r := results[i]
		checkSendResult(t, r, topic)
		if prev, dup := msgIDs[r.MsgID]; dup {
			t.Errorf("sends %d and %d share msg id %s", prev, i, r.MsgID)
		}
		if prev, dup := offsetIDs[r.OffsetMsgID]; dup {
			t.Errorf("sends %d and %d share offset msg id %s", prev, i, r.OffsetMsgID)
		}
		msgIDs[r.MsgID], offsetIDs[r.OffsetMsgID] = i, i
	}
	// Every message is stored with its own body.
	for i := 0; i < total; i += 7 {
		if results[i] == nil {
			continue
		}
		got, err := p.ViewMessage(results[i].OffsetMsgID)
		if err != nil {
			t.Errorf("ViewMessage %d: %v", i, err)
			continue
		}
		if want := fmt.Sprintf("concurrent-%d-%s", i, runID); string(got.Body()) != want {
			t.Errorf("message %d: body %q, want %q", i, got.Body(), want)
		}
		got.Close()
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// Close waited for the callbacks; none runs twice or late.
	time.Sleep(200 * time.Millisecond)
	for i := 0; i < total; i++ {
		if n := calls[i].Load(); n != 1 {
			t.Errorf("send %d: callback ran %d times after Close", i, n)
		}
	}
	if n := liveAsyncHandles.Load(); n != baseHandles {
		t.Errorf("%d cgo handles leaked", n-baseHandles)
	}
}

// Close waits for the callbacks of accepted sends: once it returns, every callback has run
// (with a result or an error), and none runs later.
func TestCloseWaitsForCallbacks(t *testing.T) {
	baseHandles := liveAsyncHandles.Load()
	p := startedProducer(t, nil)
	topic := uniqueTopic(t)
	warmUp(t, p, topic)
	const n = 50
	var calls [n]atomic.Int32
	accepted := 0
	msg := newMsg(t, topic, []byte("close-waits"))
	for i := 0; i < n; i++ {
		err := p.SendAsync(msg, func(*SendResult, error) {
			time.Sleep(time.Millisecond) // a slowish callback
			calls[i].Add(1)
		})
		if err != nil {
			t.Fatalf("SendAsync: %v", err)
		}
		accepted++
	}
	p.Close()
	for i := 0; i < accepted; i++ {
		if c := calls[i].Load(); c != 1 {
			t.Errorf("send %d: callback ran %d times by the time Close returned", i, c)
		}
	}
	if h := liveAsyncHandles.Load(); h != baseHandles {
		t.Errorf("%d cgo handles leaked", h-baseHandles)
	}
}

// A callback may call the producer's methods without deadlocking. Close of its own producer
// would wait for itself: it is refused and the producer stays usable until closed elsewhere.
func TestCloseFromCallback(t *testing.T) {
	p := startedProducer(t, nil)
	topic := uniqueTopic(t)
	warmUp(t, p, topic)
	msg := newMsg(t, topic, []byte("close-from-callback"))
	done := make(chan error, 1)
	err := p.SendAsync(msg, func(res *SendResult, err error) {
		if err != nil {
			done <- err
			return
		}
		var e *Error
		if err := p.Close(); err == nil {
			done <- errors.New("Close from the producer's own callback succeeded")
			return
		} else if !errors.As(err, &e) || e.Status != StatusInvalidState {
			done <- err
			return
		}
		_, err = p.SendSync(msg) // still open
		done <- err
	})
	if err != nil {
		t.Fatalf("SendAsync: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("in the callback: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("callback calling Close deadlocked")
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close outside the callback: %v", err)
	}
	if _, err := p.SendSync(msg); err == nil {
		t.Fatal("send after Close succeeded")
	}
}
