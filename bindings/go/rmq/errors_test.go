package rmq

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rmq-client/rmq/bindings/go/internal/statusgen"
)

// status_gen.go must be exactly what the generator makes from the linked library's table.
func TestGeneratedStatusesMatchLibrary(t *testing.T) {
	descs := StatusDescs()
	if len(descs) == 0 {
		t.Fatal("empty status table")
	}
	rows := make([]statusgen.Row, len(descs))
	for i, d := range descs {
		rows[i] = statusgen.Row{Status: d.Status, Name: d.Name, Description: d.Description}
	}
	want, err := statusgen.Source(rows)
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile("status_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, want) {
		t.Errorf("status_gen.go is stale: run `go generate ./rmq` in bindings/go")
	}
	if len(generatedStatuses) != len(descs) {
		t.Fatalf("%d generated constants, library table has %d rows", len(generatedStatuses), len(descs))
	}
	for i, d := range descs {
		g := generatedStatuses[i]
		if g.Status != d.Status || g.Name != d.Name {
			t.Errorf("row %d: generated %d %s, library %d %s", i, g.Status, g.Name, d.Status, d.Name)
		}
		if StatusName(d.Status) != d.Name || StatusDescription(d.Status) != d.Description {
			t.Errorf("rmq_status_name/str(%d) disagree with the table row %s", d.Status, d.Name)
		}
	}
	// A few constants by hand, as the header defines them.
	for _, c := range []struct {
		got  int
		want string
	}{
		{StatusOK, "RMQ_OK"}, {StatusInvalidArgument, "RMQ_ERR_INVALID_ARGUMENT"},
		{StatusInvalidHandle, "RMQ_ERR_INVALID_HANDLE"}, {StatusInvalidState, "RMQ_ERR_INVALID_STATE"},
		{StatusTimeout, "RMQ_ERR_TIMEOUT"}, {StatusConnect, "RMQ_ERR_CONNECT"},
		{StatusBrokerSystemBusy, "RMQ_ERR_BROKER_SYSTEM_BUSY"}, {StatusBrokerOther, "RMQ_ERR_BROKER_OTHER"},
	} {
		if StatusName(c.got) != c.want {
			t.Errorf("constant %d is %s in the library, want %s", c.got, StatusName(c.got), c.want)
		}
	}
	if StatusName(4242) != "RMQ_ERR_UNKNOWN" {
		t.Errorf("unlisted status named %q", StatusName(4242))
	}
}

func TestVersion(t *testing.T) {
	if Version() == "" {
		t.Fatalf("version %q %d", Version(), VersionNumber())
	}
	if VersionNumber() != HeaderVersionNumber {
		t.Fatalf("library version %d, header %d", VersionNumber(), HeaderVersionNumber)
	}
}

func TestSendStatusNames(t *testing.T) {
	for s, want := range map[SendStatus]string{
		SendOK: "SEND_OK", SendFlushDiskTimeout: "FLUSH_DISK_TIMEOUT",
		SendFlushSlaveTimeout: "FLUSH_SLAVE_TIMEOUT", SendSlaveNotAvailable: "SLAVE_NOT_AVAILABLE",
		SendStatus(42): "UNKNOWN",
	} {
		if got := s.String(); got != want {
			t.Errorf("SendStatus(%d).String() = %q, want %q", int(s), got, want)
		}
	}
}

func TestConfigKeys(t *testing.T) {
	keys := ConfigKeys()
	byName := map[string]ConfigKey{}
	for _, k := range keys {
		if k.Name == "" || k.Description == "" {
			t.Errorf("incomplete key %+v", k)
		}
		byName[k.Name] = k
	}
	for _, name := range []string{"name-server", "producer.group", "producer.send-message-timeout", "producer.max-message-size"} {
		if _, ok := byName[name]; !ok {
			t.Errorf("ConfigKeys() lacks %q", name)
		}
	}
	if byName["producer.max-message-size"].Default != "4194304" {
		t.Errorf("producer.max-message-size default %q", byName["producer.max-message-size"].Default)
	}
}

