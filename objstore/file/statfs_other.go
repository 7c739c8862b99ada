//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package file

// Free implements FS; -1 means unknown here, and the floor is not
// enforced.
func (OS) Free(string) (int64, error) { return -1, nil }
