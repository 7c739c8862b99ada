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
	// OpenAppend opens a file for appending, creating it if needed (an
	// upload's sidecar).
	OpenAppend(name string) (File, error)
	// OpenData opens an upload's data file for writing in place,
	// creating it if needed.
	OpenData(name string) (DataFile, error)
	// DataSync fdatasyncs the file at name.
	DataSync(name string) error
	// DropCache advises the kernel that the file at name will not be
	// read soon, so that its clean cached pages can be freed. It is
	// advice: a failure changes only memory use, and is not reported.
	DropCache(name string)
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

// DataFile is an upload's data file, written in place (see inplace.go).
type DataFile interface {
	io.WriterAt
	// Allocate reserves the byte range [off, off+n), so in-place writes
	// do not fragment the file or fail half-way for lack of space.
	Allocate(off, n int64) error
	Truncate(size int64) error
	Sync() error
	Close() error
}

// OpenAppend implements FS.
func (OS) OpenAppend(name string) (File, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
}

// OpenData implements FS.
func (OS) OpenData(name string) (DataFile, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	return osData{f}, nil
}

// DataSync implements FS.
func (OS) DataSync(name string) error {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = datasync(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// DropCache implements FS.
func (OS) DropCache(name string) {
	f, err := os.Open(name)
	if err != nil {
		return
	}
	dropCache(f)
	f.Close()
}

type osData struct{ *os.File }

func (f osData) Allocate(off, n int64) error { return allocate(f.File, off, n) }
