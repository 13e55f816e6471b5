package rmq

import (
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"
)

// sendAll sends one message per tag through q, collecting Completions whenever the queue is at
// capacity; returns what it collected.
func sendAll(t *testing.T, q *CompletionQueue, p *Producer, msg *Message, tags []uint64) []Completion {
	t.Helper()
	var got []Completion
	for _, tag := range tags {
		for {
			err := q.Send(p, msg, tag)
			if err == nil {
				break
			}
			if e, ok := err.(*Error); !ok || e.Status != StatusInFlightFull {
				t.Fatalf("Send %d: %v", tag, err)
			}
			got = append(got, receive(t, q, 1)...)
		}
	}
	return got
}

// receive reads n Completions, failing after 30 s without one.
func receive(t *testing.T, q *CompletionQueue, n int) []Completion {
	t.Helper()
	var got []Completion
	for len(got) < n {
		select {
		case c, ok := <-q.Completions():
			if !ok {
				t.Fatalf("Completions closed after %d of %d", len(got), n)
			}
			got = append(got, c)
		case <-time.After(30 * time.Second):
			t.Fatalf("no completion within 30 s; %d of %d", len(got), n)
		}
	}
	return got
}

func tagRange(from, to uint64) []uint64 {
	var tags []uint64
	for i := from; i < to; i++ {
		tags = append(tags, i)
	}
	return tags
}

func expectEachOnce(t *testing.T, got []Completion, want []uint64) {
	t.Helper()
	seen := map[uint64]int{}
	for _, c := range got {
		seen[c.Tag]++
	}
	if len(seen) != len(want) {
		t.Fatalf("%d distinct tags, want %d", len(seen), len(want))
	}
	for _, tag := range want {
		if seen[tag] != 1 {
			t.Fatalf("tag %d seen %d times", tag, seen[tag])
		}
	}
}

func TestCompletionQueueTenThousandSendsEachOnce(t *testing.T) {
	p := startedProducer(t, nil)
	topic := uniqueTopic(t)
	warmUp(t, p, topic)
	q, err := NewCompletionQueue(1024)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	msg := newMsg(t, topic, []byte("cq"))
	const n = 10000
	got := sendAll(t, q, p, msg, tagRange(0, n))
	got = append(got, receive(t, q, n-len(got))...)
	expectEachOnce(t, got, tagRange(0, n))
	stored := map[string]bool{}
	for _, c := range got {
		if c.Err != nil {
			t.Fatalf("tag %d: %v", c.Tag, c.Err)
		}
		checkSendResult(t, c.Result, topic)
		pos := fmt.Sprintf("%s/%d/%d", c.Result.BrokerName, c.Result.QueueID, c.Result.QueueOffset)
		if stored[pos] {
			t.Fatalf("two results name %s", pos)
		}
		stored[pos] = true
	}
	if owed, waiting, err := q.Counts(); err != nil || owed != 0 || waiting != 0 {
		t.Fatalf("Counts = %d, %d, %v; want 0, 0", owed, waiting, err)
	}
}

func TestCompletionQueueSharedByTwoProducers(t *testing.T) {
	a := startedProducer(t, map[string]string{"producer.group": "GoCqA_" + runID})
	b := startedProducer(t, map[string]string{"producer.group": "GoCqB_" + runID})
	topic := uniqueTopic(t)
	warmUp(t, a, topic)
	q, err := NewCompletionQueue(300)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	msg := newMsg(t, topic, []byte("shared"))
	var got []Completion
	for i := uint64(0); i < 500; i++ {
		got = append(got, sendAll(t, q, a, msg, []uint64{i})...)
		got = append(got, sendAll(t, q, b, msg, []uint64{1000 + i})...)
	}
	got = append(got, receive(t, q, 1000-len(got))...)
	expectEachOnce(t, got, append(tagRange(0, 500), tagRange(1000, 1500)...))
	for _, c := range got {
		if c.Err != nil {
			t.Fatalf("tag %d: %v", c.Tag, c.Err)
		}
	}
}

