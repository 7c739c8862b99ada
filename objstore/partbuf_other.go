//go:build !unix

package objstore

import "errors"

// mmapBuf fails where there is no mmap: part buffers come from the Go
// heap (partBufs.alloc).
func mmapBuf(int) ([]byte, error) { return nil, errors.New("objstore: no mmap on this platform") }

func munmapBuf([]byte) error { return nil }
