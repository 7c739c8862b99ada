package api

import (
	"net/http"
	"sync/atomic"
)

// memBudget is the memory that every /query in flight shares for its
// response. A query reserves what its response takes as it grows, and
// fails with 503 when the budget is spent instead of waiting for it: two
// queries that each held half and waited for more would wait forever.
type memBudget struct {
	max  int64
	used atomic.Int64
}

func (m *memBudget) reserve(n int64) bool {
	for {
		u := m.used.Load()
		if u+n > m.max {
			return false
		}
		if m.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (m *memBudget) release(n int64) { m.used.Add(-n) }

// reserveGrain is the step in which a query reserves shared memory, so
// that a response of many small rows does not touch the shared counter
// for each.
const reserveGrain = 256 << 10

// queryBudget bounds one /query response: at most left more bytes, each
// reserved in the server's shared memBudget. Release the reservation
// with close once the response is written.
type queryBudget struct {
	left     int64
	shared   *memBudget
	used     int64
	reserved int64
}

func newQueryBudget(max int64, shared *memBudget) *queryBudget {
	return &queryBudget{left: max, shared: shared}
}

var (
	errResultTooLarge = badRequest("result_too_large", "the result is over the configured limit; add a LIMIT or use /export/json/{table}")
	errQueryMemory    = apiErr(http.StatusServiceUnavailable, "busy", "other queries in flight hold the server's query memory; retry")
)

// take accounts n more bytes of response, before they are built where
// their size is known in advance (a value's length).
func (b *queryBudget) take(n int64) error {
	b.left -= n
	if b.left < 0 {
		return errResultTooLarge
	}
	b.used += n
	if b.used > b.reserved {
		g := max(reserveGrain, b.used-b.reserved)
		if !b.shared.reserve(g) {
			return errQueryMemory
		}
		b.reserved += g
	}
	return nil
}

func (b *queryBudget) close() {
	b.shared.release(b.reserved)
	b.reserved = 0
}
