package rmq

import (
	"bytes"
	"testing"
)

// The broker names of the two clusters make test starts: the first keeps the cluster script's
// default, the second is started with RMQ_BROKER_NAME=broker-b.
const (
	firstClusterBroker  = "broker-a"
	secondClusterBroker = "broker-b"
)

// Two producers in one process on two different clusters, with the same group and the same
// instance-name on purpose (the same client id, told apart only by their name servers): each
// send lands on its own cluster's broker. The Rust suite tests this in depth; this is the same
// scenario through the C ABI.
func TestSameNamedProducersOnTwoClustersSendToTheirOwnBroker(t *testing.T) {
	same := map[string]string{
		"producer.group": "GoTwoClustersGroup_" + runID,
		"instance-name":  "GoTwoClustersInstance_" + runID,
	}
	withNamesrv := func(ns string) map[string]string {
		cfg := map[string]string{"name-server": ns}
		for k, v := range same {
			cfg[k] = v
		}
		return cfg
	}
	start := func(cfg map[string]string) *Producer {
		p, err := NewProducer(cfg)
		if err != nil {
			t.Fatalf("NewProducer: %v", err)
		}
		t.Cleanup(func() { p.Close() })
		if err := p.Start(); err != nil {
			t.Fatalf("Start: %v", err)
		}
		return p
	}
	p1 := start(withNamesrv(namesrv(t)))
	p2 := start(withNamesrv(secondNamesrv(t)))
	topic := uniqueTopic(t) // the same topic name on both clusters

	send := func(who string, p *Producer, broker string) *SendResult {
		t.Helper()
		body := []byte(who + " through go")
		res, err := p.SendSync(newMsg(t, topic, body))
		if err != nil {
			t.Fatalf("%s: SendSync: %v", who, err)
		}
		if res.BrokerName != broker {
			t.Fatalf("%s sent to %s, not its own cluster's %s", who, res.BrokerName, broker)
		}
		stored, err := p.ViewMessage(res.OffsetMsgID)
		if err != nil {
			t.Fatalf("%s: ViewMessage(%s): %v", who, res.OffsetMsgID, err)
		}
		defer stored.Close()
		if !bytes.Equal(stored.Body(), body) {
			t.Fatalf("%s: read back %q, sent %q", who, stored.Body(), body)
		}
		return res
	}
	first := send("P1", p1, firstClusterBroker)
	second := send("P2", p2, secondClusterBroker)
	// the first 16 hex digits of an offset message id are the store address (IPv4 and port)
	if first.OffsetMsgID[:16] == second.OffsetMsgID[:16] {
		t.Fatalf("both messages stored at the same address: %s, %s", first.OffsetMsgID, second.OffsetMsgID)
	}
	if err := p1.Close(); err != nil {
		t.Fatal(err)
	}
	send("P2 after P1 closed", p2, secondClusterBroker)
}
