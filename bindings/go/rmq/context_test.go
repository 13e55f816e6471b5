package rmq

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

func TestSendSyncContextSends(t *testing.T) {
	p := startedProducer(t, nil)
	topic := uniqueTopic(t)
	msg := newMsg(t, topic, []byte("with a context"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := p.SendSyncContext(ctx, msg)
	if err != nil {
		t.Fatalf("SendSyncContext: %v", err)
	}
	checkSendResult(t, res, topic)
}

// A name server that accepts but never answers: the send would take its 20 s timeout; the
// context ends the wait long before.
func TestSendSyncContextReturnsWhenTheContextEnds(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	p := newProducer(t, map[string]string{
		"name-server":                   silent.Addr().String(),
		"producer.send-message-timeout": "20000",
		"client.api-timeout":            "20000",
	})
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	msg := newMsg(t, "CtxTopic", []byte("x"))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	_, err = p.SendSyncContext(ctx, msg)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	if elapsed := time.Since(t0); elapsed > 10*time.Second {
		t.Fatalf("returned after %v: the context did not end the wait", elapsed)
	}
	// an already ended context sends nothing
	if _, err := p.SendSyncContext(ctx, msg); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	if err := p.ShutdownContext(sctx); err != nil {
		t.Fatalf("ShutdownContext: %v", err)
	}
	if err := p.CloseContext(sctx); err != nil {
		t.Fatalf("CloseContext: %v", err)
	}
}
