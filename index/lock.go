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
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("index: open lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, lockError(path, err)
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
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return &Lock{shared: true}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("index: open lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, lockError(path, err)
	}
	return &Lock{f: f, shared: true}, nil
}

// lockError explains a refused flock: who holds it, as its file says.
func lockError(path string, err error) error {
	if !errors.Is(err, unix.EWOULDBLOCK) {
		return fmt.Errorf("index: lock: %w", err)
	}
	var info LockInfo
	data, _ := os.ReadFile(path)
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
