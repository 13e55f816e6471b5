package rmq

import "context"

// SendSyncContext is SendSync bounded by ctx as well: it returns ctx.Err() as soon as ctx is
// done. The send itself is not taken back: it goes on in the background until the broker
// answers or producer.send-message-timeout passes, so the message may still be stored, and msg
// must not be closed before that (Close of msg waits for it).
func (p *Producer) SendSyncContext(ctx context.Context, msg *Message) (*SendResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	type outcome struct {
		res *SendResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := p.SendSync(msg)
		done <- outcome{res, err}
	}()
	select {
	case o := <-done:
		return o.res, o.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// ShutdownContext is Shutdown bounded by ctx: it returns ctx.Err() when ctx is done first,
// while the shutdown completes in the background.
func (p *Producer) ShutdownContext(ctx context.Context) error {
	return withContext(ctx, p.Shutdown)
}

// CloseContext is Close bounded by ctx: it returns ctx.Err() when ctx is done first (for
// instance while a slow callback runs), while the close completes in the background.
func (p *Producer) CloseContext(ctx context.Context) error {
	return withContext(ctx, p.Close)
}

func withContext(ctx context.Context, f func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