func TestErrorHelpers(t *testing.T) {
	_, err := NewProducer(map[string]string{"name-server": "127.0.0.1:1", "producer.group": "g", "no.such.key": "1"})
	e := wantStatus(t, err, StatusUnknownConfigKey)
	wrapped := fmt.Errorf("setting up: %w", err)
	var as *Error
	if !errors.As(wrapped, &as) || as != e {
		t.Fatal("errors.As through a wrap failed")
	}
	if !errors.Is(wrapped, ErrUnknownConfigKey) || errors.Is(wrapped, ErrInvalidConfigValue) {
		t.Fatal("errors.Is with sentinels is wrong")
	}
	if e.Retriable() || IsRetriable(wrapped) || e.IsBrokerError() || e.ResponseCode() != 0 {
		t.Fatalf("config error classified as retriable or broker: %+v", e)
	}
	if !strings.Contains(e.Error(), "RMQ_ERR_UNKNOWN_CONFIG_KEY") || !strings.Contains(e.Error(), "no.such.key") {
		t.Fatalf("unhelpful message %q", e.Error())
	}

	busy := &Error{Status: StatusBrokerSystemBusy, Name: StatusName(StatusBrokerSystemBusy)}
	if !busy.IsBrokerError() || busy.ResponseCode() != 2 || !busy.Retriable() {
		t.Fatalf("SYSTEM_BUSY: broker %v code %d retriable %v", busy.IsBrokerError(), busy.ResponseCode(), busy.Retriable())
	}
	illegal := &Error{Status: StatusBrokerMessageIllegal}
	if !illegal.IsBrokerError() || illegal.ResponseCode() != 13 || illegal.Retriable() {
		t.Fatalf("MESSAGE_ILLEGAL misclassified")
	}
	other := &Error{Status: StatusBrokerOther}
	if !other.IsBrokerError() || other.ResponseCode() != 0 {
		t.Fatalf("BROKER_OTHER: broker %v code %d", other.IsBrokerError(), other.ResponseCode())
	}
	timeout := fmt.Errorf("x: %w", &Error{Status: StatusTimeout})
	if !IsRetriable(timeout) || !errors.Is(timeout, ErrTimeout) {
		t.Fatal("timeout not retriable")
	}
	var te *Error
	errors.As(timeout, &te)
	if te.IsBrokerError() || te.ResponseCode() != 0 {
		t.Fatal("timeout classified as broker error")
	}
}

func TestBadConfig(t *testing.T) {
	ns := namesrv(t)
	base := func(extra map[string]string) map[string]string {
		cfg := map[string]string{"name-server": ns, "producer.group": "GoRmqBadConfig_" + runID}
		for k, v := range extra {
			cfg[k] = v
		}
		return cfg
	}
	_, err := NewProducer(base(map[string]string{"producer.no-such-key": "1"}))
	wantStatus(t, err, StatusUnknownConfigKey)

	for key, value := range map[string]string{
		"producer.send-message-timeout": "soon",
		"producer.max-message-size":     "-1",
		"producer.retry-next-server":    "maybe",
	} {
		_, err := NewProducer(base(map[string]string{key: value}))
		e := wantStatus(t, err, StatusInvalidConfigValue)
		if !strings.Contains(e.Message, key) {
			t.Errorf("message %q does not name the key %s", e.Message, key)
		}
	}
	_, err = NewProducer(base(map[string]string{"producer.group": "a\x00b"}))
	if e := wantStatus(t, err, StatusInvalidArgument); !strings.Contains(e.Message, "NUL") {
		t.Errorf("message %q", e.Message)
	}
	// Required keys.
	_, err = NewProducer(map[string]string{"name-server": ns})
	if err == nil {
		t.Error("a producer without producer.group was created")
	}
	_, err = NewProducer(nil)
	if err == nil {
		t.Error("a producer without configuration was created")
	}
}

