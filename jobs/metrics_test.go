package jobs

import (
	"context"
	"github.com/sluice-dev/sluice/internal/testsupport"
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
	restarts       int
}

func (m *countingMetrics) ObserveTick(time.Duration) { m.mu.Lock(); m.ticks++; m.mu.Unlock() }
func (m *countingMetrics) AddRowsExported(n int64)   { m.mu.Lock(); m.rows += n; m.mu.Unlock() }
func (m *countingMetrics) AddBytesExported(n int64)  { m.mu.Lock(); m.bytes += n; m.mu.Unlock() }
func (m *countingMetrics) AddPartUploaded()          { m.mu.Lock(); m.parts++; m.mu.Unlock() }
func (m *countingMetrics) AddUploadRetry()           { m.mu.Lock(); m.retries++; m.mu.Unlock() }
func (m *countingMetrics) AddUploadRestart()         { m.mu.Lock(); m.restarts++; m.mu.Unlock() }

// TestMetrics checks that a job's ticks, rows, bytes and parts reach the
// metrics sink and that CountByState sees the finished job.
func TestMetrics(t *testing.T) {
	m := &countingMetrics{}
	e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), func(c *Config) {
		c.TickBudget = 30 * time.Millisecond
		c.Metrics = m
	})
	svc := e.start()
	job, err := svc.Submit(context.Background(), sluice.JobSpec{Format: sluice.FormatSQL})
	if err != nil {
		t.Fatal(err)
	}
	done := waitJob(t, svc, job.ID, time.Minute, sluice.StateCompleted)
	// The tick reports its rows and bytes as it returns, just after the
	// job shows as completed: wait for them.
	match := func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.ticks >= 1 && m.rows == done.Progress.Rows && m.bytes == done.Size && m.parts == done.Progress.PartsUploaded
	}
	for deadline := time.Now().Add(5 * time.Second); !match() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if !match() {
		m.mu.Lock()
		t.Errorf("metrics ticks=%d rows=%d bytes=%d parts=%d; job rows=%d size=%d parts=%d",
			m.ticks, m.rows, m.bytes, m.parts, done.Progress.Rows, done.Size, done.Progress.PartsUploaded)
		m.mu.Unlock()
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
