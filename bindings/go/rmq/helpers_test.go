package rmq

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const clusterHowTo = "RMQ_NAMESRV is not set. These tests need a real RocketMQ cluster: at the repository root run\n" +
	"  RMQ_NAMESRV_PORT=39876 RMQ_BROKER_PORT=40911 scripts/rocketmq-local.sh up\n" +
	"then, in bindings/go,\n" +
	"  RMQ_NAMESRV=127.0.0.1:39876 go test ./...\n" +
	"and stop the cluster afterwards with the same variables and `down`."

// runID makes topic names, keys and groups unique per test run.
var runID = fmt.Sprintf("%x", time.Now().UnixNano())

// namesrv is the cluster's name server; the test fails (never skips) without one.
func namesrv(t *testing.T) string {
	t.Helper()
	ns := os.Getenv("RMQ_NAMESRV")
	if ns == "" {
		t.Fatal(clusterHowTo)
	}
	return ns
}

const secondClusterHowTo = "RMQ_NAMESRV_2 is not set. The two-cluster tests need a second RocketMQ cluster with its own\n" +
	"broker name beside the first: at the repository root run\n" +
	"  RMQ_NAMESRV_PORT=49876 RMQ_BROKER_PORT=50911 RMQ_CLUSTER=SecondCluster RMQ_BROKER_NAME=broker-b scripts/rocketmq-local.sh up\n" +
	"then set RMQ_NAMESRV_2=127.0.0.1:49876 besides RMQ_NAMESRV (`make test` does all of this itself)."

// secondNamesrv is the name server of a second, independent cluster whose broker is broker-b;
// the test fails (never skips) without one.
func secondNamesrv(t *testing.T) string {
	t.Helper()
	ns := os.Getenv("RMQ_NAMESRV_2")
	if ns == "" {
		t.Fatal(secondClusterHowTo)
	}
	return ns
}

var nonTopicChars = regexp.MustCompile(`[^A-Za-z0-9_-]`)

var topicSeq atomic.Int64

// uniqueTopic is a fresh topic name for this test invocation (also under -count=N); topics
// auto-create on their first send.
func uniqueTopic(t *testing.T) string {
	name := nonTopicChars.ReplaceAllString(t.Name(), "_")
	if len(name) > 60 {
		name = name[:60]
	}
	return fmt.Sprintf("GoRmq_%s_%s_%d", name, runID, topicSeq.Add(1))
}

func producerConfig(t *testing.T, extra map[string]string) map[string]string {
	cfg := map[string]string{
		"name-server":    namesrv(t),
		"producer.group": "GoRmqTestGroup_" + runID,
	}
	for k, v := range extra {
		cfg[k] = v
	}
	return cfg
}

