//go:build unix && !linux

package objstore

// adviseHugePages does nothing: transparent huge pages are Linux's.
func adviseHugePages([]byte) {}
