package file

import (
	"io"
	"io/fs"
	"os"
)

// FS is the filesystem seam of the file store: every write goes through
// it, so tests can inject a full disk, short writes or failed syncs. Reads
// use the os package directly.
type FS interface {
	// CreateTemp creates a new file for writing, as os.CreateTemp.
	CreateTemp(dir, pattern string) (File, error)
	Rename(oldpath, newpath string) error
	// Link makes newpath name oldpath's file and fails with fs.ErrExist if
	// newpath exists: the atomic no-overwrite commit.
	Link(oldpath, newpath string) error
	Remove(name string) error
	RemoveAll(path string) error
	MkdirAll(path string, perm fs.FileMode) error
	// SyncDir fsyncs a directory, making renames in it durable.
	SyncDir(dir string) error
	// Free returns the bytes that may still be written on dir's
	// filesystem, or -1 if the platform cannot tell.
	Free(dir string) (int64, error)
}

// File is a file being written.
type File interface {
	io.Writer
	Name() string
	Sync() error
	Close() error
}

// OS is the real filesystem.
type OS struct{}

var _ FS = OS{}

// CreateTemp implements FS.
func (OS) CreateTemp(dir, pattern string) (File, error) { return os.CreateTemp(dir, pattern) }

// Rename implements FS.
func (OS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

// Link implements FS.
func (OS) Link(oldpath, newpath string) error { return os.Link(oldpath, newpath) }

// Remove implements FS.
func (OS) Remove(name string) error { return os.Remove(name) }

// RemoveAll implements FS.
func (OS) RemoveAll(path string) error { return os.RemoveAll(path) }

// MkdirAll implements FS.
func (OS) MkdirAll(path string, perm fs.FileMode) error { return os.MkdirAll(path, perm) }

// SyncDir implements FS.
func (OS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
