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
// locks/<random> that says who holds it, shared (snapshot, forget,
// restore, mount) or exclusive (prune, repair). A shared lock excludes
// only exclusive ones.
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

	// beside is the lock of this process an exclusive lock is taken next
	// to (Repo.LockExclusive): it is not a conflict.
	beside *StoreLock

	mu   sync.Mutex
	name string
	// renewed is when the lock object now in the store was put.
	renewed time.Time
	stop    chan struct{}
	done    chan struct{}
}

// StoreLockInfo is the content of a lock object.
type StoreLockInfo struct {
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Command   string    `json:"command"`
	Exclusive bool      `json:"exclusive"`
	Time      time.Time `json:"time"`
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

// AcquireStoreLock takes a lock in s without waiting.
func AcquireStoreLock(s Store, exclusive bool, command string, now func() time.Time, t LockTimes) (*StoreLock, error) {
	return acquireStoreLock(s, exclusive, command, now, t, nil)
}

// LockExclusive takes an exclusive lock in the store beside the shared one
// the repository holds, for a prune or repair run inside a process that
// keeps the repository open (the mount daemon). Other hosts' locks
// conflict as for any exclusive lock; the repository's own shared lock
// does not. Release the returned lock when the command is done.
func (r *Repo) LockExclusive(command string) (*StoreLock, error) {
	if !r.remote || r.rlock == nil {
		return nil, fmt.Errorf("index: %s holds no store lock to go beside", r.Dir)
	}
	return acquireStoreLock(r.Store, true, command, r.rlock.now, r.rlock.t, r.rlock)
}

func acquireStoreLock(s Store, exclusive bool, command string, now func() time.Time, t LockTimes, beside *StoreLock) (*StoreLock, error) {
	host, _ := os.Hostname()
	l := &StoreLock{s: s, now: now, t: t.withDefaults(), beside: beside,
		info: StoreLockInfo{Host: host, PID: os.Getpid(), Command: command, Exclusive: exclusive}}
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
		if l.stale(info) || !info.Exclusive && !l.info.Exclusive {
			continue
		}
		if l.beside != nil && info.Host == l.info.Host && info.PID == l.info.PID && !info.Exclusive {
			// Our own shared lock (under whichever name its last
			// refresh gave it).
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
	if l.lost(t) {
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
	if l.name == "" {
		return nil
	}
	err := l.s.Delete(l.name)
	l.name = ""
	if err != nil {
		return fmt.Errorf("index: release the repository lock: %w", err)
	}
	return nil
}
