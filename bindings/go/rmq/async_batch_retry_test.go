package rmq

// Async batches, and async sends retried on another broker, against real brokers. The retry
// test pauses broker-b of the two-broker IPv6 cluster (SIGSTOP through the pid the cluster
// script reports for $RMQ_DATA_V6) and resumes it in a deferred call and a cleanup.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type outcome struct {
	res *SendResult
	err error
}

func TestSendBatchAsyncResolvesWithEachMessageID(t *testing.T) {
	topic := uniqueTopic(t)
	p := startedProducer(t, map[string]string{"producer.group": "GoAsyncBatch_" + runID})
	msgs := make([]*Message, 3)
	for i := range msgs {
		msgs[i] = newMsg(t, topic, []byte(fmt.Sprintf("go async batch %d", i)))
		if err := msgs[i].SetKeys(fmt.Sprintf("ab%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan outcome, 1)
	if err := p.SendBatchAsync(msgs, func(r *SendResult, err error) { done <- outcome{r, err} }); err != nil {
		t.Fatalf("SendBatchAsync: %v", err)
	}
	var o outcome
	select {
	case o = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("no callback within 15 s")
	}
	if o.err != nil {
		t.Fatalf("batch failed: %v", o.err)
	}
	ids, offsets := o.res.MsgIDs(), o.res.OffsetMsgIDs()
	if len(ids) != 3 || len(offsets) != 3 {
		t.Fatalf("ids %v offsets %v, want 3 each", ids, offsets)
	}
	for i, m := range msgs {
		back, err := p.ViewMessage(offsets[i])
		if err != nil {
			t.Fatalf("ViewMessage(%d): %v", i, err)
		}
		defer back.Close()
		want, got, id := m.Body(), back.Body(), back.MsgID()
		if !bytes.Equal(got, want) || id != ids[i] {
			t.Errorf("message %d: body %q id %s, want %q %s", i, got, id, want, ids[i])
		}
	}

	// refused before anything is sent; the callback never runs
	never := func(*SendResult, error) { t.Error("callback of a refused batch ran") }
	wantStatus(t, p.SendBatchAsync(nil, never), StatusInvalidArgument)
	wantStatus(t, p.SendBatchAsync(msgs, nil), StatusInvalidArgument)
	other := newMsg(t, topic+"x", []byte("x"))
	e := wantStatus(t, p.SendBatchAsync([]*Message{msgs[0], other}, never), StatusInvalidArgument)
	if !strings.Contains(e.Message, "one topic") {
		t.Errorf("message %q does not say why", e.Message)
	}
}

func TestSendBatchAsyncWindowAndShutdownCompleteEachCallbackOnce(t *testing.T) {
	topic := uniqueTopic(t)
	p := startedProducer(t, map[string]string{
		"producer.group":                     "GoAsyncBatchWindow_" + runID,
		"producer.max-in-flight-async-sends": "1",
		"producer.block-when-in-flight-full": "false",
	})
	batch := []*Message{newMsg(t, topic, []byte("a")), newMsg(t, topic, []byte("b"))}
	var mu sync.Mutex
	calls, ok, cancelled, other := 0, 0, 0, 0
	accepted, full := 0, 0
	for i := 0; i < 8; i++ {
		err := p.SendBatchAsync(batch, func(_ *SendResult, err error) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrCancelled):
				cancelled++
			default:
				other++
			}
		})
		switch {
		case err == nil:
			accepted++
		case errors.Is(err, ErrInFlightFull):
			full++
		default:
			t.Fatalf("SendBatchAsync: %v", err)
		}
	}
	if accepted < 1 || accepted+full != 8 {
		t.Fatalf("accepted %d, full %d", accepted, full)
	}
	if err := p.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil { // waits for every callback
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != accepted || ok+cancelled != accepted || other != 0 {
		t.Fatalf("calls %d (ok %d cancelled %d other %d) for %d accepted", calls, ok, cancelled, other, accepted)
	}
}

// brokerPid is the pid of broker `name` of the IPv6 cluster, from the cluster script.
func brokerPid(t *testing.T, name string) int {
	t.Helper()
	data := os.Getenv("RMQ_DATA_V6")
	if data == "" {
		t.Fatal("RMQ_DATA_V6 is not set: where the cluster script finds the IPv6 cluster's brokers")
	}
	cmd := exec.Command(filepath.Join("..", "..", "..", "scripts", "rocketmq-local.sh"), "pids")
	cmd.Env = append(os.Environ(), "RMQ_DATA="+data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cluster script pids: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			pid, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
	}
	t.Fatalf("no %s in %q", name, out)
	return 0
}

// sendAsyncN makes n async sends and returns the brokers of the OK ones (sorted) and the
// number that failed, all with a timeout.
func sendAsyncN(t *testing.T, p *Producer, topic string, n int) ([]string, int) {
	t.Helper()
	results := make(chan outcome, n)
	for i := 0; i < n; i++ {
		m := newMsg(t, topic, []byte("retry"))
		if err := p.SendAsync(m, func(r *SendResult, err error) { results <- outcome{r, err} }); err != nil {
			t.Fatalf("SendAsync: %v", err)
		}
	}
	var brokers []string
	failed := 0
	for i := 0; i < n; i++ {
		select {
		case o := <-results:
			if o.err == nil {
				brokers = append(brokers, o.res.BrokerName)
			} else if errors.Is(o.err, ErrTimeout) {
				failed++
			} else {
				t.Fatalf("send failed with %v, want a timeout", o.err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a callback did not run within 30 s")
		}
	}
	sort.Strings(brokers)
	return brokers, failed
}

func TestAsyncSendIsRetriedOnTheOtherBroker(t *testing.T) {
	ns := v6Namesrv(t)
	brokerB := brokerPid(t, "broker-b")
	topic := uniqueTopic(t)
	cfg := func(group, retries string) map[string]string {
		return map[string]string{
			"name-server":                                 ns,
			"producer.group":                              group + runID,
			"producer.send-message-timeout":               "1500",
			"producer.retry-times-when-send-async-failed": retries,
		}
	}
	retry := startedProducer(t, cfg("GoAsyncRetry_", "1"))
	once := startedProducer(t, cfg("GoAsyncOnce_", "0"))
	// the topic on both brokers (4 queues each), known to both producers; 8 sends in a row
	// pick each of the 8 queues once
	brokers, failed := sendAsyncN(t, retry, topic, 8)
	if failed != 0 || strings.Count(strings.Join(brokers, " "), "broker-b") != 4 {
		t.Fatalf("before the pause: brokers %v, failed %d", brokers, failed)
	}
	if _, failed := sendAsyncN(t, once, topic, 8); failed != 0 {
		t.Fatalf("before the pause: %d failed", failed)
	}

	resume := func() { _ = syscall.Kill(brokerB, syscall.SIGCONT) }
	t.Cleanup(resume)
	if err := syscall.Kill(brokerB, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	var withBrokers, withoutBrokers []string
	var withFailed, withoutFailed int
	func() {
		defer resume()
		// broker-b is silent: an attempt there times out after its share of the send timeout
		// (750 ms) and the retry goes to broker-a within the same timeout
		withBrokers, withFailed = sendAsyncN(t, retry, topic, 8)
		// one attempt only: the sends that pick broker-b time out
		withoutBrokers, withoutFailed = sendAsyncN(t, once, topic, 8)
	}()
	if withFailed != 0 || strings.Join(withBrokers, " ") != strings.TrimSpace(strings.Repeat("broker-a ", 8)) {
		t.Errorf("with a retry: brokers %v, failed %d; want all 8 on broker-a", withBrokers, withFailed)
	}
	if withoutFailed != 4 || strings.Join(withoutBrokers, " ") != strings.TrimSpace(strings.Repeat("broker-a ", 4)) {
		t.Errorf("without: brokers %v, failed %d; want 4 on broker-a and 4 failed", withoutBrokers, withoutFailed)
	}
}
