package jobs

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/state"
)

// Callback headers; docs/jobs.md describes the signature.
const (
	HeaderSignature = "X-Sluice-Signature" // "sha256=" + hex HMAC-SHA256(secret, timestamp + "." + body)
	HeaderTimestamp = "X-Sluice-Timestamp" // Unix seconds when the attempt was signed
	HeaderJobID     = "X-Sluice-Job-Id"
	HeaderAttempt   = "X-Sluice-Attempt"
)

// Sign returns the X-Sluice-Signature value for body sent at timestamp
// ts (Unix seconds) with secret. Receivers recompute it, compare in
// constant time and reject timestamps too far from their clock.
func Sign(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// queueCallback enqueues the job's callback delivery, in the transaction
// that made the job terminal.
func (s *Service) queueCallback(tx *state.Tx, job *sluice.Job) error {
	if job.Spec.CallbackURL == "" || job.State == sluice.StateCancelled {
		return nil
	}
	return tx.PutTask(state.Task{Kind: kindCallback, Key: state.CallbackKey(job.ID), DueAt: s.now()})
}

// runCallback makes one delivery attempt of a job's status and records
// it. A 2xx answer ends the task; anything else is retried with
// exponential backoff through the task table (so retries survive
// restarts) until Config.CallbackAttempts attempts were made.
func (s *Service) runCallback(ctx context.Context, t state.Task) error {
	jobID := t.Key[len("callback:"):]
	job, err := s.Get(ctx, jobID)
	if errors.Is(err, sluice.ErrNotFound) {
		s.finish(t)
		return nil
	}
	if err != nil {
		s.reschedule(t, s.now().Add(s.cfg.Poll), t.Attempts)
		return err
	}
	body, err := json.Marshal(job)
	if err != nil {
		s.finish(t)
		return fmt.Errorf("callback %s: %w", jobID, err)
	}
	at := s.now()
	status, derr := s.deliver(ctx, job, body, at, t.Attempts+1)
	if derr != nil && ctx.Err() != nil && s.stopCtx.Err() != nil {
		// Stopping mid-delivery is not the receiver's fault: try again
		// after the restart without counting it. The request may have
		// reached the receiver, so the attempt is still recorded.
		rec := state.CallbackAttempt{JobID: jobID, At: at, URL: job.Spec.CallbackURL,
			Error: "interrupted: sluice was stopping: " + derr.Error()}
		if err := s.st.Update(s.hardCtx, func(tx *state.Tx) error {
			_, err := tx.AddCallbackAttempt(rec)
			return err
		}); err != nil {
			s.log.Warn("jobs: record interrupted callback attempt", "job", jobID, "err", err)
		}
		s.release(t)
		return errStopped
	}
	ok := derr == nil && status >= 200 && status < 300
	rec := state.CallbackAttempt{JobID: jobID, At: at, URL: job.Spec.CallbackURL, Status: status, Delivered: ok}
	if derr != nil {
		rec.Error = derr.Error()
	} else if !ok {
		rec.Error = fmt.Sprintf("HTTP %d", status)
	}
	attempts := t.Attempts + 1
	err = s.st.Update(s.hardCtx, func(tx *state.Tx) error {
		if _, err := tx.AddCallbackAttempt(rec); err != nil {
			return err
		}
		switch {
		case ok:
			return tx.FinishTask(t, s.owner)
		case attempts >= s.cfg.CallbackAttempts:
			return tx.FinishTask(t, s.owner)
		}
		delay := s.cfg.CallbackBackoff << min(attempts-1, 20)
		delay = min(delay, time.Hour)
		delay += time.Duration(rand.Int64N(int64(delay)/5 + 1)) // jitter up to 20%
		_, err := tx.RescheduleTask(t.ID, s.owner, s.now().Add(delay), attempts)
		return err
	})
	if err != nil {
		return fmt.Errorf("callback %s: record attempt: %w", jobID, err)
	}
	switch {
	case ok:
		s.log.Info("jobs: callback delivered", "job", jobID, "attempt", attempts, "status", status)
	case attempts >= s.cfg.CallbackAttempts:
		s.log.Error("jobs: callback given up", "job", jobID, "attempts", attempts, "err", rec.Error)
	default:
		s.log.Warn("jobs: callback failed, will retry", "job", jobID, "attempt", attempts, "err", rec.Error)
	}
	s.poke()
	return nil
}

func (s *Service) deliver(ctx context.Context, job *sluice.Job, body []byte, at time.Time, attempt int) (int, error) {
	// The URL was checked at submit time; check again, since DNS may
	// have changed. The dialer checks the address actually used.
	if err := s.guard.checkURL(ctx, job.Spec.CallbackURL); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallbackTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, job.Spec.CallbackURL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	ts := at.Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "sluice-callback")
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(s.cfg.CallbackSecret, ts, body))
	req.Header.Set(HeaderJobID, job.ID)
	req.Header.Set(HeaderAttempt, strconv.Itoa(attempt))
	resp, err := s.guard.client(s.cfg.CallbackTimeout).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}

// CallbackAttempts returns the recorded delivery attempts of a job's
// callback.
func (s *Service) CallbackAttempts(ctx context.Context, id string) ([]state.CallbackAttempt, error) {
	var out []state.CallbackAttempt
	err := s.st.View(ctx, func(tx *state.Tx) (err error) {
		out, err = tx.CallbackAttempts(id)
		return err
	})
	return out, err
}
