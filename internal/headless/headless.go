// Package headless starts the headless Chromium that the console's
// browser tests and the screenshot script drive (Debian's chromium
// package; scripts/test installs it).
package headless

import (
	"context"
	"fmt"
	"os"

	"github.com/chromedp/chromedp"
)

// Path is where Debian's chromium package puts the browser.
const Path = "/usr/bin/chromium"

// Available reports whether the browser is installed.
func Available() bool {
	_, err := os.Stat(Path)
	return err == nil
}

// Start runs one headless browser with a fresh profile in userDataDir
// and returns a context for it (its first tab) and a function that
// stops it. The flags keep the browser quiet: no sandbox (containers
// and root), no GPU, no background network, updates, sync or first-run
// screens. width and height set the window (and so the viewport).
func Start(ctx context.Context, userDataDir string, width, height int) (context.Context, func(), error) {
	if !Available() {
		return nil, nil, fmt.Errorf("headless: %s is missing (apt-get install chromium)", Path)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(Path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(userDataDir),
		chromedp.WindowSize(width, height),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("mute-audio", true),
	}
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	// Start the browser now, so a failure shows here.
	if err := chromedp.Do(bctx); err != nil {
		bcancel()
		acancel()
		return nil, nil, fmt.Errorf("headless: start %s: %w", Path, err)
	}
	return bctx, func() { bcancel(); acancel() }, nil
}
