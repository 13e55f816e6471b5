package rmq

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Transactions against the real broker: committed ones are delivered once, rolled-back ones
// never; unknown ones are settled by the checker on its own threads; a checker or local
// transaction that panics counts as unknown and the broker asks again; a producer process that
// dies inside its local transaction is answered for by a new producer of the group. Waits are
// bounded by the broker's answers (any check interval works), with a generous failure bound.

// seenByKey records delivered bodies by key.
type seenByKey struct {
	mu sync.Mutex
	m  map[string][]string
}

func (s *seenByKey) get(key string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.m[key]...)
}

func consumeByKey(t *testing.T, topic string) (*PushConsumer, *seenByKey) {
	t.Helper()
	s := &seenByKey{m: map[string][]string{}}
	c := newConsumer(t, nil)
	if err := c.Subscribe(topic, "*"); err != nil {
		t.Fatal(err)
	}
	err := c.Start(func(msgs []*ReceivedMessage) ConsumeResult {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, m := range msgs {
			k := strings.Join(m.Keys, " ")
			s.m[k] = append(s.m[k], string(m.Body))
		}
		return ConsumeSuccess
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

func keyedMsg(t *testing.T, topic, key string) *Message {
	m := newMsg(t, topic, []byte("body of "+key))
	if err := m.SetKeys(key); err != nil {
		t.Fatal(err)
	}
	return m
}

func waitUntil(cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

func newTxnProducer(t *testing.T, group, threads string, checker TransactionChecker) *TransactionProducer {
	t.Helper()
	p, err := NewTransactionProducer(map[string]string{
		"name-server":                        namesrv(t),
		"producer.group":                     group,
		"producer.transaction-check-threads": threads,
	}, checker)
	if err != nil {
		t.Fatalf("NewTransactionProducer: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTransactionCommitRollbackAndChecker(t *testing.T) {
	topic := uniqueTopic(t)
	warmUp(t, startedProducer(t, nil), topic)
	var mu sync.Mutex
	calls := map[string]int{}
	threads := map[string]bool{}
	p := newTxnProducer(t, "GoTxn_"+topic, "2", func(m *ReceivedMessage) TransactionState {
		key := strings.Join(m.Keys, " ")
		mu.Lock()
		calls[key]++
		n := calls[key]
		threads[threadName()] = true
		mu.Unlock()
		switch {
		case key == "unknown-then-commit":
			return TransactionCommit
		case key == "checker-panics-once" && n == 1:
			panic("checker failure")
		case key == "checker-panics-once":
			return TransactionCommit
		}
		return TransactionRollback
	})
	_, seen := consumeByKey(t, topic)
	execute := func(msg *Message, res *SendResult, arg any) TransactionState {
		if arg == "panic" {
			panic("local transaction failure")
		}
		if keys := msg.Keys(); len(keys) != 1 || res.TransactionID != res.MsgID || res.TransactionID == "" {
			return TransactionRollback // makes the state check below fail
		}
		return arg.(TransactionState)
	}
	for _, c := range []struct {
		key  string
		arg  any
		want TransactionState
	}{
		{"committed", TransactionCommit, TransactionCommit},
		{"rolled-back", TransactionRollback, TransactionRollback},
		{"unknown-then-commit", TransactionUnknown, TransactionUnknown},
		{"unknown-then-rollback", TransactionUnknown, TransactionUnknown},
		{"checker-panics-once", "panic", TransactionUnknown},
	} {
		r, err := p.SendInTransaction(keyedMsg(t, topic, c.key), execute, c.arg)
		if err != nil {
			t.Fatalf("%s: %v", c.key, err)
		}
		if r.State != c.want || r.TransactionID == "" || r.TransactionID != r.MsgID {
			t.Fatalf("%s: state %v, transaction id %q, msg id %q", c.key, r.State, r.TransactionID, r.MsgID)
		}
	}
	for _, key := range []string{"committed", "unknown-then-commit", "checker-panics-once"} {
		if !waitUntil(func() bool { return len(seen.get(key)) > 0 }) {
			t.Fatalf("%s never delivered", key)
		}
	}
	count := func(key string) int { mu.Lock(); defer mu.Unlock(); return calls[key] }
	if !waitUntil(func() bool { return count("unknown-then-rollback") >= 1 }) {
		t.Fatal("the checker was never asked about unknown-then-rollback")
	}
	if count("checker-panics-once") < 2 {
		t.Fatal("a checker that panicked is asked again")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for name := range threads {
		if !strings.HasPrefix(name, "rmq-txn-check") {
			t.Fatalf("checker ran on thread %q", name)
		}
	}
	for _, key := range []string{"committed", "unknown-then-commit", "checker-panics-once"} {
		if got := seen.get(key); len(got) != 1 || got[0] != "body of "+key {
			t.Fatalf("%s delivered %v, want once", key, got)
		}
	}
	for _, key := range []string{"rolled-back", "unknown-then-rollback"} {
		if got := seen.get(key); len(got) != 0 {
			t.Fatalf("%s was delivered: %v", key, got)
		}
	}
}

const crashEnv = "RMQ_GO_TXN_CRASH"

// TestTransactionCrashedProducerIsAnsweredByANewOne runs itself again as a child process that
// dies inside its local transaction; a new producer of the group then commits the transaction
// through the broker's check.
func TestTransactionCrashedProducerIsAnsweredByANewOne(t *testing.T) {
	if v := os.Getenv(crashEnv); v != "" {
		topic, group, _ := strings.Cut(v, " ")
		p := newTxnProducer(t, group, "1", func(*ReceivedMessage) TransactionState { return TransactionUnknown })
		p.SendInTransaction(keyedMsg(t, topic, "orphan"), func(*Message, *SendResult, any) TransactionState {
			os.Exit(17)
			return TransactionUnknown
		}, nil)
		t.Fatal("the local transaction did not run")
	}
	topic := uniqueTopic(t)
	warmUp(t, startedProducer(t, nil), topic)
	group := "GoTxnCrash_" + topic
	cmd := exec.Command(os.Args[0], "-test.run=^TestTransactionCrashedProducerIsAnsweredByANewOne$")
	cmd.Env = append(os.Environ(), crashEnv+"="+topic+" "+group)
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 17 {
		t.Fatalf("child: %v", err)
	}
	_, seen := consumeByKey(t, topic)
	var mu sync.Mutex
	var checked []string
	newTxnProducer(t, group, "1", func(m *ReceivedMessage) TransactionState {
		mu.Lock()
		checked = append(checked, string(m.Body))
		mu.Unlock()
		return TransactionCommit
	})
	if !waitUntil(func() bool { return len(seen.get("orphan")) > 0 }) {
		t.Fatal("the orphan transaction was never committed")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(checked) == 0 || checked[0] != "body of orphan" {
		t.Fatalf("checked %v", checked)
	}
}

func TestTransactionBadInput(t *testing.T) {
	cfg := map[string]string{"name-server": namesrv(t), "producer.group": "GoTxnBad_" + runID}
	if _, err := NewTransactionProducer(cfg, nil); err == nil {
		t.Fatal("nil checker accepted")
	}
	bad := map[string]string{"producer.transaction-check-threads": "0"}
	for k, v := range cfg {
		bad[k] = v
	}
	if _, err := NewTransactionProducer(bad, func(*ReceivedMessage) TransactionState { return TransactionUnknown }); !hasStatus(err, StatusInvalidConfigValue) {
		t.Fatalf("0 threads: %v", err)
	}
	p, err := NewTransactionProducer(cfg, func(*ReceivedMessage) TransactionState { return TransactionUnknown })
	if err != nil {
		t.Fatal(err)
	}
	m := keyedMsg(t, "GoTxnBadTopic", "k")
	ran := false
	execute := func(*Message, *SendResult, any) TransactionState { ran = true; return TransactionCommit }
	if _, err := p.SendInTransaction(m, execute, nil); !hasStatus(err, StatusInvalidState) {
		t.Fatalf("not started: %v", err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.SendInTransaction(m, nil, nil); !hasStatus(err, StatusInvalidArgument) {
		t.Fatalf("nil execute: %v", err)
	}
	if err := m.SetDelayLevel(2); err != nil {
		t.Fatal(err)
	}
	if _, err := p.SendInTransaction(m, execute, nil); !hasStatus(err, StatusInvalidArgument) {
		t.Fatalf("delayed: %v", err)
	}
	if ran {
		t.Fatal("execute ran for a refused send")
	}
	if TransactionCommit.String() != "COMMIT_MESSAGE" || TransactionState(42).String() != "UNKNOW" {
		t.Fatal("state names")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.SendInTransaction(m, execute, nil); !hasStatus(err, StatusInvalidHandle) {
		t.Fatalf("closed: %v", err)
	}
}

func hasStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}
