package rmq

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// sendKeyed sends "<key>:<i>" to the queue of key (Java's hash selector).
func sendKeyed(t *testing.T, p *Producer, topic, key string, i int) {
	t.Helper()
	m := newMsg(t, topic, []byte(fmt.Sprintf("%s:%d", key, i)))
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for _, err = p.SendSyncSelect(m, HashSelector(key)); err != nil && time.Now().Before(deadline); _, err = p.SendSyncSelect(m, HashSelector(key)) {
		time.Sleep(300 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("send %s:%d: %v", key, i, err)
	}
}

func TestOrderlyStatusesEqualTheHeader(t *testing.T) {
	header, err := os.ReadFile(filepath.Join("rmq.h"))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{"SUCCESS": 0, "SUSPEND": 1} {
		m := regexp.MustCompile(`#define RMQ_CONSUME_ORDERLY_` + name + ` (\d+)`).FindSubmatch(header)
		if m == nil || string(m[1]) != strconv.Itoa(want) {
			t.Errorf("RMQ_CONSUME_ORDERLY_%s: %q", name, m)
		}
	}
}

// Messages of a sharding key arrive in send order, each once, while a second consumer joins
// mid-stream and the group rebalances; a queue never runs two handler calls at once.
func TestOrderlyKeysArriveInSendOrderAcrossARebalance(t *testing.T) {
	topic := uniqueTopic(t)
	group := fmt.Sprintf("GoRmqOrderly_%s_%d", runID, topicSeq.Add(1))
	p := startedProducer(t, nil)
	keys := []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"}
	sendRound := func(i int) {
		for _, k := range keys {
			sendKeyed(t, p, topic, k, i)
		}
	}
	sent := 0
	for ; sent < 30; sent++ {
		sendRound(sent)
	}
	var mu sync.Mutex
	seq := map[string][]int{}
	total, perConsumer := 0, [2]int{}
	running, most := map[int32]int{}, 0
	handler := func(who int) OrderlyHandler {
		return func(msgs []*ReceivedMessage) OrderlyResult {
			q := msgs[0].QueueID
			mu.Lock()
			running[q]++
			if running[q] > most {
				most = running[q]
			}
			for _, m := range msgs {
				k, i, _ := strings.Cut(string(m.Body), ":")
				n, _ := strconv.Atoi(i)
				seq[k] = append(seq[k], n)
				total++
				perConsumer[who]++
			}
			mu.Unlock()
			time.Sleep(5 * time.Millisecond) // slow enough that the second consumer joins mid-stream
			mu.Lock()
			running[q]--
			mu.Unlock()
			return OrderlySuccess
		}
	}
	read := func(f func() bool) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return f() }
	}
	extra := map[string]string{"consumer.group": group, "consumer.rebalance-interval": "2000", "consumer.consume-thread-number": "4"}
	first, second := newConsumer(t, extra), newConsumer(t, extra)
	if err := first.Subscribe(topic, "*"); err != nil {
		t.Fatal(err)
	}
	if err := first.StartOrderly(handler(0)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first consumer consumes", read(func() bool { return total >= 20 }))
	if err := second.Subscribe(topic, "*"); err != nil {
		t.Fatal(err)
	}
	if err := second.StartOrderly(handler(1)); err != nil {
		t.Fatal(err)
	}
	// Messages keep coming until the second consumer has taken queues.
	deadline := time.Now().Add(within)
	for !read(func() bool { return perConsumer[1] > 0 })() && time.Now().Before(deadline) {
		sendRound(sent)
		sent++
		time.Sleep(20 * time.Millisecond)
	}
	for end := sent + 20; sent < end; sent++ {
		sendRound(sent)
	}
	eventually(t, "everything consumed", read(func() bool { return total >= sent*len(keys) }))
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, k := range keys {
		got := seq[k]
		ok := len(got) == sent
		for i := 0; ok && i < sent; i++ {
			ok = got[i] == i
		}
		if !ok {
			t.Errorf("%s: not 0..%d in order, each once: %v", k, sent-1, got)
		}
	}
	if most != 1 {
		t.Errorf("%d handler calls of one queue at once", most)
	}
	if perConsumer[0] == 0 || perConsumer[1] == 0 {
		t.Errorf("both consumers should consume: %v", perConsumer)
	}
}

// A suspended message comes again, in order, after the chosen time; a panic suspends as well.
func TestOrderlySuspendThenSuccessRedeliversInOrder(t *testing.T) {
	topic := uniqueTopic(t)
	p := startedProducer(t, nil)
	for i := 0; i < 4; i++ {
		sendKeyed(t, p, topic, "k0", i)
	}
	type delivery struct {
		body  string
		times int32
		at    time.Time
	}
	var mu sync.Mutex
	var seen []delivery
	calls := map[string]int{}
	c := newConsumer(t, map[string]string{"consumer.suspend-current-queue-time-millis": "50"})
	if err := c.Subscribe(topic, "*"); err != nil {
		t.Fatal(err)
	}
	err := c.StartOrderly(func(msgs []*ReceivedMessage) OrderlyResult {
		m := msgs[0]
		body := string(m.Body)
		mu.Lock()
		seen = append(seen, delivery{body, m.ReconsumeTimes, time.Now()})
		calls[body]++
		n := calls[body]
		mu.Unlock()
		switch {
		case body == "k0:1" && n == 1:
			return SuspendCurrentQueue(300 * time.Millisecond)
		case body == "k0:2" && n == 1:
			panic("a panic suspends the queue as well")
		}
		return OrderlySuccess
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "six deliveries", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) >= 6 })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"k0:0/0", "k0:1/0", "k0:1/1", "k0:2/0", "k0:2/1", "k0:3/0"}
	var got []string
	for _, d := range seen {
		got = append(got, fmt.Sprintf("%s/%d", d.body, d.times))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("deliveries %v, want %v", got, want)
	}
	if waited := seen[2].at.Sub(seen[1].at); waited < 300*time.Millisecond {
		t.Errorf("suspended only %v", waited)
	}
}

func TestStartOrderlyRefusesANilHandler(t *testing.T) {
	c := newConsumer(t, nil)
	wantStatus(t, c.StartOrderly(nil), StatusInvalidArgument)
}
