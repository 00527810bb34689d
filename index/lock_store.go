package index

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// StoreLock is a lock held in the store itself, for a repository that
// several hosts share (restic's lock files are the model): an object
// locks/<random> that says who holds it and its kind (LockKind):
//
//   - reader (a mount daemon, for its whole life): excludes nothing and
//     waits for nothing. A prune may delete packs under it; the reader
//     re-syncs its cache when a pack it reads is gone (snapshot's read
//     path), so a fleet whose every host mounts the bucket can still
//     prune.
//   - shared (snapshot, forget, restore, check, copy, and each command a
//     client hands to a mount daemon): excludes exclusive ones.
//   - exclusive (prune, repair): excludes shared and exclusive ones.
//
// A lock expires: its holder refreshes it every LockTimes.Refresh by
// putting a new object and deleting the old (a store can put-if-absent,
// not overwrite), and a lock not refreshed for LockTimes.Expiry is stale
// and ignored, so a host that died does not block the fleet. A lock of
// this host whose process is gone is stale at once. Taking a lock lists
// the locks, puts its own, and lists again: two hosts that race both see
// each other and both back off with ErrLocked.
//
// Limits: the expiry is judged by the taker's clock against the time
// written in the lock, so hosts' clocks must agree to well within Expiry;
// a holder paused longer than Expiry (SIGSTOP, a frozen VM) can find its
// lock ignored.
type StoreLock struct {
	s    Store
	info StoreLockInfo
	now  func() time.Time
	t    LockTimes

	// beside is the lock of this process a command's lock is taken next
	// to (Repo.LockCommand): it is not a conflict.
	beside *StoreLock
	// onRelease, when set, runs once as the lock is released, before its
	// object is deleted (Repo.LockCommand: the index objects a prune left
	// dead, and forgetting the lock).
	onRelease func() error

	mu   sync.Mutex
	name string
	// renewed is when the lock object now in the store was put.
	renewed time.Time
	stop    chan struct{}
	done    chan struct{}
}

// StoreLockInfo is the content of a lock object.
type StoreLockInfo struct {
	Host    string `json:"host"`
	PID     int    `json:"pid"`
	Command string `json:"command"`
	// Exclusive is kept beside Kind for binaries that know no Kind: they
	// take a reader lock for a shared one, which is safe (their prune
	// waits for it, as it did for a mount's shared lock).
	Exclusive bool `json:"exclusive"`
	// Kind is "reader", "shared" or "exclusive"; a lock without one is
	// shared or exclusive by Exclusive.
	Kind LockKind  `json:"kind,omitempty"`
	Time time.Time `json:"time"`
}

// LockKind is what a StoreLock excludes (see StoreLock).
type LockKind string

const (
	LockReader    LockKind = "reader"
	LockShared    LockKind = "shared"
	LockExclusive LockKind = "exclusive"
)

// kind is the lock's kind, for a lock object written before kinds too.
func (i StoreLockInfo) kind() LockKind {
	switch {
	case i.Kind != "":
		return i.Kind
	case i.Exclusive:
		return LockExclusive
	}
	return LockShared
}

// excludes reports whether a held lock of kind held stops one of kind
// want from being taken.
func excludes(held, want LockKind) bool {
	switch want {
	case LockReader:
		return false
	case LockShared:
		return held == LockExclusive
	}
	// Exclusive: any lock other than a reader's (an unknown kind, from a
	// newer binary, counts).
	return held != LockReader
}

// LockTimes tune StoreLock; zero fields take the defaults.
type LockTimes struct {
	// Refresh is how often a holder renews its lock (default 5 min).
	Refresh time.Duration
	// Expiry is how old a lock may be before others ignore it (default
	// 30 min).
	Expiry time.Duration
}

func (t LockTimes) withDefaults() LockTimes {
	if t.Refresh == 0 {
		t.Refresh = 5 * time.Minute
	}
	if t.Expiry == 0 {
		t.Expiry = 30 * time.Minute
	}
	return t
}

const locksPrefix = "locks/"

