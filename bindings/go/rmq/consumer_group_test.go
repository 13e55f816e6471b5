package rmq

// The push consumer against a real broker, beyond consumer_test.go: failing messages reach
// %DLQ%<group> (read back by another group), two and three consumers per group (everything
// consumed, the queues partitioned), and a consumer process killed with SIGKILL whose successor
// loses nothing and re-delivers at most what was in flight.
//
// fork() of a running consumer is not tested from Go: a Go program cannot fork without exec (the
// runtime's other threads do not exist in the child, so the scheduler and garbage collector can
// deadlock there; syscall offers only ForkExec). tests/c/test_consumer_group.c tests it through
// the C ABI that this package wraps.

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const wave = 16 // messages per wave: every queue of a 4-queue topic gets some

type delivery struct {
	member int
	body   string
	queue  int32
	times  int32
}

// table records every delivery of a group's members.
type table struct {
	mu   sync.Mutex
	rows []delivery
}

func (tb *table) handler(member int, verdict ConsumeResult) Handler {
	return func(msgs []*ReceivedMessage) ConsumeResult {
		tb.mu.Lock()
		for _, m := range msgs {
			tb.rows = append(tb.rows, delivery{member, string(m.Body), m.QueueID, m.ReconsumeTimes})
		}
		tb.mu.Unlock()
		return verdict
	}
}

func (tb *table) bodies() map[string]bool {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	out := map[string]bool{}
	for _, r := range tb.rows {
		out[r.body] = true
	}
	return out
}

// partitioned: wave w's messages split by queue, each queue to exactly one member, and every
// member owning some queue.
func (tb *table) partitioned(w, members int) bool {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	byBody, byQueue := map[string]map[int]bool{}, map[int32]map[int]bool{}
	for _, r := range tb.rows {
		if !strings.HasPrefix(r.body, fmt.Sprintf("%d-", w)) {
			continue
		}
		if byBody[r.body] == nil {
			byBody[r.body] = map[int]bool{}
		}
		if byQueue[r.queue] == nil {
			byQueue[r.queue] = map[int]bool{}
		}
		byBody[r.body][r.member] = true
		byQueue[r.queue][r.member] = true
	}
	owners := map[int]bool{}
	for _, o := range byQueue {
		if len(o) != 1 {
			return false
		}
		for m := range o {
			owners[m] = true
		}
	}
	for _, o := range byBody {
		if len(o) != 1 {
			return false
		}
	}
	return len(byBody) == wave && len(owners) == members
}

func sendWave(t *testing.T, p *Producer, topic string, w, n int) map[string]bool {
	t.Helper()
	sent := map[string]bool{}
	for i := 0; i < n; i++ {
		body := fmt.Sprintf("%d-%d", w, i)
		if _, err := p.SendSync(newMsg(t, topic, []byte(body))); err != nil {
			t.Fatalf("send %s: %v", body, err)
		}
		sent[body] = true
	}
	return sent
}

