package rmq

import (
	"bytes"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"
)

func textBody(n int) []byte {
	words := []byte("lorem ipsum dolor sit amet consectetur adipiscing elit sed do ")
	b := make([]byte, n)
	for i := range b {
		b[i] = words[(i*7+i/13)%len(words)]
	}
	return b
}

func noiseBody(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func payloadMsg(t *testing.T, topic string, body []byte, key string) *Message {
	t.Helper()
	m := newMsg(t, topic, body)
	if err := m.SetTags("TagG"); err != nil {
		t.Fatal(err)
	}
	if err := m.SetKeys(key); err != nil {
		t.Fatal(err)
	}
	if err := m.SetProperty("lang", "go"); err != nil {
		t.Fatal(err)
	}
	return m
}

// sameMessage compares the stored copy with what was sent: body, tags, keys, user property.
func sameMessage(t *testing.T, what string, sent, got *Message) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: not found", what)
	}
	if !bytes.Equal(got.Body(), sent.Body()) {
		t.Errorf("%s: body differs (%d vs %d bytes)", what, len(got.Body()), len(sent.Body()))
	}
	if got.Tags() != sent.Tags() || !slices.Equal(got.Keys(), sent.Keys()) || got.Topic() != sent.Topic() {
		t.Errorf("%s: got %q %q %q, sent %q %q %q", what, got.Topic(), got.Tags(), got.Keys(), sent.Topic(), sent.Tags(), sent.Keys())
	}
	if v, ok := got.Property("lang"); !ok || v != "go" {
		t.Errorf("%s: property lang = %q (%v)", what, v, ok)
	}
}