func TestStartTwice(t *testing.T) {
	p := newProducer(t, nil)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, p.Start(), StatusInvalidState)
}

func TestSendBeforeStartAndAfterShutdown(t *testing.T) {
	p := newProducer(t, nil)
	topic := uniqueTopic(t)
	msg := newMsg(t, topic, []byte("x"))
	_, err := p.SendSync(msg)
	wantStatus(t, err, StatusInvalidState)

	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	warmUp(t, p, topic)
	if err := p.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := p.Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	base := liveAsyncHandles.Load()
	_, err = p.SendSync(msg)
	wantStatus(t, err, StatusInvalidState)
	called := false
	err = p.SendAsync(msg, func(*SendResult, error) { called = true })
	wantStatus(t, err, StatusInvalidState)
	wantStatus(t, p.SendOneway(msg), StatusInvalidState)
	wantStatus(t, p.Start(), StatusInvalidState)
	if liveAsyncHandles.Load() != base {
		t.Error("a refused SendAsync leaked its handle")
	}
	p.Close()
	if called {
		t.Error("callback of a refused SendAsync ran")
	}
}

func TestClosedProducer(t *testing.T) {
	p := startedProducer(t, nil)
	topic := uniqueTopic(t)
	warmUp(t, p, topic)
	msg := newMsg(t, topic, []byte("x"))
	raw := p.h
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	base := liveAsyncHandles.Load()
	called := false
	_, errSync := p.SendSync(msg)
	_, errView := p.ViewMessage("7F00000100009FCF0000000000000000")
	_, errQuery := p.QueryMessage(topic, "k", 1, time.Now().Add(-time.Hour), time.Now())
	for name, err := range map[string]error{
		"Start":        p.Start(),
		"Shutdown":     p.Shutdown(),
		"SendSync":     errSync,
		"SendAsync":    p.SendAsync(msg, func(*SendResult, error) { called = true }),
		"SendOneway":   p.SendOneway(msg),
		"ViewMessage":  errView,
		"QueryMessage": errQuery,
	} {
		t.Run(name, func(t *testing.T) {
			e := wantStatus(t, err, StatusInvalidHandle)
			if !strings.Contains(e.Message, "closed") {
				t.Errorf("message %q", e.Message)
			}
		})
	}
	// The library itself refuses the stale handle: an error, not a crash.
	e := wantStatus(t, producerStart(raw), StatusInvalidHandle)
	if !containsFold(e.Message, "producer") {
		t.Errorf("library message %q", e.Message)
	}
	_, err := producerSendSync(raw, msg.h)
	wantStatus(t, err, StatusInvalidHandle)
	wantStatus(t, producerSendAsync(raw, msg.h, func(*SendResult, error) { called = true }), StatusInvalidHandle)
	if liveAsyncHandles.Load() != base {
		t.Error("refused SendAsync calls leaked handles")
	}
	time.Sleep(100 * time.Millisecond)
	if called {
		t.Error("callback of a refused SendAsync ran")
	}
}

func TestClosedMessage(t *testing.T) {
	p := startedProducer(t, nil)
	topic := uniqueTopic(t)
	m, err := NewMessage(topic, []byte("body"))
	if err != nil {
		t.Fatal(err)
	}
	raw := m.h
	m.Close()
	m.Close()
	wantStatus(t, m.SetTags("t"), StatusInvalidHandle)
	wantStatus(t, m.SetProperty("a", "b"), StatusInvalidHandle)
	wantStatus(t, m.SetBody([]byte("b")), StatusInvalidHandle)
	if m.Topic() != "" || m.Body() != nil || len(m.Properties()) != 0 || m.MsgID() != "" {
		t.Error("getters of a closed message return data")
	}
	if _, ok := m.QueueID(); ok {
		t.Error("QueueID of a closed message")
	}
	_, err = p.SendSync(m)
	wantStatus(t, err, StatusInvalidHandle)
	wantStatus(t, p.SendAsync(m, func(*SendResult, error) { t.Error("callback ran") }), StatusInvalidHandle)
	// The library refuses the stale handle too.
	e := wantStatus(t, messageSetTopic(raw, "x"), StatusInvalidHandle)
	if !containsFold(e.Message, "message") {
		t.Errorf("library message %q", e.Message)
	}
	_, err = producerSendSync(p.h, raw)
	wantStatus(t, err, StatusInvalidHandle)
}