func startedConsumer(t *testing.T, group, topic string, h Handler, extra map[string]string) *PushConsumer {
	t.Helper()
	cfg := map[string]string{"consumer.group": group, "consumer.rebalance-interval": "1000"}
	for k, v := range extra {
		cfg[k] = v
	}
	c := newConsumer(t, cfg)
	if err := c.Subscribe(topic, "*"); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(h); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConsumersOfAGroupConsumeEverythingAndSplitTheQueues(t *testing.T) {
	for _, members := range []int{2, 3} {
		t.Run(fmt.Sprint(members), func(t *testing.T) {
			topic := uniqueTopic(t)
			group := fmt.Sprintf("GoRmqGroup_%s_%d", runID, topicSeq.Add(1))
			p := startedProducer(t, nil)
			tb := &table{}
			sent := sendWave(t, p, topic, 0, wave)
			for k := 0; k < members; k++ {
				startedConsumer(t, group, topic, tb.handler(k, ConsumeSuccess), nil)
			}
			eventually(t, "the first wave consumed", func() bool { return hasAll(tb.bodies(), sent) })
			settled := false
			for w := 1; !settled && w < 64; w++ {
				for b := range sendWave(t, p, topic, w, wave) {
					sent[b] = true
				}
				eventually(t, "every wave consumed", func() bool { return hasAll(tb.bodies(), sent) })
				settled = tb.partitioned(w, members)
			}
			if !settled {
				t.Fatal("the group never split a wave's queues among all its consumers")
			}
			if got := tb.bodies(); len(got) != len(sent) {
				t.Fatalf("consumed %d distinct bodies, sent %d", len(got), len(sent))
			}
		})
	}
}

func TestFailingMessagesReachTheDLQAndAreReadBack(t *testing.T) {
	topic := uniqueTopic(t)
	group := fmt.Sprintf("GoRmqDlq_%s_%d", runID, topicSeq.Add(1))
	p := startedProducer(t, nil)
	sent := sendWave(t, p, topic, 0, 4)
	failing := &table{}
	// Level 1 is the broker's 1 s delay; max 1 reconsume, then the DLQ.
	startedConsumer(t, group, topic, failing.handler(0, ReconsumeLater(1)),
		map[string]string{"consumer.max-reconsume-times": "1"})
	counts := func() map[string]map[int32]bool {
		failing.mu.Lock()
		defer failing.mu.Unlock()
		out := map[string]map[int32]bool{}
		for _, r := range failing.rows {
			if out[r.body] == nil {
				out[r.body] = map[int32]bool{}
			}
			out[r.body][r.times] = true
		}
		return out
	}
	eventually(t, "each message delivered with reconsume counts 0 and 1", func() bool {
		c := counts()
		for b := range sent {
			if !c[b][0] || !c[b][1] {
				return false
			}
		}
		return true
	})
	dead := &table{}
	reader := fmt.Sprintf("GoRmqDlqReader_%s_%d", runID, topicSeq.Add(1))
	startedConsumer(t, reader, "%DLQ%"+group, dead.handler(0, ConsumeSuccess), nil)
	eventually(t, "the DLQ holds every message", func() bool { return hasAll(dead.bodies(), sent) })
	if got := dead.bodies(); len(got) != len(sent) {
		t.Fatalf("DLQ holds %v, sent %v", got, sent)
	}
	for b, times := range counts() {
		for n := range times {
			if n > 1 {
				t.Errorf("%s delivered with reconsume count %d after the DLQ", b, n)
			}
		}
	}
}

// ---------------------------------------------------------------------------------- SIGKILL

const (
	killThreads       = 4
	killBatch         = 2
	killRecordedCalls = 40
)

// sigkillChild is the consumer process the SIGKILL test kills (this test binary, run again with
// RMQ_SIGKILL_DIR set): it appends one line per consumed message to <dir>/consumed (one write
// per handler call, before the call returns success): msg id, offset msg id, broker, queue,
// queue offset. After killRecordedCalls calls every later call writes to <dir>/blocked and
// blocks for good.
func sigkillChild(t *testing.T, dir string) {
	open := func(name string) *os.File {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	consumed, blocked := open("consumed"), open("blocked")
	var calls atomic.Int64
	c, err := NewPushConsumer(map[string]string{
		"name-server":                               namesrv(t),
		"consumer.group":                            os.Getenv("RMQ_SIGKILL_GROUP"),
		"instance-name":                             os.Getenv("RMQ_SIGKILL_INSTANCE"),
		"consumer.consume-from-where":               "first",
		"consumer.consume-thread-number":            fmt.Sprint(killThreads),
		"consumer.consume-message-batch-max-size":   fmt.Sprint(killBatch),
		"consumer.persist-consumer-offset-interval": "200",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(os.Getenv("RMQ_SIGKILL_TOPIC"), "*"); err != nil {
		t.Fatal(err)
	}
	err = c.Start(func(msgs []*ReceivedMessage) ConsumeResult {
		if calls.Add(1) <= killRecordedCalls {
			var b strings.Builder
			for _, m := range msgs {
				fmt.Fprintf(&b, "%s %s %s %d %d\n", m.MsgID, m.OffsetMsgID, m.BrokerName, m.QueueID, m.QueueOffset)
			}
			if _, err := consumed.WriteString(b.String()); err != nil {
				panic(err)
			}
			return ConsumeSuccess
		}
		blocked.WriteString("blocked\n")
		select {}
	})
	if err != nil {
		t.Fatal(err)
	}
	select {}
}

// committedOffset asks the broker at store for the group's offset of a queue
// (QUERY_CONSUMER_OFFSET, code 14, JSON header); 0 when it holds none.
func committedOffset(t *testing.T, store, group, topic, broker string, queue int32) int64 {
	t.Helper()
	header, _ := json.Marshal(map[string]any{
		"code": 14, "language": "GO", "version": 0, "opaque": 1, "flag": 0,
		"extFields": map[string]string{
			"consumerGroup": group, "topic": topic, "queueId": fmt.Sprint(queue),
			"bname": broker, "setZeroIfNotFound": "false",
		},
	})
	conn, err := net.DialTimeout("tcp", store, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	frame := binary.BigEndian.AppendUint32(nil, uint32(4+len(header)))
	frame = binary.BigEndian.AppendUint32(frame, uint32(len(header)))
	if _, err := conn.Write(append(frame, header...)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	var total uint32
	if err := binary.Read(r, binary.BigEndian, &total); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, total)
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatal(err)
	}
	hlen := binary.BigEndian.Uint32(body[:4]) & 0xFFFFFF
	var resp struct {
		Code      int               `json:"code"`
		ExtFields map[string]string `json:"extFields"`
	}
	if err := json.Unmarshal(body[4:4+hlen], &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Code != 0 {
		return 0
	}
	n, err := strconv.ParseInt(resp.ExtFields["offset"], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// storeOf is host:port of the broker that stored a message, from its IPv4 offset message id.
func storeOf(t *testing.T, offsetMsgID string) string {
	raw, err := hex.DecodeString(offsetMsgID[:16])
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s:%d", net.IP(raw[:4]), binary.BigEndian.Uint32(raw[4:8]))
}

type killRecord struct {
	id, store, broker string
	queue             int32
	offset            int64
}

type queueKey struct {
	broker string
	queue  int32
}

// The child records each message it consumed before returning success; after killRecordedCalls
// calls its calls block, so killThreads calls of up to killBatch messages stay in flight. Once
// the broker holds the offsets the child committed (every 200 ms here), SIGKILL; a new consumer
// of the group finishes. What was in flight: the blocked calls' messages (at most threads x
// batch, never recorded as consumed, so no duplicates) plus what the child consumed above each
// queue's lowest in-flight message, which no commit could cover (the committed offset is the
// lowest message not consumed; the broker is checked to hold exactly that). Only those may come
// again, and nothing below a committed offset.
func TestConsumerKilledWithSIGKILLLosesNothingAndRedeliversAtMostWhatWasInFlight(t *testing.T) {
	if dir := os.Getenv("RMQ_SIGKILL_DIR"); dir != "" {
		sigkillChild(t, dir)
		return
	}
	topic := uniqueTopic(t)
	group := fmt.Sprintf("GoRmqKill_%s_%d", runID, topicSeq.Add(1))
	p := startedProducer(t, nil)
	sent := map[string]bool{}
	for i := 0; i < 300; i++ {
		r, err := p.SendSync(newMsg(t, topic, []byte(fmt.Sprintf("k-%d", i))))
		if err != nil {
			t.Fatal(err)
		}
		sent[r.MsgID] = true
	}
	dir := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run=^TestConsumerKilledWithSIGKILLLosesNothingAndRedeliversAtMostWhatWasInFlight$")
	child.Env = append(os.Environ(), "RMQ_SIGKILL_DIR="+dir, "RMQ_SIGKILL_GROUP="+group, "RMQ_SIGKILL_TOPIC="+topic,
		fmt.Sprintf("RMQ_SIGKILL_INSTANCE=gokill_%s_%d", runID, topicSeq.Add(1)))
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	kill := func() {
		if !killed {
			killed = true
			child.Process.Signal(syscall.SIGKILL)
			child.Wait()
		}
	}
	defer kill()
	lines := func(name string) []string {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		if len(b) == 0 {
			return nil
		}
		return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	}
	eventually(t, "every consume thread of the child blocked", func() bool { return len(lines("blocked")) == killThreads })
	var before []killRecord
	ids := map[string]bool{}
	for _, l := range lines("consumed") {
		f := strings.Split(l, " ")
		q, _ := strconv.ParseInt(f[3], 10, 32)
		o, _ := strconv.ParseInt(f[4], 10, 64)
		before = append(before, killRecord{f[0], storeOf(t, f[1]), f[2], int32(q), o})
		if ids[f[0]] {
			t.Fatalf("the child consumed %s twice", f[0])
		}
		ids[f[0]] = true
	}
	if len(before) < killRecordedCalls || len(before) > killRecordedCalls*killBatch {
		t.Fatalf("the child recorded %d messages in %d calls", len(before), killRecordedCalls)
	}
	offsets := map[queueKey]map[int64]bool{}
	stores := map[queueKey]string{}
	for _, r := range before {
		k := queueKey{r.broker, r.queue}
		if offsets[k] == nil {
			offsets[k] = map[int64]bool{}
		}
		offsets[k][r.offset] = true
		stores[k] = r.store
	}
	lowest := map[queueKey]int64{}
	for k, offs := range offsets {
		var o int64
		for offs[o] {
			o++
		}
		lowest[k] = o
	}
	eventually(t, fmt.Sprintf("the broker holds the child's offsets %v", lowest), func() bool {
		for k, want := range lowest {
			if committedOffset(t, stores[k], group, topic, k.broker, k.queue) != want {
				return false
			}
		}
		return true
	})
	kill()

	var mu sync.Mutex
	var after []string
	startedConsumer(t, group, topic, func(msgs []*ReceivedMessage) ConsumeResult {
		mu.Lock()
		for _, m := range msgs {
			after = append(after, m.MsgID)
		}
		mu.Unlock()
		return ConsumeSuccess
	}, nil)
	eventually(t, "the new consumer covers the rest", func() bool {
		mu.Lock()
		defer mu.Unlock()
		union := map[string]bool{}
		for id := range ids {
			union[id] = true
		}
		for _, id := range after {
			union[id] = true
		}
		return len(union) == len(sent) && hasAll(union, sent)
	})
	uncovered := map[string]bool{}
	for _, r := range before {
		if r.offset >= lowest[queueKey{r.broker, r.queue}] {
			uncovered[r.id] = true
		}
	}
	mu.Lock()
	defer mu.Unlock()
	again := 0
	for _, id := range after {
		if ids[id] {
			again++
			if !uncovered[id] {
				t.Errorf("%s came again though it was below a committed offset", id)
			}
		}
	}
	if again > killThreads*killBatch+len(uncovered) {
		t.Errorf("re-delivered %d consumed messages; in flight were at most %d + %d", again, killThreads*killBatch, len(uncovered))
	}
}
