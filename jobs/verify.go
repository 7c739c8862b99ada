package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"path/filepath"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/state"
	"github.com/sluice-dev/sluice/verify"
)

// kindVerify is the task that reads a completed job's object back and
// verifies it against its manifest (JobSpec.Verify).
const kindVerify = "verify"

func verifyKey(jobID string) string { return "verify:" + jobID }

// verifyMetrics is implemented by metrics that count verifications by
// outcome (api.Metrics does).
type verifyMetrics interface {
	AddVerification(outcome string)
}

// afterComplete queues, in the transaction that completed the job, what
// follows: its verification when the spec asks for one (the callback
// then waits for the verification's outcome), else its callback.
func (s *Service) afterComplete(tx *state.Tx, job *sluice.Job) error {
	if !job.Spec.Verify {
		return s.queueCallback(tx, job)
	}
	job.Verification = &sluice.Verification{Status: sluice.VerifyPending}
	if err := tx.UpdateJob(job); err != nil {
		return err
	}
	return tx.PutTask(state.Task{Kind: kindVerify, Key: verifyKey(job.ID), DueAt: s.now()})
}

// runVerify verifies a completed job's object, records the outcome and
// queues the callback. A failed verification never deletes the object.
func (s *Service) runVerify(ctx context.Context, t state.Task) error {
	jobID := t.Key[len("verify:"):]
	job, err := s.Get(ctx, jobID)
	if errors.Is(err, sluice.ErrNotFound) || (err == nil && job.State != sluice.StateCompleted) {
		s.finish(t) // deleted or expired meanwhile
		return nil
	}
	if err != nil {
		s.reschedule(t, s.now().Add(s.cfg.Poll), t.Attempts)
		return err
	}
	if err := s.setVerification(ctx, job, &sluice.Verification{Status: sluice.VerifyRunning}, nil); err != nil {
		return err
	}
	start := time.Now()
	v := s.verifyObject(ctx, job)
	v.Seconds = time.Since(start).Seconds()
	if s.stopCtx.Err() != nil {
		// Stopping is not the object's fault: verify again after the restart.
		s.release(t)
		return errStopped
	}
	if err := s.setVerification(s.hardCtx, job, v, &t); err != nil {
		return err
	}
	if m, ok := s.cfg.Metrics.(verifyMetrics); ok {
		m.AddVerification(v.Status)
	}
	if v.Status == sluice.VerifyPassed {
		s.log.Info("jobs: export verified", "job", jobID, "key", job.Key, "tables", v.Tables, "rows", v.Rows, "seconds", v.Seconds)
	} else {
		s.log.Error("jobs: export failed verification; the object is kept, marked unverified", "job", jobID, "key", job.Key, "mismatch", v.Mismatch)
	}
	s.poke()
	return nil
}

// setVerification records v on the job; with a task, it also ends the
// task and queues the job's callback, in the same transaction.
func (s *Service) setVerification(ctx context.Context, job *sluice.Job, v *sluice.Verification, t *state.Task) error {
	return s.st.Update(ctx, func(tx *state.Tx) error {
		j, err := tx.GetJob(job.ID)
		if err != nil {
			return err
		}
		j.Verification = v
		j.UpdatedAt = s.now()
		if err := tx.UpdateJob(j); err != nil {
			return err
		}
		*job = *j
		if t == nil {
			return nil
		}
		if err := tx.FinishTask(*t, s.owner); err != nil {
			return err
		}
		return s.queueCallback(tx, j)
	})
}

// verifyObject reads the job's object and manifest back from the store
// and compares: the object's size and SHA-256, then every table's digest.
func (s *Service) verifyObject(ctx context.Context, job *sluice.Job) *sluice.Verification {
	failed := func(table, reason string) *sluice.Verification {
		return &sluice.Verification{Status: sluice.VerifyFailed, Mismatch: &sluice.VerifyMismatch{Table: table, Reason: reason}}
	}
	mrc, _, err := s.store.Get(ctx, verify.ManifestKey(job.Key), 0, -1)
	if err != nil {
		return failed("", fmt.Sprintf("read manifest: %v", err))
	}
	m, err := verify.ReadManifest(mrc)
	mrc.Close()
	if err != nil {
		return failed("", err.Error())
	}
	rc, _, err := s.store.Get(ctx, job.Key, 0, -1)
	if err != nil {
		return failed("", fmt.Sprintf("read object: %v", err))
	}
	defer rc.Close()
	hr := &hashingReader{r: rc, h: sha256.New()}
	r, closeDec, err := verify.Decompress(hr, m.Compression)
	if err != nil {
		return failed("", fmt.Sprintf("decompress: %v", err))
	}
	defer closeDec()
	in := m.Input()
	in.R, in.Restore, in.TempDir = r, s.cfg.Restore, s.cfg.DataDir
	got, err := verify.FromDump(ctx, in, s.log)
	if err != nil {
		return failed("", err.Error())
	}
	// The digests read the whole dump; the object may have trailing bytes.
	if _, err := io.Copy(io.Discard, hr); err != nil {
		return failed("", fmt.Sprintf("read object: %v", err))
	}
	if sum := hex.EncodeToString(hr.h.Sum(nil)); hr.n != m.Object.Size || sum != m.Object.SHA256 {
		return failed("", fmt.Sprintf("object is %d bytes with SHA-256 %s; the manifest says %d bytes, %s", hr.n, sum, m.Object.Size, m.Object.SHA256))
	}
	rep := verify.Compare(m.Digests(), got, verify.EmptyTablesOmitted(m.Format))
	v := &sluice.Verification{Status: sluice.VerifyPassed, Tables: len(rep.Tables), Rows: rep.Rows}
	if !rep.OK() {
		v.Status = sluice.VerifyFailed
		v.Mismatch = &sluice.VerifyMismatch{Table: rep.Mismatch.Table, Key: rep.Mismatch.Key, Reason: rep.Mismatch.Reason}
	}
	return v
}

// hashingReader hashes and counts what is read through it.
type hashingReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}

// removeVerifyScratch removes the scratch databases and spool files that
// verifications killed mid-way (kill -9, power loss) left in DataDir,
// once older than Config.OrphanGrace.
func (s *Service) removeVerifyScratch() error {
	removed, err := verify.SweepScratch(s.cfg.DataDir, s.now().Add(-s.cfg.OrphanGrace))
	for _, name := range removed {
		s.log.Info("jobs: removed a crashed verification's scratch files", "path", filepath.Join(s.cfg.DataDir, name))
	}
	return err
}
