package rmq

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// Fault tests against the real broker: Close and Shutdown with many sends in flight, and Close
// of one producer from another producer's callback. Every wait is bounded; no assertion
// depends on how fast anything is. (No fork: a Go program cannot fork safely.)

// inFlight records the callbacks of n async sends: how often each ran, with what, and whether
// it ran after a point the test marks with stop.
type inFlight struct {
	calls    []atomic.Int32
	errs     []atomic.Value // error, or nil-error marker
	late     atomic.Int32
	total    atomic.Int32
	stopped  atomic.Bool
	accepted int
}

type noError struct{}

func newInFlight(n int) *inFlight {
	return &inFlight{calls: make([]atomic.Int32, n), errs: make([]atomic.Value, n)}
}

func (f *inFlight) callback(i int) func(*SendResult, error) {
	return func(res *SendResult, err error) {
		if f.stopped.Load() {
			f.late.Add(1)
		}
		if err == nil && res == nil {
			err = errors.New("nil result without an error")
		}
		if err != nil {
			f.errs[i].Store(err)
		} else {
			f.errs[i].Store(noError{})
		}
		f.calls[i].Add(1)
		f.total.Add(1)
	}
}

// issue sends msg n times with p; every send must be accepted.
func (f *inFlight) issue(t *testing.T, p *Producer, msg *Message) {
	t.Helper()
	for i := range f.calls {
		if err := p.SendAsync(msg, f.callback(i)); err != nil {
			t.Fatalf("SendAsync %d: %v", i, err)
		}
		f.accepted++
	}
}

// check asserts each callback ran exactly once, none after stop, each with a result or
// StatusCancelled; it returns how many were sent and how many cancelled.
func (f *inFlight) check(t *testing.T) (sent, cancelled int) {
	t.Helper()
	reported := 0
	if n := f.late.Load(); n != 0 {
		t.Errorf("%d callbacks ran after Close returned", n)
	}
	if n := int(f.total.Load()); n != f.accepted {
		t.Errorf("%d callbacks ran for %d accepted sends", n, f.accepted)
	}
	for i := range f.calls {
		if c := f.calls[i].Load(); c != 1 {
			if reported++; reported <= 5 {
				t.Errorf("send %d: callback ran %d times", i, c)
			}
			continue
		}
		switch v := f.errs[i].Load().(type) {
		case noError:
			sent++
		case error:
			var e *Error
			if errors.As(v, &e) && e.Status == StatusCancelled && errors.Is(v, ErrCancelled) && e.Message != "" {
				cancelled++
			} else if reported++; reported <= 5 {
				t.Errorf("send %d: %v, want a result or %s", i, v, StatusName(StatusCancelled))
			}
		}
	}
	return sent, cancelled
}

// Close (or Shutdown, then Close) right after thousands of SendAsync calls: each callback runs
// exactly once, all before Close returns, with a result or StatusCancelled.
func TestCloseWithManySendsInFlight(t *testing.T) {
	for _, shutdownFirst := range []bool{false, true} {
		name := "Close"
		if shutdownFirst {
			name = "ShutdownThenClose"
		}
		t.Run(name, func(t *testing.T) {
			baseHandles := liveAsyncHandles.Load()
			// An instance of its own: closing its last producer closes its connections.
			p := startedProducer(t, map[string]string{"instance-name": "faults-" + runID + "-" + name})
			topic := uniqueTopic(t)
			warmUp(t, p, topic)
			msg := newMsg(t, topic, []byte("in flight at shutdown"))
			f := newInFlight(3000)
			f.issue(t, p, msg)
			if shutdownFirst {
				if err := p.Shutdown(); err != nil {
					t.Fatalf("Shutdown: %v", err)
				}
				wantStatus(t, p.SendAsync(msg, func(*SendResult, error) {}), StatusInvalidState)
			}
			if err := p.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			f.stopped.Store(true)
			sent, cancelled := f.check(t)
			t.Logf("%d sent, %d cancelled of %d", sent, cancelled, f.accepted)
			if sent+cancelled != f.accepted {
				t.Errorf("%d sent + %d cancelled != %d accepted", sent, cancelled, f.accepted)
			}
			if h := liveAsyncHandles.Load(); h != baseHandles {
				t.Errorf("%d cgo handles leaked", h-baseHandles)
			}
			time.Sleep(100 * time.Millisecond) // a late or second callback would show now
			if n := f.late.Load(); n != 0 {
				t.Errorf("%d callbacks ran after Close returned", n)
			}
		})
	}
}