func TestBadTopic(t *testing.T) {
	p := startedProducer(t, nil)
	for _, topic := range []string{"", "bad topic!"} {
		t.Run(fmt.Sprintf("%q", trunc([]byte(topic))), func(t *testing.T) {
			msg := newMsg(t, topic, []byte("x"))
			start := time.Now()
			_, err := p.SendSync(msg)
			wantStatus(t, err, StatusInvalidArgument)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("refusing a bad topic took %v", d)
			}
			err = p.SendAsync(msg, func(*SendResult, error) { t.Error("callback ran") })
			wantStatus(t, err, StatusInvalidArgument)
			wantStatus(t, p.SendOneway(msg), StatusInvalidArgument)
		})
	}
	_, err := NewMessage("to\x00pic", []byte("x"))
	if e := wantStatus(t, err, StatusInvalidArgument); !strings.Contains(e.Message, "NUL") {
		t.Errorf("message %q", e.Message)
	}
	// over 127 bytes: refused when set, before any send
	_, err = NewMessage(strings.Repeat("t", 200), []byte("x"))
	if e := wantStatus(t, err, StatusInvalidArgument); !strings.Contains(e.Message, "127") {
		t.Errorf("message %q", e.Message)
	}
}

func TestMessageTooLarge(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		p := startedProducer(t, nil)
		topic := uniqueTopic(t)
		// noise: a body over the compression threshold is limited as sent, compressed
		body := make([]byte, 4*1024*1024+1)
		rand.New(rand.NewSource(1)).Read(body)
		msg := newMsg(t, topic, body)
		_, err := p.SendSync(msg)
		wantStatus(t, err, StatusMessageTooLarge)
		wantStatus(t, p.SendAsync(msg, func(*SendResult, error) { t.Error("callback ran") }), StatusMessageTooLarge)
		wantStatus(t, p.SendOneway(msg), StatusMessageTooLarge)
	})
	t.Run("configured", func(t *testing.T) {
		p := startedProducer(t, map[string]string{"producer.max-message-size": "1024"})
		topic := uniqueTopic(t)
		_, err := p.SendSync(newMsg(t, topic, bytes.Repeat([]byte{0}, 1025)))
		e := wantStatus(t, err, StatusMessageTooLarge)
		if !strings.Contains(e.Message, "1024") {
			t.Errorf("message %q does not name the limit", e.Message)
		}
		warmUp(t, p, topic)
		res, err := p.SendSync(newMsg(t, topic, bytes.Repeat([]byte{0}, 1024)))
		if err != nil {
			t.Fatalf("a body of exactly the limit: %v", err)
		}
		checkSendResult(t, res, topic)
	})
}

