package jobs

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
)

// countingMetrics records what the service reports.
type countingMetrics struct {
	mu             sync.Mutex
	ticks          int
	rows, bytes    int64
	parts, retries int
}

func (m *countingMetrics) ObserveTick(time.Duration) { m.mu.Lock(); m.ticks++; m.mu.Unlock() }
func (m *countingMetrics) AddRowsExported(n int64)   { m.mu.Lock(); m.rows += n; m.mu.Unlock() }
func (m *countingMetrics) AddBytesExported(n int64)  { m.mu.Lock(); m.bytes += n; m.mu.Unlock() }
func (m *countingMetrics) AddPartUploaded()          { m.mu.Lock(); m.parts++; m.mu.Unlock() }
func (m *countingMetrics) AddUploadRetry()           { m.mu.Lock(); m.retries++; m.mu.Unlock() }

// TestMetrics checks that a job's ticks, rows, bytes and parts reach the
// metrics sink and that CountByState sees the finished job.
func TestMetrics(t *testing.T) {
	m := &countingMetrics{}
	e := newEnv(t, corpus(t, "chinook.sqlite"), func(c *Config) {
		c.TickBudget = 30 * time.Millisecond
		c.Metrics = m
	})
	svc := e.start()
	job, err := svc.Submit(context.Background(), sluice.JobSpec{Format: sluice.FormatSQL})
	if err != nil {
		t.Fatal(err)
	}
	done := waitJob(t, svc, job.ID, time.Minute, sluice.StateCompleted)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ticks < 1 || m.rows != done.Progress.Rows || m.bytes != done.Size || m.parts != done.Progress.PartsUploaded {
		t.Errorf("metrics ticks=%d rows=%d bytes=%d parts=%d; job rows=%d size=%d parts=%d",
			m.ticks, m.rows, m.bytes, m.parts, done.Progress.Rows, done.Size, done.Progress.PartsUploaded)
	}
	if done.Progress.Bytes != done.Size {
		t.Errorf("progress bytes %d, object size %d", done.Progress.Bytes, done.Size)
	}
	counts, err := svc.CountByState(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if counts[sluice.StateCompleted] != 1 || counts[sluice.StateRunning] != 0 {
		t.Errorf("counts by state: %v", counts)
	}
}
