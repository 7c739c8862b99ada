//go:build !linux

package file

import "os"

// allocate does nothing where fallocate is missing: writes extend the file.
func allocate(*os.File, int64, int64) error { return nil }

// datasync falls back to fsync.
func datasync(f *os.File) error { return f.Sync() }

// dropCache does nothing: the advice is Linux's here.
func dropCache(*os.File) {}