// AcquireStoreLock takes a shared (or exclusive) lock in s without
// waiting.
func AcquireStoreLock(s Store, exclusive bool, command string, now func() time.Time, t LockTimes) (*StoreLock, error) {
	kind := LockShared
	if exclusive {
		kind = LockExclusive
	}
	return AcquireStoreLockKind(s, kind, command, now, t)
}

// AcquireStoreLockKind takes a lock of kind in s without waiting.
func AcquireStoreLockKind(s Store, kind LockKind, command string, now func() time.Time, t LockTimes) (*StoreLock, error) {
	return acquireStoreLock(s, kind, command, now, t, nil)
}

// LockCommand takes a shared (or exclusive) lock in the store beside the
// lock the repository holds, for a command run inside a process that
// keeps the repository open under a reader lock (the mount daemon): a
// snapshot, forget or restore there shares, a prune or repair excludes,
// as each does on its own. Other hosts' locks conflict as for any lock of
// that kind; the repository's own does not. While it is held, what the
// repository commits checks it (checkLock). Release the returned lock
// when the command is done.
func (r *Repo) LockCommand(command string, exclusive bool) (*StoreLock, error) {
	if !r.remote || r.rlock == nil {
		return nil, fmt.Errorf("index: %s holds no store lock to go beside", r.Dir)
	}
	kind := LockShared
	if exclusive {
		kind = LockExclusive
	}
	l, err := acquireStoreLock(r.Store, kind, command, r.rlock.now, r.rlock.t, r.rlock)
	if err != nil {
		return nil, err
	}
	r.cmdLocksMu.Lock()
	if r.cmdLocks == nil {
		r.cmdLocks = map[*StoreLock]bool{}
	}
	r.cmdLocks[l] = true
	r.cmdLocksMu.Unlock()
	removed := r.packsRemoved.Load()
	l.onRelease = func() error {
		var err error
		if exclusive && r.packsRemoved.Load() > removed {
			// Still under the exclusive lock: what Close does after a
			// prune run on its own (the daemon may never close).
			if err = r.FlushIndexObject(); err == nil {
				err = r.dropDeadIndexObjects()
			}
		}
		r.cmdLocksMu.Lock()
		delete(r.cmdLocks, l)
		r.cmdLocksMu.Unlock()
		return err
	}
	return l, nil
}

// checkLock reports ErrLocked when what the repository would commit or
// delete in the store is not covered by a live lock of its own: the
// repository's lock (StoreLock.Check), or, when that is a reader's (a
// mount daemon), the command locks taken beside it (LockCommand). A
// reader lock alone commits nothing: a prune of another host may run
// under it.
func (r *Repo) checkLock() error {
	if r.rlock == nil || r.rlock.info.kind() != LockReader {
		return r.rlock.Check()
	}
	r.cmdLocksMu.Lock()
	defer r.cmdLocksMu.Unlock()
	if len(r.cmdLocks) == 0 {
		return fmt.Errorf("%w: this process holds only a reader lock on %s; nothing is committed without a shared one", ErrLocked, r.Dir)
	}
	for l := range r.cmdLocks {
		if err := l.Check(); err != nil {
			return err
		}
	}
	return nil
}

func acquireStoreLock(s Store, kind LockKind, command string, now func() time.Time, t LockTimes, beside *StoreLock) (*StoreLock, error) {
	host, _ := os.Hostname()
	l := &StoreLock{s: s, now: now, t: t.withDefaults(), beside: beside,
		info: StoreLockInfo{Host: host, PID: os.Getpid(), Command: command, Exclusive: kind == LockExclusive, Kind: kind}}
	if err := l.conflict(); err != nil {
		return nil, err
	}
	name, err := l.put()
	if err != nil {
		return nil, err
	}
	l.name, l.renewed = name, now()
	if err := l.conflict(); err != nil {
		s.Delete(name)
		return nil, err
	}
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	go l.refresher()
	return l, nil
}

func (l *StoreLock) put() (string, error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", err
	}
	name := locksPrefix + hex.EncodeToString(id[:])
	info := l.info
	info.Time = l.now().UTC()
	data, _ := json.Marshal(info)
	if err := l.s.Put(name, data); err != nil {
		return "", fmt.Errorf("index: take the repository lock: %w", err)
	}
	return name, nil
}