func TestCompletionQueueClosedWithSendsInFlight(t *testing.T) {
	p := startedProducer(t, nil)
	topic := uniqueTopic(t)
	warmUp(t, p, topic)
	q, err := NewCompletionQueue(500)
	if err != nil {
		t.Fatal(err)
	}
	msg := newMsg(t, topic, []byte("in flight"))
	sendAll(t, q, p, msg, tagRange(0, 200))
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q.Close() // idempotent
	for range q.Completions() {
		// drains what the channel still held; it is closed
	}
	wantStatus(t, q.Send(p, msg, 1), StatusInvalidHandle)
	if err := p.Close(); err != nil { // returns: the late results were dropped, not stuck
		t.Fatal(err)
	}
}

func TestCompletionQueueProducerClosedWithSendsInFlight(t *testing.T) {
	p := startedProducer(t, nil)
	topic := uniqueTopic(t)
	warmUp(t, p, topic)
	q, err := NewCompletionQueue(1000)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	msg := newMsg(t, topic, []byte("shut"))
	got := sendAll(t, q, p, msg, tagRange(0, 300))
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	got = append(got, receive(t, q, 300-len(got))...)
	expectEachOnce(t, got, tagRange(0, 300))
	for _, c := range got {
		if c.Err != nil {
			wantStatus(t, c.Err, StatusCancelled)
		}
	}
}

func TestCompletionQueueMisuse(t *testing.T) {
	if _, err := NewCompletionQueue(0); err == nil {
		t.Fatal("capacity 0 accepted")
	}
	q, err := NewCompletionQueue(4)
	if err != nil {
		t.Fatal(err)
	}
	msg := newMsg(t, "GoCqMisuse", []byte("x"))
	wantStatus(t, q.Send(nil, msg, 1), StatusInvalidArgument)
	p := newProducer(t, map[string]string{"producer.group": "GoCqMisuse_" + runID})
	wantStatus(t, q.Send(p, msg, 1), StatusInvalidState) // not started
	q.Close()
	if _, ok := <-q.Completions(); ok {
		t.Fatal("a completion from a queue that sent nothing")
	}
}

// BenchmarkCompletionQueueSend: async sends of 1 KiB with 256 in flight through a completion
// queue against the broker of RMQ_NAMESRV, reporting msgs/s and client CPU µs per message
// (the whole process, library threads included):
//
//	RMQ_NAMESRV=host:port go test -run '^$' -bench CompletionQueueSend -benchtime 50000x ./rmq
func BenchmarkCompletionQueueSend(b *testing.B) {
	benchAsync(b, true)
}

// BenchmarkCallbackSend: the same workload through SendAsync (one cgo callback per result).
func BenchmarkCallbackSend(b *testing.B) {
	benchAsync(b, false)
}

func benchAsync(b *testing.B, queued bool) {
	ns := os.Getenv("RMQ_NAMESRV")
	if ns == "" {
		b.Fatal("set RMQ_NAMESRV")
	}
	topic := fmt.Sprintf("GoBenchCq_%s_%v", runID, queued)
	p, err := NewProducer(map[string]string{"name-server": ns, "producer.group": "GoBenchCq_" + runID})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	if err := p.Start(); err != nil {
		b.Fatal(err)
	}
	msg, _ := NewMessage(topic, make([]byte, 1024))
	defer msg.Close()
	for i := 0; ; i++ {
		if _, err := p.SendSync(msg); err == nil {
			break
		} else if i == 60 {
			b.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	const inflight = 256
	q, err := NewCompletionQueue(2 * inflight)
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	window := make(chan struct{}, inflight)
	done := make(chan error, inflight)
	errs := 0
	go func() {
		for c := range q.Completions() {
			<-window
			done <- c.Err
		}
	}()
	cpu0 := cpuSeconds()
	start := time.Now()
	b.ResetTimer()
	received := 0
	for i := 0; i < b.N; i++ {
		for len(window) == inflight { // wait for a free slot, counting results
			if err := <-done; err != nil {
				errs++
			}
			received++
		}
		window <- struct{}{}
		var err error
		if queued {
			err = q.Send(p, msg, uint64(i))
		} else {
			err = p.SendAsync(msg, func(_ *SendResult, e error) { <-window; done <- e })
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	for received < b.N {
		if err := <-done; err != nil {
			errs++
		}
		received++
	}
	b.StopTimer()
	secs := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N)/secs, "msgs/s")
	b.ReportMetric((cpuSeconds()-cpu0)*1e6/float64(b.N), "cpu-µs/msg")
	b.ReportMetric(float64(errs), "errors")
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