// A name server that accepts connections and never answers holds every send at its route
// lookup, so all are in flight at Shutdown: every one ends with StatusCancelled, at once.
func TestShutdownCancelsSendsHeldBySilentNameServer(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0") // never Accepts: the kernel's backlog does
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	for round := 0; round < 10; round++ {
		p, err := NewProducer(map[string]string{
			"name-server":                   silent.Addr().String(),
			"producer.group":                fmt.Sprintf("GoRmqSilent_%s_%d", runID, round),
			"producer.send-message-timeout": "20000",
			"client.api-timeout":            "20000",
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		msg := newMsg(t, "GoRmqSilentTopic", []byte("never routed"))
		f := newInFlight(200)
		f.issue(t, p, msg)
		t0 := time.Now()
		if err := p.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if d := time.Since(t0); d > 10*time.Second {
			t.Errorf("Close took %v: it waited for the send timeout", d)
		}
		f.stopped.Store(true)
		if sent, cancelled := f.check(t); sent != 0 || cancelled != f.accepted {
			t.Fatalf("round %d: %d sent, %d cancelled of %d", round, sent, cancelled, f.accepted)
		}
	}
}

// Close of producer B from producer A's callback waits for B's callbacks: every one of them has
// run when Close returns, running them on A's callback thread if they are queued behind it.
func TestCloseOtherProducerFromCallback(t *testing.T) {
	for _, c := range []struct {
		threads string
		shared  bool
	}{{"1", true}, {"1", false}, {"4", true}, {"4", false}} {
		t.Run(fmt.Sprintf("threads%s_shared%v", c.threads, c.shared), func(t *testing.T) {
			instA := fmt.Sprintf("faults-a-%s-%s-%v", runID, c.threads, c.shared)
			instB := instA
			if !c.shared {
				instB += "-b"
			}
			cfg := func(inst, group string) map[string]string {
				return map[string]string{
					"instance-name":                    inst,
					"producer.group":                   group,
					"client.callback-executor-threads": c.threads,
				}
			}
			a := startedProducer(t, cfg(instA, "GoRmqFaultA_"+runID))
			b := startedProducer(t, cfg(instB, "GoRmqFaultB_"+runID))
			topic := uniqueTopic(t)
			warmUp(t, a, topic)
			warmUp(t, b, topic)
			msg := newMsg(t, topic, []byte("close another producer from a callback"))

			f := newInFlight(1000)
			issued := make(chan struct{})
			type outcome struct {
				closeErr       error
				pendingAtClose int32
				doneAtReturn   int32
			}
			result := make(chan outcome, 1)
			err := a.SendAsync(msg, func(*SendResult, error) {
				select {
				case <-issued: // B has its sends in flight
				case <-time.After(30 * time.Second):
				}
				o := outcome{pendingAtClose: int32(f.accepted) - f.total.Load()}
				o.closeErr = b.Close()
				o.doneAtReturn = f.total.Load()
				f.stopped.Store(true)
				result <- o
			})
			if err != nil {
				t.Fatalf("SendAsync on A: %v", err)
			}
			f.issue(t, b, msg)
			close(issued)
			var o outcome
			select {
			case o = <-result:
			case <-time.After(60 * time.Second):
				t.Fatal("A's callback closing B did not return")
			}
			if o.closeErr != nil {
				t.Fatalf("B.Close from A's callback: %v", o.closeErr)
			}
			if int(o.doneAtReturn) != f.accepted {
				t.Errorf("when B.Close returned %d of %d callbacks of B had run", o.doneAtReturn, f.accepted)
			}
			sent, cancelled := f.check(t)
			t.Logf("%d of B's sends pending at Close; %d sent, %d cancelled", o.pendingAtClose, sent, cancelled)
			if _, err := b.SendSync(msg); !errors.Is(err, ErrInvalidHandle) {
				t.Errorf("B after Close: %v, want %s", err, StatusName(StatusInvalidHandle))
			}
			if _, err := a.SendSync(msg); err != nil {
				t.Errorf("A after closing B: %v", err)
			}
		})
	}
}