// conflict lists the locks and reports one that excludes ours.
func (l *StoreLock) conflict() error {
	var names []string
	if err := l.s.List(locksPrefix, func(name string, _ int64) error {
		names = append(names, name)
		return nil
	}); err != nil {
		return fmt.Errorf("index: list locks: %w", err)
	}
	for _, name := range names {
		if name == l.name {
			continue
		}
		info, err := readStoreLock(l.s, name)
		if err != nil {
			continue // deleted meanwhile (a refresh), or not ours to judge
		}
		if l.stale(info) || !excludes(info.kind(), l.info.kind()) {
			continue
		}
		if b := l.beside; b != nil && info.Host == l.info.Host && info.PID == l.info.PID && info.kind() == b.info.kind() && info.Command == b.info.Command {
			// Our own repository's lock (under whichever name its
			// last refresh gave it).
			continue
		}
		return fmt.Errorf("%w: %s (pid %d on %s, since %s, lock %s)", ErrLocked, info.Command, info.PID, info.Host,
			info.Time.Local().Format(time.RFC3339), strings.TrimPrefix(name, locksPrefix)[:8])
	}
	return nil
}

func (l *StoreLock) stale(info StoreLockInfo) bool {
	if l.now().Sub(info.Time) > l.t.Expiry {
		return true
	}
	if info.Host == l.info.Host && info.PID != l.info.PID {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", info.PID)); os.IsNotExist(err) {
			return true
		}
	}
	return false
}

func readStoreLock(s Store, name string) (StoreLockInfo, error) {
	var info StoreLockInfo
	size, err := s.Stat(name)
	if err != nil {
		return info, err
	}
	if size > 4096 {
		return info, fmt.Errorf("lock %s too big", name)
	}
	b, err := s.ReadRange(name, 0, int(size), nil)
	if err != nil {
		return info, err
	}
	return info, json.Unmarshal(b, &info)
}

func (l *StoreLock) refresher() {
	defer close(l.done)
	tick := time.NewTicker(l.t.Refresh)
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
			l.Refresh()
		}
	}
}

// Refresh renews the lock: a new object, then the old one deleted.
func (l *StoreLock) Refresh() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.now()
	if l.lost(t) && l.info.kind() != LockReader {
		// Others may have taken the lock as stale (and a prune may have
		// run): renewing it now would let this process commit against
		// what that prune deleted. It stays lost; Check refuses.
		return fmt.Errorf("%w: the lock was not refreshed for %s and may have been taken as stale; not renewed", ErrLocked, t.Sub(l.renewed).Round(time.Second))
	}
	name, err := l.put()
	if err != nil {
		return err
	}
	old := l.name
	l.name, l.renewed = name, t
	l.s.Delete(old)
	return nil
}

// Check reports ErrLocked once the lock may look stale to others: its
// refreshes failed (the store unreachable, the lock deleted) for longer
// than Expiry less one Refresh. What would commit or delete must stop
// then: another host's prune may be running.
func (l *StoreLock) Check() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := l.now(); l.lost(now) {
		age := now.Sub(l.renewed)
		return fmt.Errorf("%w: this process could not refresh its lock in the store for %s (others may take it as stale); nothing more is committed",
			ErrLocked, age.Round(time.Second))
	}
	return nil
}

// lost reports whether the lock object in the store is old enough, at
// now, that others may take it as stale: Expiry less one Refresh (for
// the clocks' sake) since it was put.
func (l *StoreLock) lost(now time.Time) bool { return now.Sub(l.renewed) > l.t.Expiry-l.t.Refresh }

// Release deletes the lock object. A nil lock releases nothing.
func (l *StoreLock) Release() error {
	if l == nil {
		return nil
	}
	if l.stop != nil {
		close(l.stop)
		<-l.done
		l.stop = nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var herr error
	if l.onRelease != nil {
		herr = l.onRelease()
		l.onRelease = nil
	}
	if l.name == "" {
		return herr
	}
	err := l.s.Delete(l.name)
	l.name = ""
	if err != nil {
		return fmt.Errorf("index: release the repository lock: %w", err)
	}
	return herr
}
