package index

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Lock is an exclusive hold on a repository. It is an flock(2) on
// <repo>/lock, so a killed holder releases it automatically: a stale lock
// can never block the next snapshot. The file's content says who holds it,
// for the error message of whoever is refused.
type Lock struct {
	f      *os.File
	shared bool // a reader's LOCK_SH (AcquireSharedLock): it records nothing
	// Stale is set when the lock file still named a holder: that process
	// died without releasing (a clean Release empties the file), so the
	// repository may hold packs it wrote but never indexed.
	Stale bool
}

// LockInfo is what the lock file records about its holder.
type LockInfo struct {
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Command string    `json:"command"`
	Since   time.Time `json:"since"`
}

// AcquireLock takes the repository lock without waiting.
func AcquireLock(dir, command string, now time.Time) (*Lock, error) {
	path := filepath.Join(dir, lockName)
	f, err := openLockFile(path, unix.O_CREAT|unix.O_RDWR)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lerr := lockError(f, err)
		f.Close()
		return nil, lerr
	}
	var prev [1]byte
	n, _ := f.ReadAt(prev[:], 0)
	host, _ := os.Hostname()
	data, _ := json.Marshal(LockInfo{PID: os.Getpid(), Host: host, Command: command, Since: now})
	if err := f.Truncate(0); err == nil {
		f.WriteAt(data, 0)
	}
	return &Lock{f: f, Stale: n > 0}, nil
}

// AcquireSharedLock takes the repository's lock for reading only, without
// waiting: readers exclude a writer (and a writer them) but not each
// other. It writes nothing, so it works on read-only media; a repository
// there without a lock file is opened without one (nothing can write it).
func AcquireSharedLock(dir string) (*Lock, error) {
	path := filepath.Join(dir, lockName)
	f, err := openLockFile(path, unix.O_RDONLY)
	if errors.Is(err, os.ErrNotExist) {
		return &Lock{shared: true}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		lerr := lockError(f, err)
		f.Close()
		return nil, lerr
	}
	return &Lock{f: f, shared: true}, nil
}

// openLockFile opens the lock file as what the repository made it: a
// regular file with one name. Whoever can plant <repo>/lock could
// otherwise make root's next command open (and, holding the lock,
// truncate and write) any file on the host through a symlink or a
// hardlink, or hang on a FIFO. So the open follows no symlink and does
// not block, nothing is truncated before the checks (and the flock)
// pass, and anything else is refused with a line saying what is there.
func openLockFile(path string, flags int) (*os.File, error) {
	fd, err := unix.Open(path, flags|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o600)
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("index: %s is a symlink, not a lock file; refusing to follow it (someone who can write the repository planted it?): %w", path, ErrInsecurePermissions)
	}
	if err != nil {
		return nil, fmt.Errorf("index: open lock: %w", &os.PathError{Op: "open", Path: path, Err: err})
	}
	f := os.NewFile(uintptr(fd), path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("index: lock: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 {
		f.Close()
		return nil, fmt.Errorf("index: %s is not a plain lock file (%s, %d links); refusing to use it: %w", path, fileKind(st.Mode), st.Nlink, ErrInsecurePermissions)
	}
	// O_NONBLOCK was only for the open (a FIFO planted there).
	if err := unix.SetNonblock(fd, false); err != nil {
		f.Close()
		return nil, fmt.Errorf("index: lock: %w", err)
	}
	return f, nil
}

func fileKind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "a regular file"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR, unix.S_IFBLK:
		return "a device"
	}
	return "a special file"
}

// lockError explains a refused flock: who holds it, as its file says.
func lockError(f *os.File, err error) error {
	if !errors.Is(err, unix.EWOULDBLOCK) {
		return fmt.Errorf("index: lock: %w", err)
	}
	var info LockInfo
	data := make([]byte, 4096)
	n, _ := f.ReadAt(data, 0)
	data = data[:n]
	if json.Unmarshal(data, &info) == nil && info.PID != 0 {
		return fmt.Errorf("%w by pid %d (%s) since %s", ErrLocked, info.PID, info.Command, info.Since.Local().Format(time.DateTime))
	}
	return ErrLocked
}

// Release drops the lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	if !l.shared {
		l.f.Truncate(0)
	}
	err := l.f.Close() // closing releases the flock
	l.f = nil
	return err
}
