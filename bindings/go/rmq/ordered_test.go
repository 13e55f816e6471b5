package rmq

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
)

// javaHashIndex is Java's SelectMessageQueueByHash: abs(key.hashCode() % n) with
// String.hashCode over UTF-16 code units.
func javaHashIndex(key string, n int) int {
	var h int32
	for _, u := range utf16.Encode([]rune(key)) {
		h = 31*h + int32(u)
	}
	v := h % int32(n)
	if v < 0 {
		v = -v
	}
	return int(v)
}

// queuesOf creates the topic and returns its writable queues as a selector sees them.
func queuesOf(t *testing.T, p *Producer, topic string) []MessageQueue {
	t.Helper()
	warmUp(t, p, topic)
	var seen []MessageQueue
	if _, err := p.SendSyncSelect(newMsg(t, topic, []byte("look")), SelectorFunc(func(qs []MessageQueue, _ *Message) int {
		seen = append(seen, qs...)
		return 0
	})); err != nil {
		t.Fatal(err)
	}
	if len(seen) < 2 {
		t.Fatalf("queues: %v", seen)
	}
	return seen
}

func asyncResult(t *testing.T, send func(func(*SendResult, error)) error) *SendResult {
	t.Helper()
	type outcome struct {
		r   *SendResult
		err error
	}
	ch := make(chan outcome, 1)
	if err := send(func(r *SendResult, err error) { ch <- outcome{r, err} }); err != nil {
		t.Fatal(err)
	}
	select {
	case o := <-ch:
		if o.err != nil {
			t.Fatal(o.err)
		}
		return o.r
	case <-time.After(30 * time.Second):
		t.Fatal("no callback within 30 s")
		return nil
	}
}

func TestHashSelectorKeepsEachKeyOnJavasQueueInOrder(t *testing.T) {
	p := startedProducer(t, nil)
	topic := uniqueTopic(t)
	qs := queuesOf(t, p, topic)
	for _, key := range []string{"order-1001", "order-1002", "klant-ü"} {
		want := qs[javaHashIndex(key, len(qs))]
		var offsets []int64
		for i := 0; i < 3; i++ {
			r, err := p.SendSyncSelect(newMsg(t, topic, []byte(fmt.Sprintf("%s-%d", key, i))), HashSelector(key))
			if err != nil {
				t.Fatal(err)
			}
			if r.Queue() != want {
				t.Fatalf("%s: queue %v, want %v", key, r.Queue(), want)
			}
			offsets = append(offsets, r.QueueOffset)
		}
		msg := newMsg(t, topic, []byte("async"))
		r := asyncResult(t, func(cb func(*SendResult, error)) error { return p.SendAsyncSelect(msg, HashSelector(key), cb) })
		if r.Queue() != want {
			t.Fatalf("%s async: queue %v, want %v", key, r.Queue(), want)
		}
		offsets = append(offsets, r.QueueOffset)
		if !sort.SliceIsSorted(offsets, func(i, j int) bool { return offsets[i] < offsets[j] }) {
			t.Fatalf("%s: offsets out of order: %v", key, offsets)
		}
	}
}

func TestSelectorFuncSeesTheQueuesAndTheMessage(t *testing.T) {
	p := startedProducer(t, nil)
	topic := uniqueTopic(t)
	qs := queuesOf(t, p, topic)
	var bodies []string
	last := SelectorFunc(func(queues []MessageQueue, m *Message) int {
		bodies = append(bodies, string(m.Body()))
		return len(queues) - 1
	})
	msg := newMsg(t, topic, []byte("pick me"))
	r, err := p.SendSyncSelect(msg, last)
	if err != nil || r.Queue() != qs[len(qs)-1] {
		t.Fatalf("%v %v", r, err)
	}
	selected := false
	r = asyncResult(t, func(cb func(*SendResult, error)) error {
		err := p.SendAsyncSelect(msg, last, cb)
		selected = len(bodies) == 2 // ran before SendAsyncSelect returned
		return err
	})
	if !selected || r.Queue() != qs[len(qs)-1] || bodies[1] != "pick me" {
		t.Fatalf("selected=%v %v %v", selected, r, bodies)
	}
	var rr []int
	for range qs {
		r, err := p.SendSyncSelect(msg, RoundRobinSelector())
		if err != nil {
			t.Fatal(err)
		}
		rr = append(rr, int(r.QueueID))
	}
	sort.Ints(rr)
	for i, q := range qs {
		if rr[i] != int(q.QueueID) {
			t.Fatalf("round robin visited %v of %v", rr, qs)
		}
	}
	if _, err := p.SendSyncSelect(msg, RandomSelector()); err != nil {
		t.Fatal(err)
	}
}

func TestFailingSelectorsAreErrorsNotCrashes(t *testing.T) {
	p := startedProducer(t, nil)
	topic := uniqueTopic(t)
	queuesOf(t, p, topic)
	msg := newMsg(t, topic, []byte("x"))
	panics := SelectorFunc(func([]MessageQueue, *Message) int { panic("selector bug") })
	beyond := SelectorFunc(func(qs []MessageQueue, _ *Message) int { return len(qs) })
	negative := SelectorFunc(func([]MessageQueue, *Message) int { return -1 })
	for _, sel := range []SelectorFunc{panics, beyond, negative} {
		_, err := p.SendSyncSelect(msg, sel)
		wantStatus(t, err, StatusQueueSelector)
		err = p.SendAsyncSelect(msg, sel, func(*SendResult, error) { t.Error("callback of a refused send") })
		wantStatus(t, err, StatusQueueSelector)
	}
	_, err := p.SendSyncSelect(msg, panics)
	if e := wantStatus(t, err, StatusQueueSelector); !strings.Contains(e.Message, "panicked: selector bug") {
		t.Fatalf("message: %s", e.Message)
	}
	_, err = p.SendSyncSelect(msg, nil)
	wantStatus(t, err, StatusInvalidArgument)
}

