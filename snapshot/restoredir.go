package snapshot

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Restore reaches every entry it writes through a directory descriptor,
// never through a path: a user who can rename entries in the target (a
// restore over their home) could otherwise swap a directory restore has
// already checked for a symlink, and the rest of that subtree would be
// written wherever the symlink points, as root. A descriptor keeps
// naming the directory restore made or opened, wherever it is moved, and
// each name below it is one component opened with O_NOFOLLOW, created
// with O_EXCL, or changed with AT_SYMLINK_NOFOLLOW. See docs/restore.md.

// restoreDir is one directory of the restore target.
type restoreDir struct {
	parent *restoreDir // nil for the target itself
	name   string      // the entry in parent
	path   string      // for messages only: never opened
	// dev and ino name the directory restore made or opened; a later
	// open by name (the metadata pass, a hardlink) must find the same.
	dev, ino uint64

	mu   sync.Mutex
	fd   int // -1 once released by everyone
	refs int // the walker while it lists the directory, and each pending file
}

func newRestoreDir(parent *restoreDir, name, path string, fd int) (*restoreDir, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("snapshot: restore %s: %w", path, err)
	}
	return &restoreDir{parent: parent, name: name, path: path, dev: st.Dev, ino: st.Ino, fd: fd, refs: 1}, nil
}

func (d *restoreDir) hold() {
	d.mu.Lock()
	d.refs++
	d.mu.Unlock()
}

// release drops one reference; the last closes the descriptor, so an
// open restore holds only the directories it is still writing into.
func (d *restoreDir) release() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.refs--; d.refs == 0 {
		unix.Close(d.fd)
		d.fd = -1
	}
}

// childPath is what messages call name inside d.
func (d *restoreDir) childPath(name string) string { return d.path + "/" + name }

const openDirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// errReplaced is an entry restore made or opened that was something else
// when restore came back to it: a user moved it during the restore.
var errReplaced = errors.New("replaced during the restore; restore does not follow it")

// reopener opens directories of a restore again, after their walk let
// them go, by one O_NOFOLLOW step from an open parent, and checks each is
// the directory restore made. It keeps what it opened until told to
// close it, so a run of siblings costs one open each.
type reopener struct {
	open map[*restoreDir]int
}

func newReopener() *reopener { return &reopener{open: map[*restoreDir]int{}} }

func (ro *reopener) fd(d *restoreDir) (int, error) {
	if d.parent == nil {
		return d.fd, nil // the target: held open for the whole restore
	}
	if fd, ok := ro.open[d]; ok {
		return fd, nil
	}
	pfd, err := ro.fd(d.parent)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Openat(pfd, d.name, openDirFlags, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ENOENT) {
			err = errReplaced
		}
		return -1, fmt.Errorf("snapshot: restore %s: %w", d.path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Dev != d.dev || st.Ino != d.ino {
		unix.Close(fd)
		if err == nil {
			err = errReplaced
		}
		return -1, fmt.Errorf("snapshot: restore %s: %w", d.path, err)
	}
	ro.open[d] = fd
	return fd, nil
}

// done closes d's descriptor, if this reopener holds one.
func (ro *reopener) done(d *restoreDir) {
	if fd, ok := ro.open[d]; ok {
		unix.Close(fd)
		delete(ro.open, d)
	}
}

func (ro *reopener) closeAll() {
	for d := range ro.open {
		ro.done(d)
	}
}

// procFd names descriptor fd for the calls that take only a path: the
// kernel resolves it to the very file the descriptor holds, never by name.
func procFd(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// futimens sets the times of the file fd holds (utimensat with a NULL
// path; x/sys offers only the path form).
func futimens(fd int, ts []unix.Timespec) error {
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// unlinkNonDir removes what is at name in dirfd unless it is a directory
// (unlinkat without AT_REMOVEDIR refuses one), so a restore over an
// earlier one replaces files. What it cannot remove makes the O_EXCL
// create that follows fail.
func unlinkNonDir(dirfd int, name string) {
	unix.Unlinkat(dirfd, name, 0)
}

// fileTypeName describes an lstat mode for a refusal message.
func fileTypeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFLNK:
		return "a symlink"
	case unix.S_IFREG:
		return "a file"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFIFO:
		return "a fifo"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR, unix.S_IFBLK:
		return "a device"
	}
	return "unknown type"
}
