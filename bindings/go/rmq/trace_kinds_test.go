package rmq

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// traceRecords is the records of type kind in RMQ_SYS_TRACE_TOPIC, found by trace key, that
// name key.
func traceRecords(reader *Producer, key, kind string) [][]string {
	var out [][]string
	found, err := reader.QueryMessage("RMQ_SYS_TRACE_TOPIC", key, 32, time.Unix(0, 0), time.Now().Add(time.Hour))
	if err != nil {
		return nil
	}
	for _, m := range found {
		for _, record := range strings.Split(string(m.Body()), "\x02") {
			fields := strings.Split(record, "\x01")
			for _, f := range fields {
				if f == key && fields[0] == kind {
					out = append(out, fields)
					break
				}
			}
		}
		m.Close()
	}
	return out
}

// waitRecord waits for a record of type kind naming key.
func waitRecord(t *testing.T, reader *Producer, key, kind string) []string {
	t.Helper()
	var found [][]string
	if !waitUntil(func() bool { found = traceRecords(reader, key, kind); return len(found) > 0 }) {
		t.Fatalf("no %s record of %s in the trace topic", kind, key)
	}
	return found[0]
}

// A batch is one Pub record, as the Java client writes it: its message id is the batch's ids
// joined by commas (its trace key), its tags and keys "null". A oneway send leaves no record.
func TestTraceOfABatchAndOfAOnewaySend(t *testing.T) {
	topic := uniqueTopic(t)
	group := fmt.Sprintf("GoRmqTraceBatchP_%s_%d", runID, topicSeq.Add(1))
	p := startedProducer(t, map[string]string{"client.trace-enabled": "true", "producer.group": group})
	warmUp(t, p, topic) // the route, so the oneway send is not the first
	onewayKey := fmt.Sprintf("oneway_%s_%d", runID, topicSeq.Add(1))
	if err := p.SendOneway(keyedMsg(t, topic, onewayKey)); err != nil {
		t.Fatal(err)
	}
	var batch []*Message
	for i := 0; i < 3; i++ {
		m := keyedMsg(t, topic, fmt.Sprintf("b%d", i))
		if err := m.SetTags("TagB"); err != nil {
			t.Fatal(err)
		}
		batch = append(batch, m)
	}
	r, err := p.SendBatch(batch)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(strings.Split(r.MsgID, ",")); n != 3 {
		t.Fatalf("batch ids %q", r.MsgID)
	}
	p.Close() // sends what is queued
	reader := startedProducer(t, nil)
	f := waitRecord(t, reader, r.MsgID, "Pub")
	// Pub: type, time, region, group, topic, msgId, tags, keys, storeHost, bodyLength, costTime,
	// msgType, offsetMsgId, success.
	if len(f) != 14 || f[3] != group || f[4] != topic || f[5] != r.MsgID || f[6] != "null" || f[7] != "null" ||
		f[11] != "0" || f[12] != r.OffsetMsgID || f[13] != "true" {
		t.Fatalf("batch Pub record %q", f)
	}
	if n, _ := strconv.Atoi(f[9]); n <= 3*len("body of b0") {
		t.Fatalf("body length %q is not the encoded batch's", f[9])
	}
	// Every record queued before the batch's is in the topic: none is the oneway send's.
	if got := traceRecords(reader, onewayKey, "Pub"); len(got) != 0 {
		t.Fatalf("a oneway send has no trace record; found %q", got)
	}
}

// Ending a transaction leaves an EndTransaction record: message type 2, the transaction id,
// the state's Java name, not from a check.
func TestTraceOfTransactionEnds(t *testing.T) {
	topic := uniqueTopic(t)
	warmUp(t, startedProducer(t, nil), topic)
	group := "GoTxnTrace_" + topic
	p, err := NewTransactionProducer(map[string]string{
		"name-server":          namesrv(t),
		"producer.group":       group,
		"client.trace-enabled": "true",
	}, func(*ReceivedMessage) TransactionState { return TransactionRollback })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	ids := map[TransactionState]string{}
	for _, state := range []TransactionState{TransactionCommit, TransactionRollback} {
		s := state
		r, err := p.SendInTransaction(keyedMsg(t, topic, s.String()), func(*Message, *SendResult, any) TransactionState { return s }, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids[s] = r.MsgID
	}
	reader := startedProducer(t, map[string]string{"producer.group": group + "_R"})
	for state, id := range ids {
		f := waitRecord(t, reader, id, "EndTransaction")
		// EndTransaction: type, time, region, group, topic, msgId, tags, keys, storeHost,
		// msgType, transactionId, transactionState, fromTransactionCheck.
		if len(f) != 13 || f[2] != "DefaultRegion" || f[3] != group || f[4] != topic || f[5] != id ||
			f[6] != "null" || f[7] != state.String() || f[9] != "2" || f[10] != id ||
			f[11] != state.String() || f[12] != "false" {
			t.Fatalf("EndTransaction record %q", f)
		}
	}
}