func TestMessageArguments(t *testing.T) {
	m := newMsg(t, "GoRmqArgs", []byte("x"))
	wantStatus(t, m.SetProperty("TAGS", "x"), StatusInvalidArgument)
	wantStatus(t, m.SetProperty("UNIQ_KEY", "x"), StatusInvalidArgument)
	wantStatus(t, m.SetProperty("", "x"), StatusInvalidArgument)
	wantStatus(t, m.SetProperty("a", ""), StatusInvalidArgument)
	wantStatus(t, m.SetProperty("a", "x\x01y"), StatusInvalidArgument)
	wantStatus(t, m.SetProperty("a\x00b", "x"), StatusInvalidArgument)
	wantStatus(t, m.SetProperty("a", "x\x00"), StatusInvalidArgument)
	wantStatus(t, m.SetTags("t\x00"), StatusInvalidArgument)
	wantStatus(t, m.SetTags("\xff"), StatusInvalidUTF8)
	wantStatus(t, m.SetKeys("two words"), StatusInvalidArgument)
	wantStatus(t, m.SetKeys(""), StatusInvalidArgument)
	if _, ok := m.Property("TAGS"); ok {
		t.Error("a refused property was set")
	}

	if err := m.SetProperty("ok", "fine"); err != nil {
		t.Fatal(err)
	}
	if err := m.SetTags("tag"); err != nil {
		t.Fatal(err)
	}
	if err := m.SetKeys("k1", "k2"); err != nil {
		t.Fatal(err)
	}
	if got := m.Keys(); len(got) != 2 || got[0] != "k1" || got[1] != "k2" {
		t.Errorf("keys %q", got)
	}
	if v, ok := m.Property("ok"); !ok || v != "fine" || m.Properties()["ok"] != "fine" || m.Tags() != "tag" {
		t.Error("property or tag not kept")
	}
	if err := m.SetKeys(); err != nil || m.Keys() != nil {
		t.Errorf("SetKeys() did not remove the keys: %v %q", err, m.Keys())
	}
	if err := m.SetTags(""); err != nil || m.Tags() != "" {
		t.Errorf("SetTags(\"\") did not remove the tag")
	}
	// Not sent, not stored.
	if m.MsgID() != "" || m.OffsetMsgID() != "" {
		t.Error("ids on an unsent message")
	}
	if _, ok := m.QueueID(); ok {
		t.Error("queue id on an unsent message")
	}
	if _, ok := m.StoreTimestamp(); ok {
		t.Error("store timestamp on an unsent message")
	}
}

func TestEmptyBody(t *testing.T) {
	p := startedProducer(t, nil)
	topic := uniqueTopic(t)
	for _, body := range [][]byte{nil, {}} {
		m := newMsg(t, topic, body)
		if b := m.Body(); b == nil || len(b) != 0 {
			t.Fatalf("Body() of an empty message: %#v", b)
		}
		_, err := p.SendSync(m)
		wantStatus(t, err, StatusInvalidArgument)
		wantStatus(t, p.SendOneway(m), StatusInvalidArgument)
	}
}

// Nothing listens on 127.0.0.1:1: a send fails fast with a retriable connect/timeout error.
func TestNoNameServer(t *testing.T) {
	p, err := NewProducer(map[string]string{
		"name-server":                   "127.0.0.1:1",
		"producer.group":                "GoRmqNoNamesrv_" + runID,
		"producer.send-message-timeout": "1000",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Start(); err != nil {
		t.Fatalf("Start (should not need the name server yet): %v", err)
	}
	msg := newMsg(t, "GoRmqNoNamesrv", []byte("x"))
	start := time.Now()
	_, syncErr := p.SendSync(msg)
	elapsed := time.Since(start)
	var e *Error
	if !errors.As(syncErr, &e) {
		t.Fatalf("got %v", syncErr)
	}
	if e.Status != StatusConnect && e.Status != StatusTimeout {
		t.Errorf("got %v, want %s or %s", err, StatusName(StatusConnect), StatusName(StatusTimeout))
	}
	if !e.Retriable() {
		t.Errorf("%v is not retriable", err)
	}
	if elapsed > 3*time.Second {
		t.Errorf("failing took %v with a 1000 ms send timeout", elapsed)
	}
	done := make(chan error, 1)
	if err := p.SendAsync(msg, func(_ *SendResult, err error) { done <- err }); err == nil {
		select {
		case err := <-done:
			if !IsRetriable(err) {
				t.Errorf("async: got %v, want a retriable error", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("async callback did not run")
		}
	} else if !IsRetriable(err) {
		t.Errorf("SendAsync: got %v", err)
	}
	t.Logf("sync error after %v: %v", elapsed, syncErr)
}
