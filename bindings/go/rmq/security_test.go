package rmq

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// ACL and TLS against real clusters that enforce them (scripts/run-tests.sh starts them):
// RMQ_NAMESRV_ACL1 (ACL 1.0 accounts), RMQ_NAMESRV_ACL2 (ACL 2.0 users) and RMQ_NAMESRV_TLS with
// its certificates in RMQ_TLS_DIR (client certificates required).

const securityHowTo = "These tests need the ACL and TLS clusters that `make test` starts; by hand, at the repository root:\n" +
	"  RMQ_VERSION=4.9.7 RMQ_ACL=1 RMQ_NAMESRV_PORT=41876 RMQ_BROKER_PORT=41911 RMQ_DATA=/tmp/rmq-acl1 scripts/rocketmq-local.sh up\n" +
	"  (the same with RMQ_ACL=2 on 42876/42911, and RMQ_TLS_MODE=enforcing on 43876/43911 with RMQ_DATA=/tmp/rmq-tls),\n" +
	"then set RMQ_NAMESRV_ACL1, RMQ_NAMESRV_ACL2, RMQ_NAMESRV_TLS and RMQ_TLS_DIR=/tmp/rmq-tls/tls."

func mustEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set. %s", name, securityHowTo)
	}
	return v
}

var appCredentials = map[string]string{"client.access-key": "rmq-app", "client.secret-key": "rmq-app-secret"}

func securityConfig(t *testing.T, ns string, extra map[string]string) map[string]string {
	cfg := map[string]string{
		"name-server":                   ns,
		"instance-name":                 uniqueTopic(t),
		"client.api-timeout":            "10000",
		"producer.send-message-timeout": "10000",
	}
	for k, v := range extra {
		cfg[k] = v
	}
	return cfg
}

func tlsConfig(t *testing.T) (string, string, map[string]string) {
	ns, dir := mustEnv(t, "RMQ_NAMESRV_TLS"), mustEnv(t, "RMQ_TLS_DIR")
	return ns, dir, map[string]string{
		"client.tls.enable":    "true",
		"client.tls.ca-file":   dir + "/ca.pem",
		"client.tls.cert-file": dir + "/client.pem",
		"client.tls.key-file":  dir + "/client.key",
	}
}

func sendOne(t *testing.T, ns string, extra map[string]string, topic, body string) error {
	t.Helper()
	cfg := securityConfig(t, ns, extra)
	cfg["producer.group"] = "GoSecProducer_" + runID
	p, err := NewProducer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	msg, err := NewMessage(topic, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	defer msg.Close()
	_, err = p.SendSync(msg)
	return err
}

func sendsAndConsumes(t *testing.T, ns string, extra map[string]string) {
	topic := "RmqAcl" + uniqueTopic(t)
	want := map[string]bool{}
	for i := 0; i < 5; i++ {
		body := fmt.Sprintf("sec-%d", i)
		if err := sendOne(t, ns, extra, topic, body); err != nil {
			t.Fatalf("send: %v", err)
		}
		want[body] = true
	}
	cfg := securityConfig(t, ns, extra)
	cfg["consumer.group"] = "GoSecConsumer_" + uniqueTopic(t)
	cfg["consumer.consume-from-where"] = "first"
	c, err := NewPushConsumer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Subscribe(topic, "*"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	deliveries, err := c.Messages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for d := range deliveries {
		for _, m := range d.Messages {
			got[string(m.Body)] = true
		}
		d.Ack()
		if len(got) == len(want) {
			break
		}
	}
	for body := range want {
		if !got[body] {
			t.Fatalf("consumed %v, sent %v", got, want)
		}
	}
}

func expectErrorNaming(t *testing.T, err error, needles ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("the send succeeded")
	}
	for _, n := range needles {
		if !strings.Contains(err.Error(), n) {
			t.Fatalf("%q lacks %q", err.Error(), n)
		}
	}
}

func TestACLSignedClientSendsAndConsumes(t *testing.T) {
	for _, v := range []string{"RMQ_NAMESRV_ACL1", "RMQ_NAMESRV_ACL2"} {
		t.Run(v, func(t *testing.T) { sendsAndConsumes(t, mustEnv(t, v), appCredentials) })
	}
}

func TestACLWrongSecretAndMissingPermissionNameTheCause(t *testing.T) {
	for _, v := range []string{"RMQ_NAMESRV_ACL1", "RMQ_NAMESRV_ACL2"} {
		t.Run(v, func(t *testing.T) {
			ns := mustEnv(t, v)
			wrong := map[string]string{"client.access-key": "rmq-app", "client.secret-key": "nope"}
			err := sendOne(t, ns, wrong, "RmqAcl"+uniqueTopic(t), "x")
			expectErrorNaming(t, err, "signature", "client.secret-key")
			// 5.x answers NO_PERMISSION (16); 4.x's ACL 1.0 checker answers SYSTEM_ERROR (1)
			// with its AclException as the remark.
			var e *Error
			if !errors.As(err, &e) || !(e.BrokerCode == 16 || v == "RMQ_NAMESRV_ACL1" && e.BrokerCode == 1) {
				t.Fatalf("want a broker error with code 16 (or 1 from a 4.x ACL 1.0 broker), got %#v", err)
			}
			err = sendOne(t, ns, appCredentials, "RmqNoPermTopic", "x")
			expectErrorNaming(t, err, "RmqNoPermTopic", "lacks this right")
		})
	}
}

func TestTLSVerifiedClientSendsAndConsumes(t *testing.T) {
	ns, _, cfg := tlsConfig(t)
	sendsAndConsumes(t, ns, cfg)
}

func TestTLSBadCertificatesAreRefused(t *testing.T) {
	ns, dir, cfg := tlsConfig(t)
	otherCA := map[string]string{}
	for k, v := range cfg {
		otherCA[k] = v
	}
	otherCA["client.tls.ca-file"] = dir + "/other-ca.pem"
	expectErrorNaming(t, sendOne(t, ns, otherCA, uniqueTopic(t), "x"), "TLS handshake failed", "client.tls.ca-file")
	noCert := map[string]string{"client.tls.enable": "true", "client.tls.ca-file": dir + "/ca.pem"}
	expectErrorNaming(t, sendOne(t, ns, noCert, uniqueTopic(t), "x"), "client.tls.cert-file")
	// The broker's certificate is for 127.0.0.1 and localhost, not the name checked.
	wrongHost := map[string]string{"client.tls.server-name": "mq.example.com"}
	for k, v := range cfg {
		wrongHost[k] = v
	}
	expectErrorNaming(t, sendOne(t, ns, wrongHost, uniqueTopic(t), "x"), "TLS handshake failed", "does not carry the name checked")
}
