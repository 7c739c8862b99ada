package main

import (
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sluice-dev/sluice/state"
)

// printBanner writes serve's first screen: where it listens, where the
// databases, the exports and sluice's own state live, and the one command
// that makes a dump. The structured log says the same for machines; this
// is for the person who just typed `sluice serve`.
func printBanner(w io.Writer, cfg Config, url string) {
	// Scripts and tests read the URL from this first line.
	fmt.Fprintf(w, "sluice: listening on %s\n", url)
	fmt.Fprintf(w, "  version  %s\n", versionString())
	names := make([]string, 0, len(cfg.Databases))
	for n := range cfg.Databases {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		where := "/db/" + n
		if n == cfg.DefaultDatabase {
			where = "/ (default) and /db/" + n
		}
		fmt.Fprintf(w, "  database %-10s %s   at %s\n", n, absPath(cfg.Databases[n]), where)
	}
	fmt.Fprintf(w, "  exports  %s\n", describeStore(cfg.Store))
	fmt.Fprintf(w, "  state    %s (jobs, checkpoints; see docs/data-dir.md)\n", absPath(filepath.Join(cfg.DataDir, state.FileName)))
	auth := ""
	if len(cfg.Tokens.Admin) > 0 {
		auth = ` -H "Authorization: Bearer $TOKEN"`
	}
	fmt.Fprintf(w, "  dump     curl -fsS -X POST%s -H 'Content-Type: application/json' -d '{}' %s/export/dump\n", auth, url)
	fmt.Fprintf(w, "  console  %s/ui/\n", url)
	fmt.Fprintf(w, "  docs     %s/ , %s/openapi.json, docs/api.md\n", url, url)
	fmt.Fprintln(w, "  stop     Ctrl-C or SIGTERM (running jobs checkpoint and resume on the next start)")
}

// describeStore says where exports go, in a form an operator can look at.
func describeStore(s StoreConfig) string {
	if s.Type != "s3" {
		return "file store in " + absPath(s.Dir)
	}
	d := fmt.Sprintf("s3 bucket %q", s.S3.Bucket)
	if p := strings.TrimSpace(s.S3.Prefix); p != "" {
		d += fmt.Sprintf(", prefix %q", p)
	}
	if s.S3.Endpoint != "" {
		d += " at " + s.S3.Endpoint
	} else {
		d += " (endpoint from AWS_ENDPOINT_URL_S3/AWS_ENDPOINT_URL, or AWS)"
	}
	return d
}

// absPath is p made absolute for display; p itself if that fails.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
