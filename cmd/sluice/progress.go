package main

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/sluice-dev/sluice/dump"
)

// progressBar shows a dump's progress on stderr: tables, rows, bytes, rate
// and an ETA from the plan's estimated size. A nil *progressBar is valid
// and shows nothing, which is what non-terminals get.
type progressBar struct {
	bar    *progressbar.ProgressBar
	tables int
	parts  func() int // parts uploaded so far, or nil
	w      io.Writer
}

// newProgressBar returns a bar for mode "auto" (only when stderr is a
// terminal), "always" or "never".
func newProgressBar(e *env, mode string, plan dump.Plan, parts func() int) *progressBar {
	if mode == "never" || (mode == "auto" && !e.stderrTTY) {
		return nil
	}
	max := plan.EstimatedBytes
	if max <= 0 {
		max = -1 // unknown: a spinner
	}
	bar := progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(e.stderr),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetWidth(24),
		progressbar.OptionThrottle(150*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionUseANSICodes(true),
		progressbar.OptionSetDescription("dump"),
	)
	return &progressBar{bar: bar, tables: len(plan.Tables), parts: parts, w: e.stderr}
}

// update reflects a checkpoint. The estimate is only an estimate: when the
// output outgrows it the bar's maximum grows instead of passing 100%.
func (p *progressBar) update(c dump.Cursor) {
	if p == nil {
		return
	}
	if max := p.bar.GetMax64(); max > 0 && c.Bytes > max {
		p.bar.ChangeMax64(c.Bytes + c.Bytes/10)
	}
	desc := fmt.Sprintf("tables %d/%d, %d rows", c.TablesDone, p.tables, c.Rows)
	if c.Table != "" {
		desc += " · " + c.Table
	}
	if p.parts != nil {
		desc += fmt.Sprintf(" · %d parts up", p.parts())
	}
	p.bar.Describe(desc)
	p.bar.Set64(c.Bytes)
}

// done clears the bar after a successful dump.
func (p *progressBar) done(c dump.Cursor) {
	if p == nil {
		return
	}
	p.bar.ChangeMax64(max(c.Bytes, 1))
	p.bar.Set64(c.Bytes)
	p.bar.Finish()
}

// abandon clears the bar after a failure so the error message stands alone.
func (p *progressBar) abandon() {
	if p == nil {
		return
	}
	p.bar.Exit()
	fmt.Fprintln(p.w)
}
