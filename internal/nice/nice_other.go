//go:build !linux

package nice

// setThreadNice does nothing where per-thread priorities are not
// available through the standard library.
func setThreadNice(int) {}
