package file

import (
	"errors"
	"os"
	"syscall"
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
