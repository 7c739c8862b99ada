// Command partsize prints the part size a job's upload Writer picks for an
// estimated stream size (objstore.ChoosePartSize under S3's limits, which
// the file store shares) and the memory bound of issue 14 for it:
// (N+1) × part size + 32 MiB, N being limits.uploadConcurrency.
//
//	go run ./bench/partsize -concurrency 4 -estimate 460000000
//
// It prints "part_size_bytes bound_bytes". A benchmark tool, used by
// bench/lib.sh; not part of the product or of `go test`.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/sluice-dev/sluice/objstore"
)

func main() {
	n := flag.Int("concurrency", 4, "limits.uploadConcurrency: parts in flight")
	est := flag.Int64("estimate", 0, "the job's estimated size in bytes (progress.estimatedBytes)")
	flag.Parse()
	if *n < 1 || *est < 0 {
		fmt.Fprintln(os.Stderr, "partsize: -concurrency must be at least 1 and -estimate not negative")
		os.Exit(2)
	}
	ps := objstore.ChoosePartSize(*est, objstore.DefaultLimits())
	fmt.Println(ps, int64(*n+1)*ps+32*objstore.MiB)
}