func view(t *testing.T, p *Producer, id string) *Message {
	t.Helper()
	m, err := p.ViewMessage(id)
	if err != nil {
		t.Fatalf("ViewMessage(%s): %v", id, err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// findByKey polls QueryMessage until the key is found or `within` passes.
func findByKey(t *testing.T, p *Producer, topic, key string, within time.Duration) *Message {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		found, err := p.QueryMessage(topic, key, 4, time.Now().Add(-10*time.Minute), time.Now().Add(time.Hour))
		if err == nil && len(found) > 0 {
			for _, m := range found {
				t.Cleanup(func() { m.Close() })
			}
			return found[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("key %s not found in %s within %v (last error %v)", key, topic, within, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestSendBatchStoresEachMessageWithItsIDs(t *testing.T) {
	p := startedProducer(t, nil)
	topic := uniqueTopic(t)
	msgs := []*Message{
		payloadMsg(t, topic, []byte("go batch 0"), "gb0"),
		payloadMsg(t, topic, textBody(10000), "gb1"), // not compressed in a batch
		payloadMsg(t, topic, []byte("go\x00batch 2"), "gb2"),
	}
	res, err := p.SendBatch(msgs)
	if err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	checkSendResult(t, res, topic)
	ids, offsets := res.MsgIDs(), res.OffsetMsgIDs()
	if len(ids) != 3 || len(offsets) != 3 {
		t.Fatalf("ids %q offsets %q", ids, offsets)
	}
	for i, m := range msgs {
		got := view(t, p, offsets[i])
		sameMessage(t, "batch message", m, got)
		if got.MsgID() != ids[i] {
			t.Errorf("message %d: id %s, want %s", i, got.MsgID(), ids[i])
		}
		if off, _ := got.QueueOffset(); off != res.QueueOffset+int64(i) {
			t.Errorf("message %d at offset %d, want %d", i, off, res.QueueOffset+int64(i))
		}
	}
}

func TestSendBatchRulesFailBeforeSending(t *testing.T) {
	p := startedProducer(t, nil)
	topic := uniqueTopic(t)
	_, err := p.SendBatch(nil)
	wantStatus(t, err, StatusInvalidArgument)
	delayed := payloadMsg(t, topic, []byte("d"), "d")
	if err := delayed.SetDelayLevel(1); err != nil {
		t.Fatal(err)
	}
	_, err = p.SendBatch([]*Message{delayed})
	if e := wantStatus(t, err, StatusInvalidArgument); !strings.Contains(e.Message, "delayed") {
		t.Errorf("message %q", e.Message)
	}
	other := payloadMsg(t, topic+"x", []byte("o"), "o")
	_, err = p.SendBatch([]*Message{payloadMsg(t, topic, []byte("a"), "a"), other})
	if e := wantStatus(t, err, StatusInvalidArgument); !strings.Contains(e.Message, "one topic") {
		t.Errorf("message %q", e.Message)
	}
	_, err = p.SendBatch([]*Message{nil})
	wantStatus(t, err, StatusInvalidArgument)
}

func TestSplitBatchesFitAndAllArrive(t *testing.T) {
	p := startedProducer(t, map[string]string{"producer.max-message-size": "8000"})
	topic := uniqueTopic(t)
	var msgs []*Message
	for i := 0; i < 20; i++ {
		msgs = append(msgs, payloadMsg(t, topic, noiseBody(900, int64(i)), "s"))
	}
	// the same message twice is fine
	msgs = append(msgs, msgs[0])
	_, err := p.SendBatch(msgs)
	wantStatus(t, err, StatusMessageTooLarge)
	batches, err := p.SplitBatches(msgs)
	if err != nil {
		t.Fatalf("SplitBatches: %v", err)
	}
	if len(batches) < 3 {
		t.Fatalf("%d batches", len(batches))
	}
	n := 0
	for _, b := range batches {
		res, err := p.SendBatch(b)
		if err != nil {
			t.Fatalf("SendBatch: %v", err)
		}
		for i, id := range res.OffsetMsgIDs() {
			sameMessage(t, "split batch message", b[i], view(t, p, id))
			n++
		}
	}
	if n != len(msgs) {
		t.Errorf("%d stored, want %d", n, len(msgs))
	}
	_, err = p.SplitBatches([]*Message{payloadMsg(t, topic, noiseBody(9000, 1), "big")})
	wantStatus(t, err, StatusMessageTooLarge)
}

func TestCompressedBodiesReadBackWhole(t *testing.T) {
	for _, codec := range []string{"zlib", "lz4", "zstd"} {
		t.Run(codec, func(t *testing.T) {
			p := startedProducer(t, map[string]string{"producer.compress-type": codec, "producer.max-message-size": "30000"})
			topic := uniqueTopic(t)
			key := "gc_" + codec + "_" + runID
			m := payloadMsg(t, topic, textBody(200000), key) // fits only compressed
			res, err := p.SendSync(m)
			if err != nil {
				t.Fatalf("SendSync: %v", err)
			}
			sameMessage(t, "viewed", m, view(t, p, res.OffsetMsgID))
			sameMessage(t, "queried", m, findByKey(t, p, topic, key, 10*time.Second))
			_, err = p.SendSync(payloadMsg(t, topic, noiseBody(40000, 3), "n"))
			wantStatus(t, err, StatusMessageTooLarge)
		})
	}
	_, err := NewProducer(producerConfig(t, map[string]string{"producer.compress-level": "10"}))
	if e := wantStatus(t, err, StatusInvalidConfigValue); !strings.Contains(e.Message, "producer.compress-level") {
		t.Errorf("message %q", e.Message)
	}
}

func TestDelaySetters(t *testing.T) {
	m := newMsg(t, "T", []byte("x"))
	if m.DelayLevel() != 0 {
		t.Fatal("delay level set on a new message")
	}
	wantStatus(t, m.SetDelayLevel(19), StatusInvalidArgument)
	wantStatus(t, m.SetDelay(-time.Second), StatusInvalidArgument)
	if err := m.SetDelayLevel(5); err != nil || m.DelayLevel() != 5 {
		t.Fatalf("SetDelayLevel: %v, level %d", err, m.DelayLevel())
	}
	if err := m.SetDelay(1500 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if v, _ := m.Property("TIMER_DELAY_MS"); v != "1500" || m.DelayLevel() != 0 {
		t.Errorf("TIMER_DELAY_MS %q, level %d", v, m.DelayLevel())
	}
	at := time.UnixMilli(1_900_000_000_000)
	if err := m.SetDeliverTime(at); err != nil {
		t.Fatal(err)
	}
	if v, _ := m.Property("TIMER_DELIVER_MS"); v != "1900000000000" {
		t.Errorf("TIMER_DELIVER_MS %q", v)
	}
	if _, ok := m.Property("TIMER_DELAY_MS"); ok {
		t.Error("the earlier timer was kept")
	}
	if err := m.SetDeliverTime(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Property("TIMER_DELIVER_MS"); ok {
		t.Error("the zero time did not remove the delay")
	}
}

func TestDelayedMessagesArriveNoEarlierThanAsked(t *testing.T) {
	p := startedProducer(t, nil)
	topic := uniqueTopic(t)
	level := payloadMsg(t, topic, []byte("go level 1"), "gl_"+runID)
	if err := level.SetDelayLevel(1); err != nil {
		t.Fatal(err)
	}
	timer := payloadMsg(t, topic, []byte("go timer"), "gt_"+runID)
	asked := time.Now().Add(2 * time.Second)
	if err := timer.SetDeliverTime(asked); err != nil {
		t.Fatal(err)
	}
	rl, err := p.SendSync(level)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := p.SendSync(timer)
	if err != nil {
		t.Fatal(err)
	}
	scheduled := view(t, p, rl.OffsetMsgID)
	if scheduled.Topic() != "SCHEDULE_TOPIC_XXXX" {
		t.Errorf("level message first stored in %q", scheduled.Topic())
	}
	if got := view(t, p, rt.OffsetMsgID).Topic(); got != "rmq_sys_wheel_timer" {
		t.Errorf("timer message first stored in %q", got)
	}
	real := findByKey(t, p, topic, "gl_"+runID, time.Minute)
	sameMessage(t, "delivered level message", level, real)
	storedAt, _ := scheduled.StoreTimestamp()
	deliveredAt, _ := real.StoreTimestamp()
	if deliveredAt.Sub(storedAt) < time.Second {
		t.Errorf("level 1 delivered %v after it was stored", deliveredAt.Sub(storedAt))
	}
	realTimer := findByKey(t, p, topic, "gt_"+runID, time.Minute)
	sameMessage(t, "delivered timer message", timer, realTimer)
	// the broker rounds timers down to its precision (1 s by default), never more
	if at, _ := realTimer.StoreTimestamp(); at.Before(asked.Add(-time.Second)) {
		t.Errorf("timer delivered %v before the asked time", asked.Sub(at))
	}
}
