package rmq

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The channel API runs on the library's poll mode: every message arrives in batches (sets
// compared), per-message answers bring the refused ones back with ReconsumeTimes >= 1,
// deliveries unanswered when the consumer closes go to the next consumer of the group, an idle
// consumer's channel closes as soon as its context ends, and misuse is a clear error.

// drain reads deliveries until every body of want was seen, answering each with answer; it
// returns the bodies seen (with their reconsume times) and the largest delivery.
func drain(t *testing.T, deliveries <-chan *Delivery, want map[string]*SendResult, answer func(*Delivery)) (map[string]int32, int) {
	t.Helper()
	got, largest := map[string]int32{}, 0
	timeout := time.After(within)
	done := func() bool {
		for b := range want {
			if _, ok := got[b]; !ok {
				return false
			}
		}
		return true
	}
	for !done() {
		select {
		case d, ok := <-deliveries:
			if !ok {
				t.Fatalf("channel closed early; got %d of %d", len(got), len(want))
			}
			largest = max(largest, len(d.Messages))
			answer(d)
			for _, m := range d.Messages {
				if _, seen := got[string(m.Body)]; !seen || m.ReconsumeTimes > got[string(m.Body)] {
					got[string(m.Body)] = m.ReconsumeTimes
				}
			}
		case <-timeout:
			t.Fatalf("got %d of %d", len(got), len(want))
		}
	}
	return got, largest
}

func TestPollEveryMessageArrivesInBatches(t *testing.T) {
	topic := uniqueTopic(t)
	sent := sendN(t, startedProducer(t, nil), topic, "pa", 60, "TagA")
	c := newConsumer(t, nil)
	c.Subscribe(topic, "*")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	deliveries, err := c.Messages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, largest := drain(t, deliveries, sent, func(d *Delivery) {
		for _, m := range d.Messages {
			if m.Topic != topic || m.Properties["n"] != strings.TrimPrefix(string(m.Body), "pa-") ||
				m.MsgID != sent[string(m.Body)].MsgID || len(m.Keys) != 2 || m.BrokerName == "" {
				t.Errorf("fields of %s: %+v", m.Body, m)
			}
		}
		d.Ack()
	})
	if len(got) != len(sent) {
		t.Errorf("got %d, sent %d", len(got), len(sent))
	}
	if largest < 2 || largest > pollBatch {
		t.Errorf("largest delivery %d: want batches of 2..%d", largest, pollBatch)
	}
}

func TestPollAckEachBringsRefusedMessagesBack(t *testing.T) {
	topic := uniqueTopic(t)
	sent := sendN(t, startedProducer(t, nil), topic, "pp", 10, "TagA")
	c := newConsumer(t, nil)
	c.Subscribe(topic, "*")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	deliveries, err := c.Messages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	odd := func(body string) bool {
		n, _ := strconv.Atoi(strings.TrimPrefix(body, "pp-"))
		return n%2 == 1
	}
	consumed := map[string]*SendResult{}
	refused := map[string]bool{}
	for b, r := range sent {
		consumed[b] = r
	}
	timeout := time.After(within)
	back := map[string]bool{}
	for len(consumed) > 0 {
		select {
		case d := <-deliveries:
			results := make([]ConsumeResult, len(d.Messages))
			for i, m := range d.Messages {
				b := string(m.Body)
				if odd(b) && m.ReconsumeTimes == 0 {
					results[i] = ReconsumeLater(1)
					refused[b] = true
					continue
				}
				if m.ReconsumeTimes >= 1 {
					back[b] = true
				}
				delete(consumed, b)
			}
			wantStatus(t, d.AckEach(results[:len(results)-1]), StatusInvalidArgument)
			if err := d.AckEach(results); err != nil {
				t.Fatal(err)
			}
			wantStatus(t, d.AckEach(nil), StatusInvalidState) // answered once only
		case <-timeout:
			t.Fatalf("%d not consumed", len(consumed))
		}
	}
	if len(refused) != 5 || len(back) != 5 {
		t.Errorf("refused %v, came back %v", refused, back)
	}
	for b := range refused {
		if !back[b] {
			t.Errorf("%s did not come back", b)
		}
	}
}

func TestPollUnansweredDeliveriesGoToTheNextConsumer(t *testing.T) {
	topic := uniqueTopic(t)
	sent := sendN(t, startedProducer(t, nil), topic, "pu", 6, "TagA")
	group := fmt.Sprintf("GoRmqPollHeld_%s_%d", runID, topicSeq.Add(1))
	first := newConsumer(t, map[string]string{"consumer.group": group})
	first.Subscribe(topic, "*")
	ctx, cancel := context.WithCancel(context.Background())
	deliveries, err := first.Messages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var held []*Delivery
	drain(t, deliveries, sent, func(d *Delivery) { held = append(held, d) })
	cancel()
	for range deliveries { // closes once the consumer is closed
	}
	wantStatus(t, held[0].AckEach(nil), StatusInvalidState) // too late: not committed
	second := newConsumer(t, map[string]string{"consumer.group": group})
	second.Subscribe(topic, "*")
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	again, err := second.Messages(ctx2)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := drain(t, again, sent, func(d *Delivery) { d.Ack() })
	if len(got) != len(sent) {
		t.Errorf("got %d again, want %d", len(got), len(sent))
	}
}

func TestPollIdleChannelClosesWhenTheContextEnds(t *testing.T) {
	topic := uniqueTopic(t)
	sendN(t, startedProducer(t, nil), topic, "pi", 1, "")
	c := newConsumer(t, nil)
	c.Subscribe(topic, "*")
	ctx, cancel := context.WithCancel(context.Background())
	deliveries, err := c.Messages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-deliveries:
		d.Ack()
	case <-time.After(within):
		t.Fatal("nothing delivered")
	}
	// The poll goroutine now waits in the library without limit; closing must wake it.
	cancel()
	select {
	case _, ok := <-deliveries:
		if ok {
			t.Error("a delivery after cancel on an idle consumer")
		}
	case <-time.After(within):
		t.Fatal("channel not closed after cancel")
	}
	wantStatus(t, c.Subscribe(topic, "*"), StatusInvalidHandle)
}

func TestPollMisuse(t *testing.T) {
	c := newConsumer(t, nil)
	c.Subscribe(uniqueTopic(t), "*")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := c.Messages(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := c.Messages(ctx)
	wantStatus(t, err, StatusInvalidState)
	wantStatus(t, c.Start(func([]*ReceivedMessage) ConsumeResult { return ConsumeSuccess }), StatusInvalidState)
	var never Delivery
	wantStatus(t, never.AckEach(nil), StatusInvalidState)
}
