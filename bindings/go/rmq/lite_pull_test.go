package rmq

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"
)

// The lite pull consumer against a real broker: every message sent is polled (sets compared)
// and auto-commit at Close moves the group past them; a manual commit is where a restart
// resumes; seek to an offset, the beginning, the end and a time; pause stops a queue and resume
// restarts it; assign takes exactly the given queues; Close ends a waiting Poll and a done ctx
// ends Poll; misuse is an error. "Nothing comes" checks poll for a while and fail on anything
// that does come.

const litePollWithin = 60 * time.Second

func newLite(t *testing.T, group string, extra map[string]string) *LitePullConsumer {
	t.Helper()
	if group == "" {
		group = fmt.Sprintf("GoRmqLite_%s_%d", runID, topicSeq.Add(1))
	}
	cfg := map[string]string{
		"name-server":                 namesrv(t),
		"consumer.group":              group,
		"instance-name":               fmt.Sprintf("golite_%s_%d", runID, topicSeq.Add(1)),
		"consumer.consume-from-where": "first",
		"consumer.pull-batch-size":    "8",
	}
	for k, v := range extra {
		cfg[k] = v
	}
	c, err := NewLitePullConsumer(cfg)
	if err != nil {
		t.Fatalf("NewLitePullConsumer: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// sendTo sends bodies "<prefix>-<i>" to q (any queue when q is nil); returns them.
func sendTo(t *testing.T, p *Producer, topic, prefix string, n int, q *MessageQueue) []string {
	t.Helper()
	var out []string
	for i := 0; i < n; i++ {
		body := fmt.Sprintf("%s-%d", prefix, i)
		m := newMsg(t, topic, []byte(body))
		var err error
		if q != nil {
			_, err = p.SendSyncToQueue(m, *q)
		} else {
			_, err = p.SendSync(m)
		}
		must(t, err)
		out = append(out, body)
	}
	return out
}

// pollN polls until n messages came (or the bound passes).
func pollN(t *testing.T, c *LitePullConsumer, n int) []*ReceivedMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), litePollWithin)
	defer cancel()
	var got []*ReceivedMessage
	for len(got) < n {
		msgs, err := c.Poll(ctx)
		if err != nil {
			t.Fatalf("after %d of %d: %v", len(got), n, err)
		}
		if len(msgs) > 8 {
			t.Fatalf("a poll returned %d messages, more than pull-batch-size", len(msgs))
		}
		got = append(got, msgs...)
	}
	return got
}

// pollFor returns whatever comes within d.
func pollFor(t *testing.T, c *LitePullConsumer, d time.Duration) []*ReceivedMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var got []*ReceivedMessage
	for {
		msgs, err := c.Poll(ctx)
		if err == context.DeadlineExceeded {
			return got
		}
		must(t, err)
		got = append(got, msgs...)
	}
}

func bodiesOf(msgs []*ReceivedMessage) []string {
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, string(m.Body))
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	sort.Strings(a)
	sort.Strings(b)
	return slices.Equal(a, b)
}

// liteTopic makes a topic with its first message ("create-0"); all its queues, and those
// without that message.
func liteTopic(t *testing.T, p *Producer) (string, []MessageQueue, []MessageQueue) {
	t.Helper()
	topic := uniqueTopic(t)
	res, err := p.SendSync(newMsg(t, topic, []byte("create-0")))
	must(t, err)
	probe := newLite(t, "", nil)
	must(t, probe.Start())
	// A 4.x broker registers a topic it auto-created with the name server a moment after the
	// send that created it, so the route may not be there yet.
	var qs []MessageQueue
	eventually(t, "the new topic's route", func() bool {
		qs, err = probe.FetchMessageQueues(topic)
		return err == nil
	})
	must(t, probe.Close())
	var free []MessageQueue
	for _, q := range qs {
		if q.QueueID != res.QueueID {
			free = append(free, q)
		}
	}
	if len(free) < 2 {
		t.Fatalf("topic has too few queues: %v", qs)
	}
	return topic, qs, free
}

