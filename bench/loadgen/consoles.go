package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// The request pattern of one open web console (api/ui/app.js): every
// consolePoll each database's job list, every consoleSlow the databases
// and schedules overviews.
const (
	consolePoll = 1500 * time.Millisecond
	consoleSlow = 15 * time.Second
)

// runConsoles plays n consoles until ctx ends, each starting at a random
// point of its poll interval, and records every request in st.
func runConsoles(ctx context.Context, c *http.Client, o options, n int, st *stats) {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-ctx.Done():
				return
			case <-time.After(rand.N(consolePoll)):
			}
			var dbs []string
			var lastSlow time.Time
			t := time.NewTicker(consolePoll)
			defer t.Stop()
			for {
				if time.Since(lastSlow) >= consoleSlow {
					lastSlow = time.Now()
					var err error
					dbs, err = consoleDatabases(ctx, c, o, st)
					if ctx.Err() != nil {
						return
					}
					if err == nil {
						consoleGet(ctx, c, o, "/schedules", nil, st)
					}
				}
				for _, db := range dbs {
					consoleGet(ctx, c, o, "/db/"+url.PathEscape(db)+"/export/dump/jobs?limit=50", nil, st)
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	wg.Wait()
}

// consoleDatabases reads GET /databases' names, in either wire shape.
func consoleDatabases(ctx context.Context, c *http.Client, o options, st *stats) ([]string, error) {
	var body struct {
		Result *struct {
			Databases []struct{ Name string } `json:"databases"`
		} `json:"result"`
		Databases []struct{ Name string } `json:"databases"`
	}
	if err := consoleGet(ctx, c, o, "/databases", &body, st); err != nil {
		return nil, err
	}
	list := body.Databases
	if body.Result != nil {
		list = body.Result.Databases
	}
	names := make([]string, 0, len(list))
	for _, d := range list {
		names = append(names, d.Name)
	}
	return names, nil
}

// consoleGet sends one GET as the console does and decodes the answer
// into v, if given.
func consoleGet(ctx context.Context, c *http.Client, o options, path string, v any, st *stats) error {
	req, err := http.NewRequestWithContext(ctx, "GET", o.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if o.token != "" {
		req.Header.Set("Authorization", "Bearer "+o.token)
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err == nil {
		var b []byte
		b, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET %s: %d %.200s", path, resp.StatusCode, b)
		}
		if err == nil && v != nil {
			err = json.Unmarshal(b, v)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	st.add(time.Since(start), err)
	return err
}
