package index

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// The reserve is <repo>/reserve, a file of allocated blocks the repository
// keeps on its own disk so that a full disk can always be recovered with
// citadelfs's own commands (borg's additional_free_space does the same).
//
// Why it is needed: opening Pebble replays its write-ahead log into a new
// table, and forget and prune write index batches before they delete a
// byte. On a disk with no room left (a snapshot failed half way, or
// something else filled the disk) every writer used to fail at open,
// prune included, and the repository stayed wedged until a person freed
// space by hand.
//
// How it works:
//   - its apparent size (st_size) is its configured size, and whether it
//     is held is whether its blocks are allocated (st_blocks): no other
//     state is kept, so `truncate -s` changes the size and a zero-length
//     file turns it off;
//   - Open allocates it when it is absent or released and there is room;
//   - a writer whose Pebble open (or anything before it) fails with ENOSPC
//     releases it (the blocks go back, the size stays) and tries again, so
//     that forget and prune can always open and free space;
//   - while it cannot be held, EnsureReserve fails with ErrDiskFull: a
//     snapshot refuses to start rather than eat the room forget and prune
//     need;
//   - Close holds it again once there is room (after a prune freed some).
//
// Released by punching the blocks out (truncate to 0, then back to the
// size, which works on every file system) and held again with
// fallocate(2), or zeros written where fallocate is not supported.
const reserveName = "reserve"

// DefaultReserve is the reserve's size when a repository has none yet:
// enough for Pebble to flush a full memtable (8 MiB) and write the
// manifest and index batches of a prune. On a small file system it is a
// sixteenth of its size instead (a 16 MiB test tmpfs keeps 1 MiB).
const DefaultReserve = 16 << 20

// defaultReserve is DefaultReserve, or a sixteenth of the file system
// holding dir when that is less.
func defaultReserve(dir string) int64 {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil {
		if fs := int64(st.Blocks) * int64(st.Bsize) / 16; fs > 0 && fs < DefaultReserve {
			return fs &^ 4095
		}
	}
	return DefaultReserve
}

// ErrDiskFull: the repository's disk has no room left, not even for the
// reserve. Commands that free space (forget, prune) still run.
var ErrDiskFull = errors.New("disk full")

// IsDiskFull says whether err is a file system out of space or quota.
func IsDiskFull(err error) bool {
	return errors.Is(err, ErrDiskFull) || errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT)
}

// reserveState reads the reserve: its configured size, and whether its
// blocks are allocated. An absent reserve reports exists=false.
func reserveState(dir string) (size int64, held, exists bool, err error) {
	var st unix.Stat_t
	err = unix.Lstat(filepath.Join(dir, reserveName), &st)
	if errors.Is(err, unix.ENOENT) {
		return 0, false, false, nil
	}
	if err != nil {
		return 0, false, false, fmt.Errorf("index: reserve: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0, false, false, fmt.Errorf("index: %s is not a regular file: %w", filepath.Join(dir, reserveName), ErrCorrupt)
	}
	return st.Size, st.Blocks*512 >= st.Size, true, nil
}

// holdReserve allocates the reserve's blocks, creating it with size
// bytes when absent (a negative size: defaultReserve). A disk too full for it returns an error wrapping
// ErrDiskFull and leaves the reserve released (never half held: a half
// held reserve would read as released and be counted whole when given
// back).
func holdReserve(dir string, size int64) error {
	cur, held, exists, err := reserveState(dir)
	if err != nil {
		return err
	}
	if exists {
		size = cur
	} else if size < 0 {
		size = defaultReserve(dir)
	}
	if held || size <= 0 {
		return nil
	}
	path := filepath.Join(dir, reserveName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("index: reserve: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("index: reserve: %w", err)
	}
	err = unix.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		err = writeZeros(f, size)
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		punch(f, size)
		if IsDiskFull(err) {
			return fmt.Errorf("index: the repository's disk has no room for its %s reserve (%s): %w", fmtMiB(size), filepath.Dir(path), ErrDiskFull)
		}
		return fmt.Errorf("index: reserve: %w", err)
	}
	if !exists {
		syncDir(dir)
	}
	return nil
}

// releaseReserve gives the reserve's blocks back to the file system,
// keeping its size. It returns the bytes freed (0 when it was not held).
func releaseReserve(dir string) (int64, error) {
	size, held, exists, err := reserveState(dir)
	if err != nil || !exists || !held || size == 0 {
		return 0, err
	}
	f, err := os.OpenFile(filepath.Join(dir, reserveName), os.O_WRONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return 0, fmt.Errorf("index: release reserve: %w", err)
	}
	defer f.Close()
	if err := punch(f, size); err != nil {
		return 0, fmt.Errorf("index: release reserve: %w", err)
	}
	return size, nil
}

// punch frees every block of f and keeps its size (a sparse file). A
// truncation needs no free space, unlike most other ways.
func punch(f *os.File, size int64) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	return f.Truncate(size)
}