func TestLitePullEveryMessageIsPolledAndCloseCommits(t *testing.T) {
	topic := uniqueTopic(t)
	p := startedProducer(t, nil)
	want := sendTo(t, p, topic, "all", 50, nil)
	group := fmt.Sprintf("GoRmqLiteAll_%s_%d", runID, topicSeq.Add(1))
	c := newLite(t, group, nil)
	must(t, c.Subscribe(topic, "*"))
	must(t, c.Start())
	if qs, err := c.Assignment(); err != nil || len(qs) == 0 {
		t.Fatalf("the first rebalance ran in Start: %v %v", qs, err)
	}
	if got := bodiesOf(pollN(t, c, 50)); !sameSet(got, want) {
		t.Fatalf("got %v", got)
	}
	must(t, c.Close())
	later := sendTo(t, p, topic, "later", 10, nil)
	c2 := newLite(t, group, nil)
	must(t, c2.Subscribe(topic, "*"))
	must(t, c2.Start())
	if got := bodiesOf(pollN(t, c2, 10)); !sameSet(got, later) {
		t.Fatalf("Close committed the first 50; got %v", got)
	}
}

func TestLitePullRestartResumesAtTheManualCommit(t *testing.T) {
	p := startedProducer(t, nil)
	topic, qs, _ := liteTopic(t, p)
	group := fmt.Sprintf("GoRmqLiteCommit_%s_%d", runID, topicSeq.Add(1))
	manual := map[string]string{"consumer.auto-commit": "false"}
	first := append(sendTo(t, p, topic, "first", 30, nil), "create-0")
	c := newLite(t, group, manual)
	must(t, c.Assign(qs))
	must(t, c.Start())
	if got := bodiesOf(pollN(t, c, 31)); !sameSet(got, first) {
		t.Fatalf("got %v", got)
	}
	must(t, c.Commit())
	var sum int64
	for _, q := range qs {
		o, _, err := c.Committed(q)
		must(t, err)
		sum += o
	}
	if sum != 31 {
		t.Fatalf("committed offsets sum to %d, want 31", sum)
	}
	second := sendTo(t, p, topic, "second", 10, nil)
	if got := bodiesOf(pollN(t, c, 10)); !sameSet(got, second) {
		t.Fatalf("got %v", got)
	}
	must(t, c.Close()) // polled after the commit: not committed

	c2 := newLite(t, group, manual)
	must(t, c2.Assign(qs))
	must(t, c2.Start())
	again := append(bodiesOf(pollN(t, c2, 10)), bodiesOf(pollFor(t, c2, 600*time.Millisecond))...)
	if !sameSet(again, second) {
		t.Fatalf("resumed at the commit: want %v, got %v", second, again)
	}
	must(t, c2.CommitOffsets(map[MessageQueue]int64{qs[0]: 1}))
	if o, ok, err := c2.Committed(qs[0]); err != nil || !ok || o != 1 {
		t.Fatalf("Committed = %d %v %v", o, ok, err)
	}
}

func TestLitePullSeek(t *testing.T) {
	p := startedProducer(t, nil)
	topic, _, free := liteTopic(t, p)
	q := free[0]
	sendTo(t, p, topic, "early", 5, &q)
	time.Sleep(1100 * time.Millisecond)
	sendTo(t, p, topic, "late", 5, &q)
	c := newLite(t, "", nil)
	must(t, c.Assign([]MessageQueue{q}))
	must(t, c.Start())
	got := map[string]*ReceivedMessage{}
	for _, m := range pollN(t, c, 10) {
		got[string(m.Body)] = m
	}
	late0, late4, early4 := got["late-0"], got["late-4"], got["early-4"]
	if len(got) != 10 || late0 == nil || late4 == nil || early4 == nil {
		t.Fatalf("got %v", got)
	}

	must(t, c.Seek(q, late0.QueueOffset))
	if b := bodiesOf(pollN(t, c, 5)); !slices.Equal(b, []string{"late-0", "late-1", "late-2", "late-3", "late-4"}) {
		t.Fatalf("after seek: %v", b)
	}
	must(t, c.SeekToBegin(q))
	if b := bodiesOf(pollN(t, c, 10)); b[0] != "early-0" {
		t.Fatalf("after seek to begin: %v", b)
	}
	must(t, c.SeekToEnd(q))
	if b := pollFor(t, c, 600*time.Millisecond); len(b) != 0 {
		t.Fatalf("after seek to end: %v", bodiesOf(b))
	}
	sendTo(t, p, topic, "after", 1, &q)
	if m := pollN(t, c, 1); string(m[0].Body) != "after-0" || m[0].QueueOffset != late4.QueueOffset+1 {
		t.Fatalf("after the end: %v", bodiesOf(m))
	}

	if late0.StoreTimestamp.Sub(early4.StoreTimestamp) < time.Second {
		t.Fatalf("late stored %v after early", late0.StoreTimestamp.Sub(early4.StoreTimestamp))
	}
	must(t, c.SeekToTimestamp(q, late0.StoreTimestamp))
	if b := bodiesOf(pollN(t, c, 1)); b[0] != "late-0" {
		t.Fatalf("after seek to time: %v", b)
	}
	if o, err := c.OffsetForTimestamp(q, late0.StoreTimestamp); err != nil || o != late0.QueueOffset {
		t.Fatalf("OffsetForTimestamp = %d %v", o, err)
	}
	wantStatus(t, c.Seek(q, late4.QueueOffset+100), StatusInvalidArgument)
	wantStatus(t, c.Seek(free[1], 0), StatusInvalidArgument)
}

