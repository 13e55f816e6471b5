package rmq

// Broadcasting against a real broker: the message model is a configuration key
// (consumer.message-model=BROADCASTING). Two consumers of one group each receive every message,
// and a consumer restarted with the same instance name resumes from its local offset file
// (consumer.local-offset-store-dir), receiving only what came since.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

type seenSet struct {
	mu sync.Mutex
	m  map[string]bool
}

func (s *seenSet) handler() Handler {
	return func(msgs []*ReceivedMessage) ConsumeResult {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, m := range msgs {
			s.m[string(m.Body)] = true
		}
		return ConsumeSuccess
	}
}

func (s *seenSet) snapshot() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]bool, len(s.m))
	for k := range s.m {
		out[k] = true
	}
	return out
}

func TestBroadcastingEveryConsumerGetsEverythingAndARestartResumes(t *testing.T) {
	topic := uniqueTopic(t)
	group := fmt.Sprintf("GoRmqBC_%s_%d", runID, topicSeq.Add(1))
	store := t.TempDir()
	p := startedProducer(t, nil)
	broadcaster := func(instance string, s *seenSet) *PushConsumer {
		return startedConsumer(t, group, topic, s.handler(), map[string]string{
			"instance-name":                   instance,
			"consumer.message-model":          "BROADCASTING",
			"consumer.local-offset-store-dir": store,
		})
	}
	first := sendWave(t, p, topic, 0, 20)
	nameA := fmt.Sprintf("gobca_%s_%d", runID, topicSeq.Add(1))
	nameB := fmt.Sprintf("gobcb_%s_%d", runID, topicSeq.Add(1))
	a, b := &seenSet{m: map[string]bool{}}, &seenSet{m: map[string]bool{}}
	ca, cb := broadcaster(nameA, a), broadcaster(nameB, b)
	eventually(t, "consumer a got every message", func() bool { return hasAll(a.snapshot(), first) })
	eventually(t, "consumer b got every message", func() bool { return hasAll(b.snapshot(), first) })
	if err := ca.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cb.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(store, "*@"+nameA, group, "offsets.json"))
	if len(files) != 1 {
		t.Fatalf("offset file of a: %v", files)
	}
	text, err := os.ReadFile(files[0])
	if err != nil || !strings.HasPrefix(string(text), `{"offsetTable":{{"brokerName":`) {
		t.Fatalf("offset file %q: %v", text, err)
	}

	second := sendWave(t, p, topic, 1, 20)
	a2 := &seenSet{m: map[string]bool{}}
	ca2 := broadcaster(nameA, a2)
	eventually(t, "the restarted consumer got the new messages", func() bool { return hasAll(a2.snapshot(), second) })
	if err := ca2.Close(); err != nil {
		t.Fatal(err)
	}
	for body := range a2.snapshot() {
		if first[body] {
			t.Fatalf("resumed from the file, yet %s came again", body)
		}
	}
}

func TestBroadcastingRefusesAnUnknownMessageModel(t *testing.T) {
	_, err := NewPushConsumer(map[string]string{
		"name-server":            namesrv(t),
		"consumer.group":         "GoRmqBCBad",
		"consumer.message-model": "broadcast",
	})
	wantStatus(t, err, StatusInvalidConfigValue)
}
