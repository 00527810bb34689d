package index

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Store decorators wrap any Store (kopia's repo/blob has the same shape):
// ReadOnlyStore refuses every write; FaultyStore injects failures for
// tests of the paths a real disk or bucket takes only on a bad day.

// ReadOnlyStore passes reads through and refuses writes with
// ErrReadOnlyStore, so nothing that holds it can change the repository.
type ReadOnlyStore struct{ Store }

// NewReadOnlyStore wraps s.
func NewReadOnlyStore(s Store) Store { return ReadOnlyStore{s} }

// Unwrap is the store under the decorator (StoreInfo looks through it).
func (s ReadOnlyStore) Unwrap() Store { return s.Store }

func (s ReadOnlyStore) Put(name string, _ []byte) error {
	return fmt.Errorf("index: put %s: %w", name, ErrReadOnlyStore)
}
func (s ReadOnlyStore) Create() (ObjectWriter, error) {
	return nil, fmt.Errorf("index: new pack: %w", ErrReadOnlyStore)
}
func (s ReadOnlyStore) Delete(name string) error {
	return fmt.Errorf("index: delete %s: %w", name, ErrReadOnlyStore)
}

// Store operations a Fault can name.
const (
	OpPut    = "put"
	OpCreate = "create"
	OpWrite  = "write" // one ObjectWriter.Write
	OpCommit = "commit"
	OpRead   = "read"
	OpStat   = "stat"
	OpList   = "list"
	OpDelete = "delete"
)

// Fault says what FaultyStore does to one call (or, Sticky, every call
// from then on) of an operation.
type Fault struct {
	Op string
	// Nth is the 1-based count of calls of Op (with Prefix) it hits.
	Nth int
	// Sticky keeps failing every later call too (a disk that stays
	// full).
	Sticky bool
	// Prefix limits the fault to object names starting with it (""
	// for all; Create and Write have no name until Commit).
	Prefix string
	// Err is returned instead of doing the call (syscall.ENOSPC,
	// syscall.EIO, ...). With Short, a write writes half of its buffer
	// first and then reports Err (with no Err, a short count alone).
	Err   error
	Short bool
	// Delay sleeps before the call (and before Err, if any).
	Delay time.Duration
	// Corrupt flips one byte in what a read returns, with no error: the
	// store handing back wrong bytes, which the hash checks must catch.
	// On a write it flips one byte of what is written (the byte in the
	// middle of the buffer), after the writer hashed it: a disk or
	// controller storing wrong bytes, which verify-after-backup must catch.
	Corrupt bool
}

// FaultyStore is a Store that injects Faults into the calls it passes on.
// It is safe for concurrent use.
type FaultyStore struct {
	Store
	mu     sync.Mutex
	faults []Fault
	calls  map[string]int // per Fault index: matching calls so far
	total  map[string]int // per op
}

// NewFaultyStore wraps s with faults.
func NewFaultyStore(s Store, faults ...Fault) *FaultyStore {
	return &FaultyStore{Store: s, faults: faults, calls: map[string]int{}, total: map[string]int{}}
}

// SetFaults replaces the faults and restarts their counts.
func (f *FaultyStore) SetFaults(faults ...Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults, f.calls = faults, map[string]int{}
}

// Calls is how many calls of op the store has seen.
func (f *FaultyStore) Calls(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.total[op]
}

// hit counts a call and returns the fault it triggers, if any.
func (f *FaultyStore) hit(op, name string) *Fault {
	f.mu.Lock()
	f.total[op]++
	var got *Fault
	for i := range f.faults {
		ft := &f.faults[i]
		if ft.Op != op || !strings.HasPrefix(name, ft.Prefix) {
			continue
		}
		k := fmt.Sprint(i)
		f.calls[k]++
		n := f.calls[k]
		if got == nil && (n == ft.Nth || ft.Sticky && n > ft.Nth) {
			got = ft
		}
	}
	f.mu.Unlock()
	if got != nil && got.Delay > 0 {
		time.Sleep(got.Delay)
	}
	return got
}

// Unwrap is the store under the decorator (StoreInfo looks through it).
func (f *FaultyStore) Unwrap() Store { return f.Store }

func (f *FaultyStore) Put(name string, data []byte) error {
	if ft := f.hit(OpPut, name); ft != nil && ft.Err != nil {
		return fmt.Errorf("index: put %s: %w", name, ft.Err)
	}
	return f.Store.Put(name, data)
}

func (f *FaultyStore) Create() (ObjectWriter, error) {
	if ft := f.hit(OpCreate, ""); ft != nil && ft.Err != nil {
		return nil, fmt.Errorf("index: new pack: %w", ft.Err)
	}
	w, err := f.Store.Create()
	if err != nil {
		return nil, err
	}
	return &faultyWriter{ObjectWriter: w, f: f}, nil
}

func (f *FaultyStore) ReadRange(name string, off int64, n int, buf []byte) ([]byte, error) {
	ft := f.hit(OpRead, name)
	if ft != nil && ft.Err != nil {
		return nil, ft.Err
	}
	b, err := f.Store.ReadRange(name, off, n, buf)
	if err == nil && ft != nil && ft.Corrupt && len(b) > 0 {
		b[len(b)/2] ^= 0x40
	}
	return b, err
}

func (f *FaultyStore) Stat(name string) (int64, error) {
	if ft := f.hit(OpStat, name); ft != nil && ft.Err != nil {
		return 0, ft.Err
	}
	return f.Store.Stat(name)
}

func (f *FaultyStore) List(prefix string, fn func(string, int64) error) error {
	if ft := f.hit(OpList, prefix); ft != nil && ft.Err != nil {
		return ft.Err
	}
	return f.Store.List(prefix, fn)
}

func (f *FaultyStore) Delete(name string) error {
	if ft := f.hit(OpDelete, name); ft != nil && ft.Err != nil {
		return ft.Err
	}
	return f.Store.Delete(name)
}

type faultyWriter struct {
	ObjectWriter
	f *FaultyStore
}

func (w *faultyWriter) Write(b []byte) (int, error) {
	ft := w.f.hit(OpWrite, "")
	if ft != nil && ft.Corrupt && len(b) > 0 {
		// In place, so an aligned (O_DIRECT) buffer stays aligned; put
		// back afterwards, as the caller may reuse it.
		b[len(b)/2] ^= 0x40
		n, err := w.ObjectWriter.Write(b)
		b[len(b)/2] ^= 0x40
		return n, err
	}
	if ft == nil || ft.Err == nil && !ft.Short {
		return w.ObjectWriter.Write(b)
	}
	if ft.Short {
		half := len(b) / 2
		if a := w.ObjectWriter.Align(); a > 0 {
			half -= half % a
		}
		n, err := w.ObjectWriter.Write(b[:half])
		if err != nil {
			return n, err
		}
		return n, ft.Err
	}
	return 0, ft.Err
}

func (w *faultyWriter) Commit(name string, size int64) error {
	if ft := w.f.hit(OpCommit, name); ft != nil && ft.Err != nil {
		w.ObjectWriter.Abort()
		return fmt.Errorf("index: commit %s: %w", name, ft.Err)
	}
	return w.ObjectWriter.Commit(name, size)
}

// CountingStore counts the reads that reach the store it wraps, and
// their bytes: how tests see what a read of a remote repository fetched
// (a small file's read must not fetch a whole pack; a cached blob is not
// fetched again). It is safe for concurrent use.
type CountingStore struct {
	Store
	reads, bytes        atomic.Int64
	inFlight, maxFlight atomic.Int64
}

// NewCountingStore wraps s.
func NewCountingStore(s Store) *CountingStore { return &CountingStore{Store: s} }

func (c *CountingStore) ReadRange(name string, off int64, n int, buf []byte) ([]byte, error) {
	now := c.inFlight.Add(1)
	for m := c.maxFlight.Load(); now > m && !c.maxFlight.CompareAndSwap(m, now); m = c.maxFlight.Load() {
	}
	b, err := c.Store.ReadRange(name, off, n, buf)
	c.inFlight.Add(-1)
	c.reads.Add(1)
	c.bytes.Add(int64(len(b)))
	return b, err
}

// Reads returns the reads so far and the bytes they returned.
func (c *CountingStore) Reads() (calls, bytes int64) { return c.reads.Load(), c.bytes.Load() }

// MaxInFlight is the most reads that were in progress at once.
func (c *CountingStore) MaxInFlight() int64 { return c.maxFlight.Load() }

// Reset sets the counts back to zero.
func (c *CountingStore) Reset() { c.reads.Store(0); c.bytes.Store(0); c.maxFlight.Store(0) }
