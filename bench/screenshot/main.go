// Command screenshot saves a PNG of the sluice console's jobs section,
// taken in headless Chromium (see bench/screenshot.sh, which starts a
// server with a running export first).
//
//	go run ./bench/screenshot -url http://127.0.0.1:8080/ui/ -o docs/ui-jobs.png
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/sluice-dev/sluice/internal/headless"
)

func main() {
	u := flag.String("url", "http://127.0.0.1:8080/ui/", "the console's URL")
	out := flag.String("o", "ui-jobs.png", "output PNG")
	width := flag.Int("width", 1280, "window width (CSS pixels)")
	height := flag.Int("height", 720, "window height")
	wait := flag.String("wait", `document.querySelector('#jobs-table tbody .s-processing')`, "JavaScript that is truthy once the page is ready")
	flag.Parse()
	if err := run(*u, *out, *width, *height, *wait); err != nil {
		fmt.Fprintln(os.Stderr, "screenshot:", err)
		os.Exit(1)
	}
}

func run(u, out string, width, height int, wait string) error {
	dir, err := os.MkdirTemp("", "sluice-screenshot-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bctx, stop, err := headless.Start(ctx, dir, width, height)
	if err != nil {
		return err
	}
	defer stop()
	if err := chromedp.Do(bctx, chromedp.Navigate(u)); err != nil {
		return err
	}
	if _, err := chromedp.Run(bctx, chromedp.Poll[bool]("!!("+wait+")")); err != nil {
		return fmt.Errorf("waiting for %s: %w", wait, err)
	}
	png, err := chromedp.Run(bctx, chromedp.CaptureScreenshot())
	if err != nil {
		return err
	}
	return os.WriteFile(out, png, 0o644)
}