// newProducer creates (not starts) a producer closed at the end of the test.
func newProducer(t *testing.T, extra map[string]string) *Producer {
	t.Helper()
	p, err := NewProducer(producerConfig(t, extra))
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func startedProducer(t *testing.T, extra map[string]string) *Producer {
	t.Helper()
	p := newProducer(t, extra)
	if err := p.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return p
}

func newMsg(t *testing.T, topic string, body []byte) *Message {
	t.Helper()
	m, err := NewMessage(topic, body)
	if err != nil {
		t.Fatalf("NewMessage(%q): %v", topic, err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// warmUp sends until the topic exists: a new topic is auto-created by the first send, which
// can take a moment.
func warmUp(t *testing.T, p *Producer, topic string) {
	t.Helper()
	msg := newMsg(t, topic, []byte("warm-up"))
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := p.SendSync(msg)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s not writable after 30 s: %v", topic, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// wantStatus asserts err is an *Error with the given status, a matching name and a message.
func wantStatus(t *testing.T, err error, status int) *Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s (%d)", StatusName(status), status)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *rmq.Error", err, err)
	}
	t.Logf("got the expected error: %v", err)
	if e.Status != status {
		t.Fatalf("got %v, want status %s (%d)", err, StatusName(status), status)
	}
	if e.Name != StatusName(status) || e.Name == "RMQ_ERR_UNKNOWN" {
		t.Fatalf("error %v has name %q, want %q", err, e.Name, StatusName(status))
	}
	if e.Message == "" {
		t.Fatalf("error %v has no message", err)
	}
	if !errors.Is(err, &Error{Status: status}) {
		t.Fatalf("errors.Is(%v, status %d) is false", err, status)
	}
	return e
}

// testCase is one message sent and read back.
type testCase struct {
	name  string
	body  []byte
	tags  string
	keys  []string
	props map[string]string
}

// roundTripCases are the messages of one round-trip test; their keys embed topic, so they are
// unique to the test invocation.
func roundTripCases(mode, topic string) []testCase {
	rng := rand.New(rand.NewSource(42))
	big := make([]byte, 1<<20)
	rng.Read(big)
	big[0], big[len(big)/2], big[len(big)-1] = 0, 0, 0
	binary := []byte{0x00, 'r', 'm', 'q', 0x00, 0xff, 0xfe, 0x80, 0xc3, 0x28, 0x01, 0x02, 0x00}
	cases := []testCase{
		{name: "text", body: []byte("hello from Go ✓")},
		{name: "binary", body: binary},
		{name: "1MiB", body: big},
	}
	for i := range cases {
		c := &cases[i]
		c.tags = "Tag_" + mode
		c.keys = []string{fmt.Sprintf("key-%s-%s-%s", mode, c.name, topic), "shared-" + topic}
		c.props = map[string]string{
			"color":   "blue",
			"unicode": "grüße ✓ " + c.name,
			"spaced":  "a b  c",
		}
	}
	return cases
}

func (c testCase) message(t *testing.T, topic string) *Message {
	t.Helper()
	m := newMsg(t, topic, c.body)
	if err := m.SetTags(c.tags); err != nil {
		t.Fatal(err)
	}
	if err := m.SetKeys(c.keys...); err != nil {
		t.Fatal(err)
	}
	for k, v := range c.props {
		if err := m.SetProperty(k, v); err != nil {
			t.Fatalf("SetProperty(%q, %q): %v", k, v, err)
		}
	}
	return m
}

// checkSendResult asserts the fields of a successful send's result.
func checkSendResult(t *testing.T, res *SendResult, topic string) {
	t.Helper()
	if res == nil {
		t.Fatal("nil SendResult")
	}
	if res.Status != SendOK || res.StatusName != "SEND_OK" {
		t.Errorf("status %d %q, want SEND_OK", res.Status, res.StatusName)
	}
	if res.MsgID == "" || res.OffsetMsgID == "" || res.BrokerName == "" {
		t.Errorf("empty id or broker in %+v", res)
	}
	if res.Topic != topic {
		t.Errorf("result topic %q, want %q", res.Topic, topic)
	}
	if res.QueueID < 0 || res.QueueOffset < 0 {
		t.Errorf("bad queue in %+v", res)
	}
}

// checkStored asserts that a message read back from the broker is what c sent; res is the
// send's result, nil for a oneway send.
func checkStored(t *testing.T, got *Message, c testCase, topic string, res *SendResult, sentAt time.Time) {
	t.Helper()
	if got.Topic() != topic {
		t.Errorf("%s: topic %q, want %q", c.name, got.Topic(), topic)
	}
	if body := got.Body(); !bytes.Equal(body, c.body) {
		t.Errorf("%s: body differs: got %d bytes (%q...), want %d bytes", c.name, len(body), trunc(body), len(c.body))
	}
	if got.Tags() != c.tags {
		t.Errorf("%s: tags %q, want %q", c.name, got.Tags(), c.tags)
	}
	if keys := got.Keys(); !slices.Equal(keys, c.keys) {
		t.Errorf("%s: keys %q, want %q", c.name, keys, c.keys)
	}
	props := got.Properties()
	for k, v := range c.props {
		if pv, ok := got.Property(k); !ok || pv != v {
			t.Errorf("%s: property %q = %q (%v), want %q", c.name, k, pv, ok, v)
		}
		if props[k] != v {
			t.Errorf("%s: Properties()[%q] = %q, want %q", c.name, k, props[k], v)
		}
	}
	if props["TAGS"] != c.tags {
		t.Errorf("%s: system property TAGS = %q, want %q", c.name, props["TAGS"], c.tags)
	}
	if _, ok := got.Property("no-such-property"); ok {
		t.Errorf("%s: absent property reported as set", c.name)
	}
	if got.MsgID() == "" || got.OffsetMsgID() == "" {
		t.Errorf("%s: stored message without ids: %q %q", c.name, got.MsgID(), got.OffsetMsgID())
	}
	qid, okQ := got.QueueID()
	off, okO := got.QueueOffset()
	if !okQ || !okO || qid < 0 || off < 0 {
		t.Errorf("%s: queue %d (%v) offset %d (%v)", c.name, qid, okQ, off, okO)
	}
	stored, okS := got.StoreTimestamp()
	born, okB := got.BornTimestamp()
	if !okS || !okB {
		t.Errorf("%s: no timestamps", c.name)
	} else {
		lo, hi := sentAt.Add(-time.Minute), time.Now().Add(time.Minute)
		if stored.Before(lo) || stored.After(hi) || born.Before(lo) || born.After(hi) {
			t.Errorf("%s: timestamps stored %v born %v not around %v", c.name, stored, born, sentAt)
		}
	}
	if res != nil {
		if got.MsgID() != res.MsgID {
			t.Errorf("%s: stored msg id %q, send result %q", c.name, got.MsgID(), res.MsgID)
		}
		if got.OffsetMsgID() != res.OffsetMsgID {
			t.Errorf("%s: stored offset msg id %q, send result %q", c.name, got.OffsetMsgID(), res.OffsetMsgID)
		}
		if qid != res.QueueID || off != res.QueueOffset {
			t.Errorf("%s: stored at %d/%d, send result says %d/%d", c.name, qid, off, res.QueueID, res.QueueOffset)
		}
	}
}

func trunc(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}

// waitTimeout waits for ch to close, failing the test after d.
func waitTimeout(t *testing.T, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
