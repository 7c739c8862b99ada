//go:build linux || darwin || freebsd || netbsd || openbsd

package file

import "syscall"

// Free implements FS: the bytes an unprivileged user may still write on
// dir's filesystem.
func (OS) Free(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
