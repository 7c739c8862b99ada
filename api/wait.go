package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/sluice-dev/sluice"
)

// MaxStatusWait caps ?wait= on the status route. It stays under the 60 s
// idle timeout that common proxies and load balancers apply, so a long
// poll is answered by sluice rather than cut by something in between.
const MaxStatusWait = 55 * time.Second

// statusPollInterval is how often a long poll re-reads the job when no
// end is signalled (jobEnds): a job another process ended. A read is one
// indexed row of the state database, so four a second per waiting client
// costs nothing next to an export.
const statusPollInterval = 250 * time.Millisecond

// jobEnds is implemented by a JobService that signals when one of its
// jobs ends, so that a long poll answers at once.
type jobEnds interface {
	Ended() <-chan struct{}
}

// parseWait reads ?wait=: a Go duration ("30s", "1m") or whole seconds
// ("30"). Absent means no wait; longer than MaxStatusWait is capped.
func parseWait(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.ParseUint(v, 10, 32)
		if nerr != nil {
			return 0, badRequest("bad_wait", fmt.Sprintf("wait=%q: want a duration such as 30s, at most %s", v, MaxStatusWait))
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 {
		return 0, badRequest("bad_wait", fmt.Sprintf("wait=%q is negative", v))
	}
	return min(d, MaxStatusWait), nil
}

// waitForEnd returns the job once it has ended, or as it is when wait
// runs out or the client goes away.
func waitForEnd(ctx context.Context, js JobService, job *sluice.Job, wait time.Duration) (*sluice.Job, error) {
	if wait <= 0 || job.State.Terminal() {
		return job, nil
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(statusPollInterval)
	defer tick.Stop()
	for {
		var ended <-chan struct{} // nil: never ready
		if je, ok := js.(jobEnds); ok {
			ended = je.Ended()
		}
		select {
		case <-ctx.Done():
			return job, nil
		case <-deadline.C:
			return job, nil
		case <-tick.C:
		case <-ended:
		}
		next, err := js.Get(ctx, job.ID)
		if err != nil {
			if ctx.Err() != nil {
				return job, nil
			}
			return nil, err
		}
		job = next
		if job.State.Terminal() {
			return job, nil
		}
	}
}