func TestLitePullPauseAndResume(t *testing.T) {
	p := startedProducer(t, nil)
	topic, _, free := liteTopic(t, p)
	q0, q1 := free[0], free[1]
	on0 := sendTo(t, p, topic, "q0", 5, &q0)
	on1 := sendTo(t, p, topic, "q1", 5, &q1)
	c := newLite(t, "", nil)
	must(t, c.Assign([]MessageQueue{q0, q1}))
	must(t, c.Pause(q0))
	must(t, c.Start())
	got := append(bodiesOf(pollN(t, c, 5)), bodiesOf(pollFor(t, c, 1500*time.Millisecond))...)
	if !sameSet(got, on1) {
		t.Fatalf("nothing of the paused queue: %v", got)
	}
	must(t, c.Resume(q0))
	if got := bodiesOf(pollN(t, c, 5)); !sameSet(got, on0) {
		t.Fatalf("after resume: %v", got)
	}
	must(t, c.Pause(q1))
	later := sendTo(t, p, topic, "q1later", 3, &q1)
	if got := pollFor(t, c, 1500*time.Millisecond); len(got) != 0 {
		t.Fatalf("paused: %v", bodiesOf(got))
	}
	must(t, c.Resume(q1))
	if got := bodiesOf(pollN(t, c, 3)); !sameSet(got, later) {
		t.Fatalf("after resume: %v", got)
	}
}

func TestLitePullAssignTakesExactlyTheGivenQueues(t *testing.T) {
	p := startedProducer(t, nil)
	topic, _, free := liteTopic(t, p)
	var mine []MessageQueue
	var want []string
	for i, q := range free {
		sent := sendTo(t, p, topic, fmt.Sprintf("on%d", q.QueueID), 3, &q)
		if i%2 == 0 {
			mine = append(mine, q)
			want = append(want, sent...)
		}
	}
	c := newLite(t, "", nil)
	must(t, c.Start())
	if qs, err := c.Assignment(); err != nil || len(qs) != 0 {
		t.Fatalf("Assignment before Assign = %v %v", qs, err)
	}
	must(t, c.Assign(mine))
	if qs, err := c.Assignment(); err != nil || !slices.Equal(qs, mine) {
		t.Fatalf("Assignment = %v %v, want %v", qs, err, mine)
	}
	got := append(bodiesOf(pollN(t, c, len(want))), bodiesOf(pollFor(t, c, 600*time.Millisecond))...)
	if !sameSet(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestLitePullCloseEndsAWaitingPollAndMisuseFails(t *testing.T) {
	topic := uniqueTopic(t)
	c := newLite(t, "", nil)
	_, err := c.Poll(context.Background())
	wantStatus(t, err, StatusInvalidState)
	must(t, c.Subscribe(topic, "*"))
	wantStatus(t, c.Assign([]MessageQueue{{Topic: topic, BrokerName: "broker-a"}}), StatusInvalidState)
	must(t, c.Start())

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.Poll(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Poll with a done ctx = %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Poll(context.Background())
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	must(t, c.Close())
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a waiting Poll returned no error after Close")
		}
	case <-time.After(litePollWithin):
		t.Fatal("Close did not end a waiting Poll")
	}
	_, err = c.Poll(context.Background())
	wantStatus(t, err, StatusInvalidHandle)
	must(t, c.Close())
}
