package rmq

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// relay forwards connections from a local port to target; stop closes everything, start
// listens again on the same port. It stands for a name server that goes away and comes back.
type relay struct {
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func newRelay(t *testing.T, target string) *relay {
	r := &relay{target: target, addr: "127.0.0.1:0"}
	if err := r.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.stop)
	return r
}

func (r *relay) start() error {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.ln, r.addr = ln, ln.Addr().String()
	r.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", r.target)
			if err != nil {
				c.Close()
				continue
			}
			r.mu.Lock()
			r.conns = append(r.conns, c, up)
			r.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	return nil
}

func (r *relay) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln != nil {
		r.ln.Close()
		r.ln = nil
	}
	for _, c := range r.conns {
		c.Close()
	}
	r.conns = nil
}

// records is a slog.Handler that keeps what it gets.
type records struct {
	mu   sync.Mutex
	list []slog.Record
}

func (h *records) Enabled(context.Context, slog.Level) bool { return true }
func (h *records) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.list = append(h.list, r)
	h.mu.Unlock()
	return nil
}
func (h *records) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *records) WithGroup(string) slog.Handler      { return h }

func (h *records) find(level slog.Level, text string) *slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range h.list {
		if h.list[i].Level == level && strings.Contains(h.list[i].Message, text) {
			return &h.list[i]
		}
	}
	return nil
}

func (h *records) waitFor(t *testing.T, level slog.Level, text string) *slog.Record {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if r := h.find(level, text); r != nil {
			return r
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var got []string
	for _, r := range h.list {
		got = append(got, r.Level.String()+" "+r.Message)
	}
	t.Fatalf("no %v record containing %q; got %q", level, text, got)
	return nil
}

func TestLogsReachSlogThroughNameServerLossAndRecovery(t *testing.T) {
	h := &records{}
	if err := SetLogger(slog.New(h)); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = SetLogger(nil) }()
	r := newRelay(t, namesrv(t))
	p := newProducer(t, map[string]string{"name-server": r.addr, "client.poll-name-server-interval": "200"})
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	topic := uniqueTopic(t)
	msg := newMsg(t, topic, []byte("before"))
	if _, err := p.SendSync(msg); err != nil {
		t.Fatal(err)
	}
	h.waitFor(t, slog.LevelDebug, "route of topic "+topic)
	r.stop() // the name server goes away
	lost := h.waitFor(t, slog.LevelWarn, "connection to "+r.addr+" lost")
	if err := r.start(); err != nil { // and comes back on the same port
		t.Fatal(err)
	}
	h.waitFor(t, slog.LevelInfo, "connection to "+r.addr+" re-established")
	if _, err := p.SendSync(msg); err != nil {
		t.Fatal(err)
	}
	var target string
	lost.Attrs(func(a slog.Attr) bool {
		if a.Key == "target" {
			target = a.Value.String()
		}
		return true
	})
	if target != "rmq::remoting" {
		t.Fatalf("target attribute %q, want rmq::remoting", target)
	}
}

func TestUnknownLogLevelKeyIsRefused(t *testing.T) {
	_, err := NewProducer(map[string]string{"name-server": "127.0.0.1:9876", "producer.group": "g", "client.log-level": "loud"})
	var e *Error
	if !errors.As(err, &e) || e.Status != StatusInvalidConfigValue || !strings.Contains(e.Message, "not a log level") {
		t.Fatalf("got %v", err)
	}
}
