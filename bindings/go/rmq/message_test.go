package rmq

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// A message that is never closed is freed by its finalizer, in Go and in the library.
func TestMessageFinalizer(t *testing.T) {
	base := liveMessages.Load()
	const n = 50
	var zero Message
	raws := sliceOf(zero.h, n) // raw C handles only; they do not keep the Messages alive
	func() {
		for i := 0; i < n; i++ {
			m, err := NewMessage("GoRmqFinalizer", []byte("x"))
			if err != nil {
				t.Fatal(err)
			}
			raws = append(raws, m.h)
		}
	}()
	if got := liveMessages.Load() - base; got < n {
		t.Fatalf("%d live messages, want at least %d", got, n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for liveMessages.Load() > base && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if got := liveMessages.Load() - base; got > 0 {
		t.Fatalf("%d forgotten messages not finalized", got)
	}
	for _, raw := range raws {
		// The library no longer knows the handle: it was destroyed.
		if err := messageSetTopic(raw, "x"); !errors.Is(err, ErrInvalidHandle) {
			t.Fatalf("finalized message handle: got %v, want %s", err, StatusName(StatusInvalidHandle))
		}
	}
}

// Getters copy borrowed views while setters replace them and Close frees the message; run
// with -race, nothing may race or read freed memory.
func TestMessageConcurrentUse(t *testing.T) {
	m, err := NewMessage("GoRmqConcurrent", []byte("start"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				b := m.Body()
				if b != nil && !bytes.HasPrefix(b, []byte("body-")) && string(b) != "start" {
					t.Errorf("torn body %q", b)
					return
				}
				_ = m.Properties()
				_ = m.Topic()
				_, _ = m.Property("p")
			}
		}()
	}
	for i := 0; i < 2000; i++ {
		if err := m.SetBody([]byte(fmt.Sprintf("body-%d", i))); err != nil {
			t.Fatal(err)
		}
		if err := m.SetProperty("p", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	m.Close()
	time.Sleep(20 * time.Millisecond)
	close(stop)
	wg.Wait()
}

func TestNilArguments(t *testing.T) {
	p := startedProducer(t, nil)
	_, err := p.SendSync(nil)
	wantStatus(t, err, StatusInvalidArgument)
	wantStatus(t, p.SendOneway(nil), StatusInvalidArgument)
	msg := newMsg(t, uniqueTopic(t), []byte("x"))
	wantStatus(t, p.SendAsync(msg, nil), StatusInvalidArgument)
	var nilProducer *Producer
	wantStatus(t, nilProducer.Start(), StatusInvalidArgument)
	if err := nilProducer.Close(); err != nil {
		t.Fatal(err)
	}
}

// sliceOf makes an empty slice of like's type (test files cannot name C types).
func sliceOf[T any](like T, capacity int) []T { return make([]T, 0, capacity) }
