package rmq

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// traceKinds is the set of trace record types in RMQ_SYS_TRACE_TOPIC that name msgID.
func traceKinds(t *testing.T, reader *Producer, msgID string) map[string]bool {
	kinds := map[string]bool{}
	found, err := reader.QueryMessage("RMQ_SYS_TRACE_TOPIC", msgID, 32, time.Unix(0, 0), time.Now().Add(time.Hour))
	if err != nil {
		return kinds
	}
	for _, m := range found {
		for _, record := range strings.Split(string(m.Body()), "\x02") {
			fields := strings.Split(record, "\x01")
			for _, f := range fields {
				if f == msgID {
					kinds[fields[0]] = true
				}
			}
		}
		m.Close()
	}
	return kinds
}

// After N sends and N consumed messages of a new topic, MetricsValue and MetricsText count
// exactly N; with client.trace-enabled the trace topic holds the Pub, SubBefore and SubAfter
// records of a message, found by its id.
func TestMetricsAndTracesOfARun(t *testing.T) {
	const n = 10
	topic := uniqueTopic(t)
	traced := map[string]string{
		"client.trace-enabled": "true",
		"producer.group":       fmt.Sprintf("GoRmqMetricsP_%s_%d", runID, topicSeq.Add(1)),
	}
	p := startedProducer(t, traced)
	var ids []string
	for i := 0; i < n; i++ {
		m := newMsg(t, topic, []byte("metrics"))
		res, err := p.SendSync(m)
		if err != nil {
			t.Fatalf("send: %v", err)
		}
		ids = append(ids, res.MsgID)
	}
	var mu sync.Mutex
	seen := 0
	c := newConsumer(t, map[string]string{"client.trace-enabled": "true"})
	if err := c.Subscribe(topic, "*"); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(func(msgs []*ReceivedMessage) ConsumeResult {
		mu.Lock()
		seen += len(msgs)
		mu.Unlock()
		return ConsumeSuccess
	}); err != nil {
		t.Fatal(err)
	}
	value := func(name string) uint64 {
		v, err := MetricsValue(name, topic, "")
		if err != nil {
			t.Fatalf("MetricsValue(%s): %v", name, err)
		}
		return v
	}
	eventually(t, "every message consumed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen >= n && value("rmq_messages_consumed_total") >= n
	})
	for name, want := range map[string]uint64{
		"rmq_messages_sent_total":        n,
		"rmq_bytes_sent_total":           7 * n,
		"rmq_send_latency_seconds_count": n,
		"rmq_send_errors_total":          0,
		"rmq_sends_in_flight":            0,
		"rmq_messages_consumed_total":    n,
		"rmq_bytes_consumed_total":       7 * n,
	} {
		if got := value(name); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	if v, err := MetricsValue("rmq_messages_sent_total", topic, "no-such-broker"); err != nil || v != 0 {
		t.Errorf("another broker: %d, %v", v, err)
	}
	_, err := MetricsValue("no_such_metric", topic, "")
	wantStatus(t, err, StatusInvalidArgument)
	text, err := MetricsText()
	if err != nil {
		t.Fatal(err)
	}
	var sent uint64
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, fmt.Sprintf("rmq_messages_sent_total{topic=%q,", topic)) {
			v, _ := strconv.ParseUint(line[strings.LastIndexByte(line, ' ')+1:], 10, 64)
			sent += v
		}
	}
	if sent != n || !strings.Contains(text, "# TYPE rmq_send_latency_seconds histogram") {
		t.Errorf("metrics text counts %d sent:\n%s", sent, text)
	}

	reader := startedProducer(t, map[string]string{
		"producer.group": fmt.Sprintf("GoRmqMetricsR_%s_%d", runID, topicSeq.Add(1)),
	})
	eventually(t, "the trace records of "+ids[0], func() bool {
		k := traceKinds(t, reader, ids[0])
		return k["Pub"] && k["SubBefore"] && k["SubAfter"]
	})
	if d := TraceRecordsDropped(); d != 0 {
		t.Errorf("%d trace records dropped", d)
	}
}
