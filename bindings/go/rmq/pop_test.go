package rmq

import (
	"context"
	"fmt"
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

func TestPopModeRefusesPollModeAndUnknownModes(t *testing.T) {
	_, err := NewPushConsumer(map[string]string{"name-server": namesrv(t), "consumer.group": "G", "consumer.consume-mode": "push"})
	wantStatus(t, err, StatusInvalidConfigValue)
	c := newConsumer(t, map[string]string{"consumer.consume-mode": "pop"})
	if err := c.Subscribe("GoPopPollTopic", "*"); err != nil {
		t.Fatal(err)
	}
	_, err = c.Messages(context.Background())
	wantStatus(t, err, StatusInvalidState)
}
