package api

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sluice-dev/sluice"
)

// Metrics holds sluice's Prometheus metrics in its own registry (never
// the global one). The jobs service and the uploader feed it through its
// methods; cmd/sluice passes the same *Metrics to each of them.
type Metrics struct {
	reg *prometheus.Registry

	jobsDesc      *prometheus.Desc
	bytesExported prometheus.Counter
	rowsExported  prometheus.Counter
	partsUploaded prometheus.Counter
	uploadRetries prometheus.Counter
	tickDuration  prometheus.Histogram
	httpDuration  *prometheus.HistogramVec
	verifications *prometheus.CounterVec

	mu        sync.Mutex
	counter   JobCounter
	jobCounts map[sluice.State]int
}

// NewMetrics makes the metrics and registers them, with the Go and
// process collectors, in a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg:       prometheus.NewRegistry(),
		jobsDesc:  prometheus.NewDesc("sluice_jobs", "Export jobs by state.", []string{"state"}, nil),
		jobCounts: map[sluice.State]int{},
		bytesExported: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_exported_bytes_total", Help: "Bytes written to the store by export jobs.",
		}),
		rowsExported: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_exported_rows_total", Help: "Rows exported by export jobs.",
		}),
		partsUploaded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_parts_uploaded_total", Help: "Multipart parts uploaded.",
		}),
		uploadRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_upload_retries_total", Help: "Part uploads retried after an error.",
		}),
		tickDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sluice_tick_duration_seconds", Help: "Duration of job ticks.",
			Buckets: []float64{.01, .05, .1, .5, 1, 2, 5, 10, 20, 30, 60},
		}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route", "code"}),
	}
	m.reg.MustRegister(m.bytesExported, m.rowsExported, m.partsUploaded,
		m.uploadRetries, m.tickDuration, m.httpDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		jobsCollector{m})
	m.verifications = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_verifications_total", Help: "Verifications of completed exports against their manifests, by outcome.",
	}, []string{"outcome"})
	for _, o := range []string{sluice.VerifyPassed, sluice.VerifyFailed} {
		m.verifications.WithLabelValues(o)
	}
	m.reg.MustRegister(m.verifications)
	return m
}

// AddVerification counts one verification with its outcome (passed or
// failed).
func (m *Metrics) AddVerification(outcome string) { m.verifications.WithLabelValues(outcome).Inc() }

// Registry returns the registry, for other collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// SetJobs sets the number of jobs in a state; it is used when the
// JobService does not implement JobCounter.
func (m *Metrics) SetJobs(state sluice.State, n int) {
	m.mu.Lock()
	m.jobCounts[state] = n
	m.mu.Unlock()
}

// AddBytesExported counts bytes written to the store.
func (m *Metrics) AddBytesExported(n int64) { m.bytesExported.Add(float64(n)) }

// AddRowsExported counts rows exported.
func (m *Metrics) AddRowsExported(n int64) { m.rowsExported.Add(float64(n)) }

// AddPartUploaded counts one uploaded part.
func (m *Metrics) AddPartUploaded() { m.partsUploaded.Inc() }

// AddUploadRetry counts one retried upload.
func (m *Metrics) AddUploadRetry() { m.uploadRetries.Inc() }

// ObserveTick records a job tick's duration.
func (m *Metrics) ObserveTick(d time.Duration) { m.tickDuration.Observe(d.Seconds()) }

// observeHTTP records a request's latency. Every label comes from a
// bounded set, so that no client can grow the series: the method is one
// of RFC 9110's (or "other"), the route is the route table's pattern
// that matched (or "unmatched"), and the status is a number the server
// chose.
func (m *Metrics) observeHTTP(method, pattern string, status int, d time.Duration) {
	if status == 0 {
		status = http.StatusOK
	}
	m.httpDuration.WithLabelValues(methodLabel(method), pattern, strconv.Itoa(status)).Observe(d.Seconds())
}

// methodLabel maps a request method to the metric's method label.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return method
	}
	return "other"
}

func (m *Metrics) countJobs(c JobCounter) {
	m.mu.Lock()
	m.counter = c
	m.mu.Unlock()
}

// jobsCollector reports sluice_jobs, from the JobCounter at scrape time
// when there is one, else from SetJobs.
type jobsCollector struct{ m *Metrics }

func (c jobsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.m.jobsDesc }

func (c jobsCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	counter := c.m.counter
	counts := make(map[sluice.State]int, len(c.m.jobCounts))
	for k, v := range c.m.jobCounts {
		counts[k] = v
	}
	c.m.mu.Unlock()
	if counter != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		got, err := counter.CountByState(ctx)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(c.m.jobsDesc, err)
			return
		}
		counts = got
	}
	for _, st := range []sluice.State{sluice.StateQueued, sluice.StateRunning, sluice.StateCompleted, sluice.StateFailed, sluice.StateCancelled} {
		ch <- prometheus.MustNewConstMetric(c.m.jobsDesc, prometheus.GaugeValue, float64(counts[st]), string(st))
	}
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) error {
	promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	return nil
}
