package rmq

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Two consumers of one group in POP mode (consumer.consume-mode=pop) consume every message; a
// message given twice is only a re-delivery, with a higher reconsume count.
func TestTwoPopConsumersConsumeEveryMessage(t *testing.T) {
	p := startedProducer(t, nil)
	topic := uniqueTopic(t)
	sent := sendN(t, p, topic, "pop", 50, "")
	group := fmt.Sprintf("GoRmqPop_%s_%d", runID, topicSeq.Add(1))
	type delivery struct {
		body  string
		times int32
	}
	var mu sync.Mutex
	seen := map[delivery]int{}
	bodies := map[string]bool{}
	handler := func(msgs []*ReceivedMessage) ConsumeResult {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			seen[delivery{string(m.Body), m.ReconsumeTimes}]++
			bodies[string(m.Body)] = true
		}
		return ConsumeSuccess
	}
	for i := 0; i < 2; i++ {
		c := newConsumer(t, map[string]string{"consumer.group": group, "consumer.consume-mode": "pop"})
		if err := c.Subscribe(topic, "*"); err != nil {
			t.Fatal(err)
		}
		if err := c.Start(handler); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(within)
	for {
		mu.Lock()
		done := len(bodies) == len(sent)
		got := len(bodies)
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumed %d of %d", got, len(sent))
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for b := range bodies {
		if _, ok := sent[b]; !ok {
			t.Errorf("unexpected message %q", b)
		}
	}
	for d, n := range seen {
		if n > 1 {
			t.Errorf("%q delivered %d times with reconsume count %d", d.body, n, d.times)
		}
	}
}

func TestUnknownConsumeModesAreRefused(t *testing.T) {
	_, err := NewPushConsumer(map[string]string{"name-server": namesrv(t), "consumer.group": "G", "consumer.consume-mode": "push"})
	wantStatus(t, err, StatusInvalidConfigValue)
}

// A message not acked within its invisible time (its handler call holds it until it comes
// again) is delivered again, with the same message id and its reconsume count raised.
func TestPopMessageNotAckedComesAgainAfterItsInvisibleTime(t *testing.T) {
	p := startedProducer(t, nil)
	topic := uniqueTopic(t)
	sendN(t, p, topic, "warmup", 1, "")
	type delivery struct {
		id    string
		times int32
		at    time.Time
	}
	var mu sync.Mutex
	var seen []delivery
	again := make(chan struct{})
	handler := func(msgs []*ReceivedMessage) ConsumeResult {
		for _, m := range msgs {
			if string(m.Body) != "slow-0" {
				continue
			}
			mu.Lock()
			seen = append(seen, delivery{m.MsgID, m.ReconsumeTimes, time.Now()})
			n := len(seen)
			mu.Unlock()
			switch n {
			case 1:
				select { // not answered until it comes again
				case <-again:
				case <-time.After(within):
				}
			case 2:
				close(again)
			}
		}
		return ConsumeSuccess
	}
	c := newConsumer(t, map[string]string{"consumer.consume-mode": "pop", "consumer.pop-invisible-time-millis": "2000"})
	if err := c.Subscribe(topic, "*"); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(handler); err != nil {
		t.Fatal(err)
	}
	sendN(t, p, topic, "slow", 1, "")
	eventually(t, "slow-0 delivered again", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) >= 2
	})
	mu.Lock()
	defer mu.Unlock()
	if seen[0].id == "" || seen[0].id != seen[1].id {
		t.Errorf("message ids %q then %q", seen[0].id, seen[1].id)
	}
	if seen[0].times != 0 || seen[1].times != 1 {
		t.Errorf("reconsume counts %d then %d", seen[0].times, seen[1].times)
	}
	if d := seen[1].at.Sub(seen[0].at); d < 1500*time.Millisecond {
		t.Errorf("came again after %v, before its invisible time", d)
	}
}

// orderlyPopConsumer starts an orderly POP consumer of topic with the given chunk size.
func orderlyPopConsumer(t *testing.T, topic, batch string, handler OrderlyHandler) {
	t.Helper()
	c := newConsumer(t, map[string]string{"consumer.consume-mode": "pop", "consumer.consume-message-batch-max-size": batch})
	if err := c.Subscribe(topic, "*"); err != nil {
		t.Fatal(err)
	}
	if err := c.StartOrderly(handler); err != nil {
		t.Fatal(err)
	}
}

