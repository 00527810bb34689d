package fsadapter

import (
	"context"
	"errors"
	iofs "io/fs"
	"sync"
	"time"

	"citadelfs/snapshot"
)

// maxCorruptFiles bounds the distinct paths an CorruptReadRecord
// remembers: a repository that rots wholesale must not grow the daemon.
const maxCorruptFiles = 1024

// maxCorruptError bounds the error text kept for the alert message.
const maxCorruptError = 300

// CorruptReadRecord counts the mount's reads that failed verification
// (snapshot.ErrCorrupt), for the monitor's backup_corrupt alert. It is the
// mount's fs.Options.OnError, called on the FUSE request's goroutine, so it
// only takes a short lock, and writes to the repository only on the first
// read of each damaged file (and at most once a minute besides): the
// record survives a restart of the daemon.
type CorruptReadRecord struct {
	clock func() time.Time
	store CorruptReadStore // nil: memory only

	mu       sync.Mutex
	reads    uint64
	base     int                 // distinct files counted by earlier daemons
	files    map[string]struct{} // distinct paths, at most maxCorruptFiles
	capped   bool                // a path was not added for the bound
	lastTime time.Time
	lastPath string
	lastErr  string
	saved    time.Time // when the record was last written to store
}

// CorruptReadStore is where an CorruptReadRecord keeps its counts (the
// repository).
type CorruptReadStore interface {
	SaveCorruptReads(snapshot.CorruptReads) error
	LoadCorruptReads() (*snapshot.CorruptReads, error)
}

// corruptSaveEvery is how often repeated corrupt reads of files already
// recorded update the stored record (its count and last time).
const corruptSaveEvery = time.Minute

// NewCorruptReadRecord starts from what store recorded (nil store: from
// nothing, in memory only).
func NewCorruptReadRecord(clock func() time.Time, store CorruptReadStore) *CorruptReadRecord {
	if clock == nil {
		clock = time.Now
	}
	r := &CorruptReadRecord{clock: clock, store: store, files: map[string]struct{}{}}
	if store != nil {
		if c, err := store.LoadCorruptReads(); err == nil && c != nil {
			r.reads, r.base, r.capped = c.Reads, c.Files, c.Capped
			r.lastTime, r.lastPath, r.lastErr = c.LastTime, c.LastPath, c.LastError
			r.saved = r.clock()
		}
	}
	return r
}

// onError records err if it says the repository's data is corrupt. Other
// failures (a missing name, a cancelled read, a disk I/O error) are not
// about the backup's integrity and are only logged, by fs.
func (r *CorruptReadRecord) OnError(path string, err error) {
	if !errors.Is(err, snapshot.ErrCorrupt) || errors.Is(err, iofs.ErrNotExist) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return
	}
	msg := snapshot.OneLine(err.Error(), maxCorruptError)
	now := r.clock()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reads++
	save := now.Sub(r.saved) >= corruptSaveEvery
	if _, ok := r.files[path]; !ok {
		if len(r.files) < maxCorruptFiles {
			r.files[path] = struct{}{}
			save = true
		} else if !r.capped {
			r.capped, save = true, true
		}
	}
	r.lastTime, r.lastPath, r.lastErr = now, path, msg
	if save && r.store != nil {
		// Under the lock, so that an older count never overwrites a
		// newer one; this runs once per damaged file.
		if r.store.SaveCorruptReads(r.recordLocked()) == nil {
			r.saved = now
		}
	}
}

func (r *CorruptReadRecord) recordLocked() snapshot.CorruptReads {
	return snapshot.CorruptReads{Reads: r.reads, Files: r.base + len(r.files), Capped: r.capped,
		LastTime: r.lastTime, LastPath: r.lastPath, LastError: r.lastErr}
}

// reset forgets every corrupt read: a full check --read-data has just
// found every chunk sound (and removed the stored record).
func (r *CorruptReadRecord) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reads, r.base, r.capped = 0, 0, false
	r.files = map[string]struct{}{}
	r.lastTime, r.lastPath, r.lastErr = time.Time{}, "", ""
}

// state is a copy of the record (as it is stored) for the monitor.
func (r *CorruptReadRecord) State() *snapshot.CorruptReads {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.recordLocked()
	return &c
}