func writeZeros(f *os.File, size int64) error {
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		n := min(int64(len(buf)), size-off)
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return err
		}
	}
	return nil
}

func fmtMiB(n int64) string { return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20)) }

// lowOnSpace says whether the file system holding dir has less room left
// than the reserve holds (or under 1 MiB): the disk is full for
// citadelfs's purposes.
func lowOnSpace(dir string) bool {
	size, held, exists, err := reserveState(dir)
	if err != nil || !exists || !held || size == 0 {
		return false
	}
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return false
	}
	return int64(st.Bavail)*int64(st.Bsize) < max(size, 1<<20)
}

// MakeRoom gives the reserve back when the disk is low on space, for what
// frees space (forget, prune) and must write its index batches first. It
// returns the bytes freed. EnsureReserve (or Close) holds it again.
func (r *Repo) MakeRoom() int64 {
	if r.readOnly || !lowOnSpace(r.Dir) {
		return 0
	}
	n, _ := r.ReleaseReserve()
	return n
}

// EnsureReserve holds the reserve, allocating it if it is released or
// absent. It fails with an error wrapping ErrDiskFull when the disk has no
// room for it: what would write new data must not start then (see
// reserveName). Read-only repositories have nothing to hold.
func (r *Repo) EnsureReserve() error {
	if r.readOnly || r.remote { // a store has no reserve file
		return nil
	}
	r.reserveMu.Lock()
	defer r.reserveMu.Unlock()
	return holdReserve(r.Dir, r.reserveSize)
}

// ReleaseReserve gives the reserve's blocks back so that what must run on
// a full disk (Pebble's flush at close, forget, prune) has room. Close
// holds it again once there is room. It returns the bytes freed.
func (r *Repo) ReleaseReserve() (int64, error) {
	if r.readOnly || r.remote {
		return 0, nil
	}
	r.reserveMu.Lock()
	defer r.reserveMu.Unlock()
	n, err := releaseReserve(r.Dir)
	if n > 0 {
		r.reserveReleased = true
	}
	return n, err
}

// closeReserve runs before Pebble closes: space may be back (a prune freed
// some), so the reserve is held again. When it cannot be, Pebble's log is
// flushed into a table now, while there is room: the next open then has
// no log to replay, which on a disk that fills up meanwhile it could not
// write.
func (r *Repo) closeReserve() {
	r.reserveMu.Lock()
	defer r.reserveMu.Unlock()
	if holdReserve(r.Dir, r.reserveSize) == nil {
		return
	}
	if err := r.KV.enter(); err == nil {
		// Bounded: a flush that finds no room either is retried by
		// Pebble in the background, and Close must not wait on it.
		if done, err := r.KV.db.AsyncFlush(); err == nil {
			select {
			case <-done:
			case <-time.After(flushAtCloseGrace):
			}
		}
		r.KV.leave()
	}
}

// flushAtCloseGrace bounds closeReserve's wait for Pebble's flush.
const flushAtCloseGrace = 3 * time.Second

// ReserveReleased says whether this process released the reserve (at
// open, or through ReleaseReserve).
func (r *Repo) ReserveReleased() bool {
	r.reserveMu.Lock()
	defer r.reserveMu.Unlock()
	return r.reserveReleased
}

// ReserveInfo is for status: the reserve's size and whether it is held.
func ReserveInfo(dir string) (size int64, held bool, err error) {
	size, held, exists, err := reserveState(dir)
	if !exists {
		return 0, false, err
	}
	return size, held, err
}
