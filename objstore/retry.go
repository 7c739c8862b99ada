package objstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// retry runs fn until it succeeds, fails with an error IsRetryable rejects,
// or MaxAttempts attempts have failed. Each attempt gets its own timeout;
// between attempts it waits an exponentially growing, jittered delay. It
// stops as soon as ctx is done.
func (w *Writer) retry(ctx context.Context, op string, timeout time.Duration, fn func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, timeout)
		err := fn(actx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("objstore: %s %s: %w (stopped: %w)", op, w.key, err, context.Cause(ctx))
		}
		if !IsRetryable(err) {
			return fmt.Errorf("objstore: %s %s: %w", op, w.key, err)
		}
		if attempt >= w.opts.MaxAttempts {
			return fmt.Errorf("objstore: %s %s: giving up after %d attempts: %w", op, w.key, attempt, err)
		}
		if w.opts.OnRetry != nil {
			w.opts.OnRetry(op, err)
		}
		d := backoff(attempt, w.opts.RetryBase, w.opts.RetryMax)
		w.log.Warn("retrying", "op", op, "attempt", attempt, "wait", d, "err", err)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("objstore: %s %s: %w (stopped: %w)", op, w.key, err, context.Cause(ctx))
		}
	}
}

// backoff returns the wait after the given failed attempt (1-based):
// base×2^(attempt-1) capped at max, of which the upper half is random
// ("equal jitter"), so that parallel uploaders do not retry in lockstep.
func backoff(attempt int, base, max time.Duration) time.Duration {
	d := base
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	half := d / 2
	return half + rand.N(half+1)
}
