package corpusgen

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

func lutimes(path string, t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	return unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}

// setXattr sets a user.* attribute where the file system has them; a
// file system without (ENOTSUP, or tmpfs before Linux 6.6) is not an
// error: the tree is still a tree, only without that edge case.
func setXattr(path, name string, value []byte) error {
	err := unix.Lsetxattr(path, name, value, 0)
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EPERM) {
		return nil
	}
	return err
}