// index of a body "<key>:<i>".
func keyIndex(t *testing.T, body string) (string, int) {
	k, i, ok := strings.Cut(body, ":")
	n, err := strconv.Atoi(i)
	if !ok || err != nil {
		t.Fatalf("malformed body %q", body)
	}
	return k, n
}

// Orderly POP: each key's messages reach the handler in send order, once, and one queue never
// runs two handler calls at once.
func TestOrderlyPopKeepsEachKeysSendOrder(t *testing.T) {
	p := startedProducer(t, nil)
	topic := uniqueTopic(t)
	keys := []string{"k0", "k1", "k2", "k3"}
	const n = 20
	for i := 0; i < n; i++ {
		for _, k := range keys {
			sendKeyed(t, p, topic, k, i)
		}
	}
	var mu sync.Mutex
	var order []string
	running := map[int32]int{}
	most := 0
	orderlyPopConsumer(t, topic, "3", func(msgs []*ReceivedMessage) OrderlyResult {
		q := msgs[0].QueueID
		mu.Lock()
		running[q]++
		if running[q] > most {
			most = running[q]
		}
		for _, m := range msgs {
			order = append(order, string(m.Body))
		}
		mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		mu.Lock()
		running[q]--
		mu.Unlock()
		return OrderlySuccess
	})
	eventually(t, "every message consumed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) >= len(keys)*n
	})
	mu.Lock()
	defer mu.Unlock()
	perKey := map[string][]int{}
	for _, b := range order {
		k, i := keyIndex(t, b)
		perKey[k] = append(perKey[k], i)
	}
	want := make([]int, n)
	for i := range want {
		want[i] = i
	}
	for _, k := range keys {
		if !reflect.DeepEqual(perKey[k], want) {
			t.Errorf("key %s: %v", k, perKey[k])
		}
	}
	if len(perKey) != len(keys) || most != 1 {
		t.Errorf("keys %d, most calls of one queue at once %d", len(perKey), most)
	}
}

// Orderly POP: a suspended batch comes again as it was, with its reconsume count raised, and
// every message is consumed once, in order.
func TestOrderlyPopRepeatsASuspendedBatchAsItWas(t *testing.T) {
	p := startedProducer(t, nil)
	topic := uniqueTopic(t)
	for i := 0; i < 12; i++ {
		sendKeyed(t, p, topic, "k", i)
	}
	type call struct {
		bodies []string
		times  []int32
	}
	var mu sync.Mutex
	var calls []call
	orderlyPopConsumer(t, topic, "4", func(msgs []*ReceivedMessage) OrderlyResult {
		var c call
		suspend, first := false, true
		for _, m := range msgs {
			c.bodies = append(c.bodies, string(m.Body))
			c.times = append(c.times, m.ReconsumeTimes)
			suspend = suspend || string(m.Body) == "k:5"
			first = first && m.ReconsumeTimes == 0
		}
		mu.Lock()
		calls = append(calls, c)
		mu.Unlock()
		if suspend && first {
			return SuspendCurrentQueue(300 * time.Millisecond)
		}
		return OrderlySuccess
	})
	eventually(t, "k:11 consumed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range calls {
			for _, b := range c.bodies {
				if b == "k:11" {
					return true
				}
			}
		}
		return false
	})
	mu.Lock()
	defer mu.Unlock()
	at := -1
	for i, c := range calls {
		for _, b := range c.bodies {
			if b == "k:5" && at < 0 {
				at = i
			}
		}
	}
	if at < 0 || at+1 >= len(calls) {
		t.Fatalf("calls %v", calls)
	}
	if !reflect.DeepEqual(calls[at].bodies, calls[at+1].bodies) {
		t.Errorf("suspended %v, then %v", calls[at].bodies, calls[at+1].bodies)
	}
	for j := range calls[at+1].times {
		if calls[at].times[j] != 0 || calls[at+1].times[j] != 1 {
			t.Errorf("reconsume counts %v then %v", calls[at].times, calls[at+1].times)
			break
		}
	}
	var consumed []int
	for i, c := range calls {
		if i == at {
			continue
		}
		for _, b := range c.bodies {
			_, n := keyIndex(t, b)
			consumed = append(consumed, n)
		}
	}
	want := make([]int, 12)
	for i := range want {
		want[i] = i
	}
	if !reflect.DeepEqual(consumed, want) {
		t.Errorf("consumed %v", consumed)
	}
}