func TestExplicitQueueAndTheBrokersOwnCode(t *testing.T) {
	p := startedProducer(t, nil)
	topic := uniqueTopic(t)
	q := queuesOf(t, p, topic)[1]
	msg := newMsg(t, topic, []byte("to q"))
	r, err := p.SendSyncToQueue(msg, q)
	if err != nil || r.Queue() != q || r.RegionID != "DefaultRegion" {
		t.Fatalf("%+v %v", r, err)
	}
	r = asyncResult(t, func(cb func(*SendResult, error)) error { return p.SendAsyncToQueue(msg, q, cb) })
	if r.Queue() != q {
		t.Fatalf("async to %v: %v", q, r.Queue())
	}
	_, err = p.SendSyncToQueue(msg, MessageQueue{Topic: "OtherTopic", BrokerName: q.BrokerName})
	wantStatus(t, err, StatusInvalidArgument)
	_, err = p.SendSyncToQueue(msg, MessageQueue{Topic: topic, BrokerName: q.BrokerName, QueueID: 999})
	var e *Error
	if !errors.As(err, &e) || !e.IsBrokerError() || e.BrokerCode <= 0 || e.ResponseCode() != e.BrokerCode {
		t.Fatalf("queue 999: %#v", err)
	}
}

// holdCallback sends once; the callback runs inside() and holds its window slot until release
// is closed.
func holdCallback(t *testing.T, p *Producer, topic string, inside func() error) (release chan struct{}, got chan error) {
	release, got = make(chan struct{}), make(chan error, 1)
	err := p.SendAsync(newMsg(t, topic, []byte("held")), func(*SendResult, error) {
		got <- inside()
		<-release
	})
	if err != nil {
		t.Fatal(err)
	}
	return release, got
}

func TestWindowFailsFastWhenAsked(t *testing.T) {
	p := startedProducer(t, map[string]string{
		"producer.max-in-flight-async-sends": "1", "producer.block-when-in-flight-full": "false",
	})
	topic := uniqueTopic(t)
	warmUp(t, p, topic)
	release, got := holdCallback(t, p, topic, func() error { return nil })
	<-got
	err := p.SendAsync(newMsg(t, topic, []byte("refused")), func(*SendResult, error) {})
	if e := wantStatus(t, err, StatusInFlightFull); !e.Retriable() {
		t.Fatal("a full window is retriable")
	}
	close(release)
}

func TestASendFromACallbackNeverWaitsForTheWindow(t *testing.T) {
	p := startedProducer(t, map[string]string{"producer.max-in-flight-async-sends": "1"})
	topic := uniqueTopic(t)
	warmUp(t, p, topic)
	msg := newMsg(t, topic, []byte("from the callback"))
	release, got := holdCallback(t, p, topic, func() error {
		return p.SendAsync(msg, func(*SendResult, error) {})
	})
	close(release)
	wantStatus(t, <-got, StatusInFlightFull)
}

func TestManyAsyncSendsThroughASmallWindow(t *testing.T) {
	p := startedProducer(t, map[string]string{"producer.max-in-flight-async-sends": "4"})
	topic := uniqueTopic(t)
	warmUp(t, p, topic)
	const n = 200
	done := make(chan error, n)
	for i := 0; i < n; i++ {
		if err := p.SendAsync(newMsg(t, topic, []byte("w")), func(_ *SendResult, err error) { done <- err }); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestUserPropertiesApartFromReservedOnes(t *testing.T) {
	p := startedProducer(t, nil)
	topic := uniqueTopic(t)
	msg := newMsg(t, topic, []byte("props"))
	msg.SetTags("T")
	msg.SetKeys("k1")
	msg.SetProperty("color", "blue")
	if got := msg.UserProperties(); len(got) != 1 || got["color"] != "blue" {
		t.Fatalf("user properties %v", got)
	}
	r, err := p.SendSync(msg)
	if err != nil {
		t.Fatal(err)
	}
	back, err := p.ViewMessage(r.OffsetMsgID)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	if got := back.UserProperties(); len(got) != 1 || got["color"] != "blue" {
		t.Fatalf("read back user properties %v", got)
	}
	if _, ok := back.Properties()["UNIQ_KEY"]; !ok {
		t.Fatal("the stored message has UNIQ_KEY")
	}
}

func TestClientLanguage(t *testing.T) {
	p := startedProducer(t, map[string]string{"client.language": "JAVA", "instance-name": "go-lang-" + runID})
	topic := uniqueTopic(t)
	warmUp(t, p, topic)
	_, err := NewProducer(map[string]string{"name-server": "127.0.0.1:1", "producer.group": "G", "client.language": "KLINGON"})
	wantStatus(t, err, StatusInvalidConfigValue)
}
