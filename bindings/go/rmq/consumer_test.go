package rmq

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// within bounds every wait; only a failure reaches it.
const within = 90 * time.Second

// newConsumer creates a consumer (consume-from-where=first) of a fresh group, closed at the
// end of the test.
func newConsumer(t *testing.T, extra map[string]string) *PushConsumer {
	t.Helper()
	cfg := map[string]string{
		"name-server":                 namesrv(t),
		"consumer.group":              fmt.Sprintf("GoRmqCG_%s_%d", runID, topicSeq.Add(1)),
		"instance-name":               fmt.Sprintf("goci_%s_%d", runID, topicSeq.Add(1)),
		"consumer.consume-from-where": "first",
	}
	for k, v := range extra {
		cfg[k] = v
	}
	c, err := NewPushConsumer(cfg)
	if err != nil {
		t.Fatalf("NewPushConsumer: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// sendN sends bodies "<prefix>-<i>" with tags and the property n=<i>; returns body -> result.
func sendN(t *testing.T, p *Producer, topic, prefix string, n int, tags string) map[string]*SendResult {
	t.Helper()
	sent := map[string]*SendResult{}
	for i := 0; i < n; i++ {
		body := fmt.Sprintf("%s-%d", prefix, i)
		m := newMsg(t, topic, []byte(body))
		if tags != "" {
			m.SetTags(tags)
		}
		m.SetKeys(body, "k2")
		m.SetProperty("n", fmt.Sprint(i))
		var res *SendResult
		var err error
		deadline := time.Now().Add(30 * time.Second)
		for res, err = p.SendSync(m); err != nil && time.Now().Before(deadline); res, err = p.SendSync(m) {
			time.Sleep(300 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("send %s: %v", body, err)
		}
		sent[body] = res
	}
	return sent
}

// recorder keeps every message its handler is given.
type recorder struct {
	mu      sync.Mutex
	msgs    []*ReceivedMessage
	threads map[string]bool
	verdict func([]*ReceivedMessage) ConsumeResult
}

func threadName() string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/comm", syscall.Gettid()))
	return strings.TrimSpace(string(b))
}

func (r *recorder) handle(msgs []*ReceivedMessage) ConsumeResult {
	r.mu.Lock()
	r.msgs = append(r.msgs, msgs...)
	if r.threads == nil {
		r.threads = map[string]bool{}
	}
	r.threads[threadName()] = true
	r.mu.Unlock()
	if r.verdict != nil {
		return r.verdict(msgs)
	}
	return ConsumeSuccess
}

func (r *recorder) bodies() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]bool{}
	for _, m := range r.msgs {
		out[string(m.Body)] = true
	}
	return out
}

func hasAll[V any](got map[string]bool, want map[string]V) bool {
	for k := range want {
		if !got[k] {
			return false
		}
	}
	return true
}

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConsumeEverythingProducedWithEveryField(t *testing.T) {
	topic := uniqueTopic(t)
	p := startedProducer(t, nil)
	sent := sendN(t, p, topic, "all", 30, "TagA")
	rec := &recorder{}
	c := newConsumer(t, nil)
	if err := c.Subscribe(topic, "*"); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(rec.handle); err != nil {
		t.Fatal(err)
	}
	eventually(t, "every message consumed", func() bool { return hasAll(rec.bodies(), sent) })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if got := rec.bodies(); len(got) != len(sent) {
		t.Fatalf("consumed %d distinct bodies, sent %d", len(got), len(sent))
	}
	for _, m := range rec.msgs {
		r := sent[string(m.Body)]
		i := strings.TrimPrefix(string(m.Body), "all-")
		if m.Topic != topic || m.Tags != "TagA" || strings.Join(m.Keys, " ") != string(m.Body)+" k2" ||
			m.Properties["n"] != i || m.MsgID != r.MsgID || m.OffsetMsgID != r.OffsetMsgID ||
			m.BrokerName != r.BrokerName || m.QueueID != r.QueueID || m.QueueOffset != r.QueueOffset ||
			m.ReconsumeTimes != 0 || m.BornTimestamp.Year() < 2020 || m.StoreTimestamp.Before(m.BornTimestamp.Add(-time.Minute)) {
			t.Errorf("fields of %s: %+v (sent %+v)", m.Body, m, r)
		}
	}
	for name := range rec.threads {
		if !regexp.MustCompile(`^rmq-c\d+-\d+$`).MatchString(name) {
			t.Errorf("handler ran on thread %q", name)
		}
	}
}

func TestTagFilterDeliversExactlyTheMatchingMessages(t *testing.T) {
	topic := uniqueTopic(t)
	p := startedProducer(t, nil)
	unwanted := sendN(t, p, topic, "c", 12, "TagC")
	wanted := sendN(t, p, topic, "a", 10, "TagA")
	for k, v := range sendN(t, p, topic, "b", 10, "TagB") {
		wanted[k] = v
	}
	rec := &recorder{}
	c := newConsumer(t, nil)
	c.Subscribe(topic, "TagA || TagB")
	if err := c.Start(rec.handle); err != nil {
		t.Fatal(err)
	}
	eventually(t, "matching messages consumed", func() bool { return hasAll(rec.bodies(), wanted) })
	c.Close()
	got := rec.bodies()
	if len(got) != len(wanted) {
		t.Fatalf("got %d bodies, want %d", len(got), len(wanted))
	}
	for b := range unwanted {
		if got[b] {
			t.Errorf("unwanted %s delivered", b)
		}
	}
}

func TestSQL92FilterDeliversExactlyTheMatchingMessages(t *testing.T) {
	topic := uniqueTopic(t)
	p := startedProducer(t, nil)
	sent := sendN(t, p, topic, "s", 40, "")
	wanted := map[string]bool{}
	for i := 30; i < 40; i++ {
		wanted[fmt.Sprintf("s-%d", i)] = true
	}
	rec := &recorder{}
	c := newConsumer(t, nil)
	if err := c.SubscribeSQL92(topic, "n >= 30"); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(rec.handle); err != nil {
		t.Fatal(err)
	}
	eventually(t, "matching messages consumed", func() bool { return hasAll(rec.bodies(), wanted) })
	c.Close()
	if got := rec.bodies(); len(got) != len(wanted) || len(sent) != 40 {
		t.Fatalf("got %v, want %v", got, wanted)
	}
}

func TestFailingHandlerGetsTheMessagesAgain(t *testing.T) {
	for _, failure := range []string{"panic", "reconsume"} {
		t.Run(failure, func(t *testing.T) {
			topic := uniqueTopic(t)
			p := startedProducer(t, nil)
			sent := sendN(t, p, topic, "r", 3, "TagA")
			rec := &recorder{verdict: func(msgs []*ReceivedMessage) ConsumeResult {
				for _, m := range msgs {
					if m.ReconsumeTimes == 0 {
						if failure == "panic" {
							panic("user code failed")
						}
						return ReconsumeLater(1)
					}
				}
				return ConsumeSuccess
			}}
			c := newConsumer(t, nil)
			c.Subscribe(topic, "*")
			if err := c.Start(rec.handle); err != nil {
				t.Fatal(err)
			}
			both := func() bool {
				rec.mu.Lock()
				defer rec.mu.Unlock()
				seen := map[string]bool{}
				for _, m := range rec.msgs {
					seen[fmt.Sprintf("%s/%d", m.Body, m.ReconsumeTimes)] = true
				}
				for b := range sent {
					if !seen[b+"/0"] || !seen[b+"/1"] {
						return false
					}
				}
				return true
			}
			eventually(t, "first delivery failed, second succeeded", both)
			c.Close()
			for _, m := range rec.msgs {
				if m.ReconsumeTimes > 1 {
					t.Errorf("%s delivered a third time", m.Body)
				}
			}
		})
	}
}

func threadsNamed(prefix string) int {
	entries, _ := os.ReadDir("/proc/self/task")
	n := 0
	for _, e := range entries {
		b, err := os.ReadFile("/proc/self/task/" + e.Name() + "/comm")
		if err == nil && strings.HasPrefix(string(b), prefix) {
			n++
		}
	}
	return n
}

func TestCloseIsRefusedInsideTheHandlerAndLeavesNoThread(t *testing.T) {
	topic := uniqueTopic(t)
	p := startedProducer(t, nil)
	sent := sendN(t, p, topic, "x", 8, "TagA")
	var c *PushConsumer
	var mu sync.Mutex
	var refused []bool
	rec := &recorder{verdict: func([]*ReceivedMessage) ConsumeResult {
		e1, e2 := c.Close(), c.Shutdown()
		mu.Lock()
		refused = append(refused, errors.Is(e1, ErrInvalidState) && errors.Is(e2, ErrInvalidState))
		mu.Unlock()
		return ConsumeSuccess
	}}
	c = newConsumer(t, map[string]string{"consumer.consume-thread-number": "3"})
	c.Subscribe(topic, "*")
	if err := c.Start(rec.handle); err != nil {
		t.Fatal(err)
	}
	eventually(t, "consumed", func() bool { return hasAll(rec.bodies(), sent) })
	var prefix string
	rec.mu.Lock()
	for name := range rec.threads {
		prefix = regexp.MustCompile(`^rmq-c\d+-`).FindString(name)
	}
	rec.mu.Unlock()
	if prefix == "" || threadsNamed(prefix) == 0 {
		t.Fatalf("no consumer thread seen (%q)", prefix)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	for i, r := range refused {
		if !r {
			t.Errorf("call %d: Close/Shutdown from the own handler not refused", i)
		}
	}
	if len(refused) == 0 {
		t.Error("handler never ran")
	}
	mu.Unlock()
	eventually(t, "no "+prefix+"* thread left", func() bool { return threadsNamed(prefix) == 0 })
	wantStatus(t, c.Subscribe(topic, "*"), StatusInvalidHandle)
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestConsumerMisuse(t *testing.T) {
	_, err := NewPushConsumer(map[string]string{"name-server": namesrv(t), "consumer.nope": "1"})
	wantStatus(t, err, StatusUnknownConfigKey)
	_, err = NewPushConsumer(map[string]string{"name-server": namesrv(t), "consumer.group": "DEFAULT_CONSUMER"})
	wantStatus(t, err, StatusInvalidArgument)
	c := newConsumer(t, nil)
	wantStatus(t, c.Subscribe("bad topic", "*"), StatusInvalidArgument)
	wantStatus(t, c.Subscribe("T\x00x", "*"), StatusInvalidArgument)
	wantStatus(t, c.Start(nil), StatusInvalidArgument)
	wantStatus(t, c.Start(func([]*ReceivedMessage) ConsumeResult { return ConsumeSuccess }), StatusInvalidState)
	var nilConsumer *PushConsumer
	wantStatus(t, nilConsumer.Subscribe("T", "*"), StatusInvalidArgument)
}

func TestChannelDeliversAndContextStops(t *testing.T) {
	topic := uniqueTopic(t)
	p := startedProducer(t, nil)
	sent := sendN(t, p, topic, "ch", 12, "TagA")
	c := newConsumer(t, nil)
	c.Subscribe(topic, "*")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	deliveries, err := c.Messages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A delivery is a batch (up to 32 messages, possibly of several queues).
	got := map[string]int32{}
	var reconsumed []string
	backAll := func() bool {
		for _, b := range reconsumed {
			if got[b] == 0 {
				return false
			}
		}
		return len(reconsumed) > 0
	}
	timeout := time.After(within)
	for !hasAll(func() map[string]bool {
		m := map[string]bool{}
		for b := range got {
			m[b] = true
		}
		return m
	}(), sent) || !backAll() {
		select {
		case d := <-deliveries:
			if len(d.Messages) == 0 {
				t.Fatal("empty delivery")
			}
			if reconsumed == nil {
				for _, m := range d.Messages {
					reconsumed = append(reconsumed, string(m.Body))
				}
				d.Reconsume(1) // comes back with ReconsumeTimes 1
				continue
			}
			for _, m := range d.Messages {
				got[string(m.Body)] = m.ReconsumeTimes
			}
			d.Ack()
		case <-timeout:
			t.Fatalf("not all delivered: %v", got)
		}
	}
	cancel()
	// The channel closes once the consumer is closed.
	for range deliveries {
	}
	for _, b := range reconsumed {
		if got[b] != 1 {
			t.Errorf("reconsumed %s came back with ReconsumeTimes %d", b, got[b])
		}
	}
	wantStatus(t, c.Subscribe(topic, "*"), StatusInvalidHandle)
}
