package rmq

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"testing"
)

// Producer routing through the C ABI: namespaces, the name server lookup URL, IPv6 and latency
// fault tolerance, against real brokers. The Rust suite covers each in depth, including the
// paused-broker scenario of fault tolerance.

const v6ClusterHowTo = "RMQ_NAMESRV_V6 is not set. The IPv6 and latency-fault tests need a third cluster, two brokers\n" +
	"on ::1: at the repository root run\n" +
	"  RMQ_HOST=::1 RMQ_BROKERS=2 RMQ_NAMESRV_PORT=41876 RMQ_BROKER_PORT=42911 RMQ_DATA=/tmp/rmq-v6 scripts/rocketmq-local.sh up\n" +
	"then set RMQ_NAMESRV_V6=[::1]:41876 besides RMQ_NAMESRV (`make test` does all of this itself)."

func v6Namesrv(t *testing.T) string {
	t.Helper()
	ns := os.Getenv("RMQ_NAMESRV_V6")
	if ns == "" {
		t.Fatal(v6ClusterHowTo)
	}
	return ns
}

func TestNamespaceWrapsTheTopicOnTheBrokerOnly(t *testing.T) {
	topic := uniqueTopic(t)
	ns := fmt.Sprintf("GoNs-%s", runID)
	inside := startedProducer(t, map[string]string{"client.namespace": ns, "producer.group": "GoNsGroup_" + runID})
	outside := startedProducer(t, map[string]string{"producer.group": "GoPlainGroup_" + runID})
	res, err := inside.SendSync(newMsg(t, topic, []byte("in a namespace")))
	if err != nil {
		t.Fatalf("SendSync: %v", err)
	}
	if res.Topic != topic {
		t.Fatalf("result topic %q, want %q", res.Topic, topic)
	}
	stored, err := outside.ViewMessage(res.OffsetMsgID)
	if err != nil {
		t.Fatalf("ViewMessage: %v", err)
	}
	defer stored.Close()
	if got, want := stored.Topic(), ns+"%"+topic; got != want {
		t.Fatalf("the broker stored topic %q, want %q", got, want)
	}
	if id, _ := stored.Property("INSTANCE_ID"); id != ns {
		t.Fatalf("INSTANCE_ID %q, want %q", id, ns)
	}
	seen, err := inside.ViewMessage(res.OffsetMsgID)
	if err != nil {
		t.Fatalf("ViewMessage: %v", err)
	}
	defer seen.Close()
	if seen.Topic() != topic {
		t.Fatalf("in the namespace the topic reads %q, want %q", seen.Topic(), topic)
	}
	_, err = NewProducer(producerConfig(t, map[string]string{"client.namespace": "a%b"}))
	wantStatus(t, err, StatusInvalidConfigValue)
}

func TestNameServersFromALookupURL(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ns := namesrv(t)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/rocketmq/nsaddr" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, ns)
	})}
	go srv.Serve(l)
	defer srv.Close()
	cfg := producerConfig(t, map[string]string{"client.name-server-url": "http://" + l.Addr().String() + "/rocketmq/nsaddr"})
	delete(cfg, "name-server")
	p, err := NewProducer(cfg)
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	defer p.Close()
	if err := p.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if _, err := p.SendSync(newMsg(t, uniqueTopic(t), []byte("found through the lookup"))); err != nil {
		t.Fatalf("SendSync: %v", err)
	}
}

func TestIPv6ClusterWithLatencyFaultTolerance(t *testing.T) {
	topic := uniqueTopic(t)
	p := startedProducer(t, map[string]string{
		"name-server":                        v6Namesrv(t),
		"producer.send-latency-fault-enable": "true",
	})
	for i := 0; i < 8; i++ {
		res, err := p.SendSync(newMsg(t, topic, []byte(fmt.Sprintf("over ipv6 %d", i))))
		if err != nil {
			t.Fatalf("SendSync: %v", err)
		}
		if len(res.OffsetMsgID) != 56 {
			t.Fatalf("offset msg id %q: want 56 hex characters for an IPv6 store host", res.OffsetMsgID)
		}
		if res.BrokerName != "broker-a" && res.BrokerName != "broker-b" {
			t.Fatalf("broker %q", res.BrokerName)
		}
		stored, err := p.ViewMessage(res.OffsetMsgID)
		if err != nil {
			t.Fatalf("ViewMessage: %v", err)
		}
		stored.Close()
	}
	_, err := NewProducer(producerConfig(t, map[string]string{"producer.send-latency-fault-enable": "yes"}))
	wantStatus(t, err, StatusInvalidConfigValue)
}
