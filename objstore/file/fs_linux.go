package file

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// allocate reserves a byte range with fallocate, where the filesystem
// has it.
func allocate(f *os.File, off, n int64) error {
	err := syscall.Fallocate(int(f.Fd()), 0, off, n)
	if errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS) {
		return nil
	}
	return err
}

// datasync flushes a file's data (not its times) to disk.
func datasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }

// dropCache frees f's clean cached pages (POSIX_FADV_DONTNEED); the
// kernel starts writing back dirty ones, and keeps them.
func dropCache(f *os.File) { _ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED) }
