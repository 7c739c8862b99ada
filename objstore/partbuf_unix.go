//go:build unix

package objstore

import "syscall"

// mmapBuf maps size bytes of private anonymous memory, outside the Go
// heap; the kernel backs a page only once it is written.
func mmapBuf(size int) ([]byte, error) {
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, err
	}
	adviseHugePages(b)
	return b, nil
}

// munmapBuf unmaps a buffer from mmapBuf, given at its full length.
func munmapBuf(b []byte) error { return syscall.Munmap(b) }
