package index

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/sstable"
	"github.com/cockroachdb/pebble/vfs"
)

// KV is the Pebble database under <repo>/index (or a monitor's own history
// directory). It is a thin, typed face over Pebble so that callers above the
// index package never import Pebble: keys and values are plain byte slices
// and every write that must survive a crash says so with Sync.
type KV struct {
	db       *pebble.DB
	dir      string
	readOnly bool
	// h is what Pebble reported in the background (kvhealth.go); every
	// write is bounded by stallTimeout and gives up when interrupt closes.
	h            *kvHealth
	stallTimeout time.Duration
	interrupt    atomic.Pointer[<-chan struct{}]
	// closed fences off calls made after Close (a command outliving the
	// daemon's shutdown grace, a read racing the stop): they get ErrClosed
	// instead of a nil Pebble. active counts calls in progress, which
	// Close waits for.
	closed atomic.Bool
	active atomic.Int64
	// opened is closed when OpenKV returns (db set, or the open failed):
	// a background error Pebble reports during its own open (a
	// compaction over a damaged table) must not use db before.
	opened chan struct{}
}

// ErrNotFound is returned by Get when a key is absent.
var ErrNotFound = errors.New("index: not found")

// ErrClosed is returned by every call on a KV after Close.
var ErrClosed = errors.New("index: repository closed")

// enter admits a call, or says the KV is closed. Calls nest (a Scan's
// callback may Get), which a lock would deadlock on while Close waits.
func (kv *KV) enter() error {
	kv.active.Add(1)
	if kv.closed.Load() {
		kv.active.Add(-1)
		return ErrClosed
	}
	return nil
}

func (kv *KV) leave() { kv.active.Add(-1) }

// KVOptions tunes the Pebble instance.
type KVOptions struct {
	// CacheBytes is Pebble's block cache size. Default 16 MiB: the index is
	// small (tens of bytes per chunk) and memory is the scarcer resource on
	// a GPU server whose RAM belongs to the models.
	CacheBytes int64
	// ReadOnly opens without taking Pebble's write lock. Default false.
	ReadOnly bool
	// MustExist refuses to create a database: a repository's index that
	// is missing is damage (see Open), not a fresh start.
	MustExist bool
	// SkipPebbleLock, with ReadOnly, does not take Pebble's own LOCK
	// file, for a caller that holds a lock of its own which keeps writers
	// out (the repository's shared flock, see readOnlyFS).
	SkipPebbleLock bool
	// StallTimeout bounds one write (see kvhealth.go). Default
	// DefaultStallTimeout.
	StallTimeout time.Duration
	// Logf receives the one line logged about a background failure.
	// Default: standard error, prefixed "citadelfs: ".
	Logf func(string)
	// tune adjusts Pebble's options (tests: small thresholds).
	tune func(*pebble.Options)
}

func (o KVOptions) withDefaults() KVOptions {
	if o.CacheBytes == 0 {
		o.CacheBytes = 16 << 20
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = DefaultStallTimeout
	}
	return o
}

// OpenKV opens (creating if needed) the Pebble database in dir.
func OpenKV(dir string, o KVOptions) (*KV, error) {
	o = o.withDefaults()
	cache := pebble.NewCache(o.CacheBytes)
	defer cache.Unref()
	kv := &KV{dir: dir, readOnly: o.ReadOnly, h: newKVHealth(o.Logf), stallTimeout: o.StallTimeout, opened: make(chan struct{})}
	defer close(kv.opened)
	var err error
	opts := &pebble.Options{
		Cache:            cache,
		MemTableSize:     8 << 20,
		ReadOnly:         o.ReadOnly,
		ErrorIfNotExists: o.MustExist,
		Logger:           pebbleLogger{kv.h},
		EventListener:    kv.eventListener(),
	}
	if o.ReadOnly && o.SkipPebbleLock {
		opts.FS = readOnlyFS{vfs.Default}
	}
	if o.tune != nil {
		o.tune(opts)
	}
	// Open replays the WAL and may write (a flush, a new MANIFEST): if
	// Pebble gives up meanwhile, its goroutine parks in Fatalf and the
	// open returns the error instead.
	type opened struct {
		db  *pebble.DB
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		db, err := pebble.Open(dir, opts)
		ch <- opened{db, err}
	}()
	var db *pebble.DB
	select {
	case r := <-ch:
		db, err = r.db, r.err
	case <-kv.h.down:
		return nil, kv.h.fatalErr()
	}
	if errors.Is(err, pebble.ErrDBDoesNotExist) {
		// MustExist: an index directory with no database in it.
		return nil, fmt.Errorf("index: open pebble %s: %w", dir, fs.ErrNotExist)
	}
	if err != nil {
		if !isSystemError(err) {
			// Not the disk or the system saying no (a full disk, a
			// permission): Pebble could not make sense of its own files
			// (a MANIFEST, OPTIONS or CURRENT that does not parse).
			return nil, corruptErr("open pebble "+dir, err)
		}
		return nil, kvErr("open pebble "+dir, err)
	}
	kv.db = db
	return kv, nil
}

// Close waits for calls in progress, then closes the database. Calls
// after it fail with ErrClosed. After Pebble gave up, or with a write
// abandoned inside it, the database is left as it is (closing it would
// wait on that write); everything synced is on disk either way.
func (kv *KV) Close() error {
	if kv == nil || kv.closed.Swap(true) {
		return nil
	}
	for kv.active.Load() > 0 {
		time.Sleep(time.Millisecond)
	}
	if err := kv.h.fatalErr(); err != nil {
		return err
	}
	if err := kv.h.writeErr(); err != nil && kv.h.inflight.Load() > 0 {
		return err
	}
	done := make(chan error, 1)
	go func() {
		done <- kv.db.Close()
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("index: close: %w", err)
		}
		return nil
	case <-kv.h.down:
		return kv.h.fatalErr()
	case <-time.After(kv.stallTimeout):
		return fmt.Errorf("index: close did not finish in %s (a flush or compaction is not finishing); everything synced is on disk", kv.stallTimeout)
	}
}

// Get returns a copy of the value stored at key, or ErrNotFound.
func (kv *KV) Get(key []byte) ([]byte, error) {
	if err := kv.enter(); err != nil {
		return nil, err
	}
	defer kv.leave()
	v, closer, err := kv.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, kvErr("get", err)
	}
	out := bytes.Clone(v)
	closer.Close()
	return out, nil
}

// Has reports whether key is present.
func (kv *KV) Has(key []byte) (bool, error) {
	if err := kv.enter(); err != nil {
		return false, err
	}
	defer kv.leave()
	_, closer, err := kv.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, kvErr("get", err)
	}
	closer.Close()
	return true, nil
}

// Put stores key=value. sync makes the write durable before returning.
func (kv *KV) Put(key, value []byte, sync bool) error {
	if err := kv.enter(); err != nil {
		return err
	}
	defer kv.leave()
	b := kv.db.NewBatch()
	_ = b.Set(key, value, nil)
	return kv.write(b, sync)
}

// Delete removes key.
func (kv *KV) Delete(key []byte, sync bool) error {
	if err := kv.enter(); err != nil {
		return err
	}
	defer kv.leave()
	b := kv.db.NewBatch()
	_ = b.Delete(key, nil)
	return kv.write(b, sync)
}

// DeleteRange removes every key in [start, end) with one range tombstone, so
// trimming history costs the same whatever its size.
func (kv *KV) DeleteRange(start, end []byte, sync bool) error {
	if err := kv.enter(); err != nil {
		return err
	}
	defer kv.leave()
	b := kv.db.NewBatch()
	_ = b.DeleteRange(start, end, nil)
	return kv.write(b, sync)
}

// Scan calls fn for every key in [lower, upper) in order. The slices passed
// to fn are only valid during the call. Returning io.EOF from fn stops the
// scan without error.
func (kv *KV) Scan(lower, upper []byte, fn func(key, value []byte) error) error {
	if err := kv.enter(); err != nil {
		return err
	}
	defer kv.leave()
	it, err := kv.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return kvErr("scan", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			it.Close()
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
	if err := it.Close(); err != nil {
		return kvErr("scan", err)
	}
	return nil
}

// ScanReverse is Scan from the last key down.
func (kv *KV) ScanReverse(lower, upper []byte, fn func(key, value []byte) error) error {
	if err := kv.enter(); err != nil {
		return err
	}
	defer kv.leave()
	it, err := kv.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return kvErr("scan", err)
	}
	for ok := it.Last(); ok; ok = it.Prev() {
		if err := fn(it.Key(), it.Value()); err != nil {
			it.Close()
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
	if err := it.Close(); err != nil {
		return kvErr("scan", err)
	}
	return nil
}

// Batch collects writes that commit atomically.
type Batch struct {
	kv *KV
	b  *pebble.Batch
}

// NewBatch starts an atomic batch. A batch started around Close fails at
// Commit.
func (kv *KV) NewBatch() *Batch { return &Batch{kv: kv, b: kv.db.NewBatch()} }

// Put adds key=value to the batch.
func (b *Batch) Put(key, value []byte) { _ = b.b.Set(key, value, nil) }

// Delete adds a deletion to the batch.
func (b *Batch) Delete(key []byte) { _ = b.b.Delete(key, nil) }

// Len is the number of operations in the batch.
func (b *Batch) Len() int { return int(b.b.Count()) }

// Commit applies the batch atomically; sync makes it durable first.
func (b *Batch) Commit(sync bool) error {
	if err := b.kv.enter(); err != nil {
		b.b.Close()
		return err
	}
	defer b.kv.leave()
	return b.kv.write(b.b, sync)
}

// write commits b, bounded (commitBounded), unless writes are refused.
func (kv *KV) write(b *pebble.Batch, sync bool) error {
	if err := kv.h.writeErr(); err != nil {
		b.Close()
		return err
	}
	return kv.commitBounded(b, sync)
}

// PrefixEnd returns the smallest key greater than every key with prefix p.
func PrefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

func writeOpts(sync bool) *pebble.WriteOptions {
	if sync {
		return pebble.Sync
	}
	return pebble.NoSync
}

// readOnlyFS is Pebble's file system for a read-only open. Pebble takes
// its LOCK file read-write and exclusively even then: read-only media
// refuse it, and two readers (a restore while another lists) would shut
// each other out. The caller holds the repository's own lock, shared
// among readers and exclusive of writers, so Pebble's is skipped.
type readOnlyFS struct{ vfs.FS }

func (readOnlyFS) Lock(string) (io.Closer, error) { return io.NopCloser(nil), nil }

// VerifyStats is what Verify read.
type VerifyStats struct {
	Tables int   // live sstables whose every block was read and checksummed
	Bytes  int64 // their size
	Keys   int64 // keys read through an iterator over the whole key space
}

// Verify reads everything the database holds and checks it, so that no
// table block goes unread until a compaction trips over it (a flipped bit
// in a block of file-change-cache records, which nothing but a snapshot
// reads, used to pass check; every compaction touching that table then
// failed in the background). Three passes:
//
//   - every block of every live table (data, index, range-deletion,
//     properties, meta-index), read from the file and checked against its
//     checksum (sstable.Reader.ValidateBlockChecksums);
//   - every key of the key space, whatever its prefix, through a fresh
//     iterator, which also covers the memtables replayed from the WAL;
//   - Pebble's level invariants (DB.CheckLevels): keys ordered within a
//     table, sequence numbers ordered across levels, tombstones fragmented.
//
// Damage is ErrCorrupt, naming the table when a table pass finds it.
func (kv *KV) Verify(ctx context.Context) (VerifyStats, error) {
	var st VerifyStats
	if err := kv.enter(); err != nil {
		return st, err
	}
	defer kv.leave()
	levels, err := kv.db.SSTables()
	if err != nil {
		return st, kvErr("list tables", err)
	}
	for level, tables := range levels {
		for _, t := range tables {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			name := fmt.Sprintf("%s.sst", t.BackingSSTNum)
			err := validateTable(vfs.Default.PathJoin(kv.dir, name))
			if errors.Is(err, fs.ErrNotExist) {
				continue // compacted away meanwhile: its keys are in the key pass
			}
			if err != nil {
				// Whatever stops a table being read through is damage
				// to the index, marked by Pebble or not.
				return st, corruptErr(fmt.Sprintf("table %s (level %d)", name, level), err)
			}
			st.Tables++
			st.Bytes += int64(t.Size)
		}
	}
	it, err := kv.db.NewIter(nil)
	if err != nil {
		return st, kvErr("scan", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		if st.Keys++; st.Keys%4096 == 0 && ctx.Err() != nil {
			it.Close()
			return st, ctx.Err()
		}
		_ = it.Value() // the value is in the block just read; this keeps a lazy value (value blocks) honest
	}
	if err := it.Close(); err != nil {
		return st, kvErr("scan", err)
	}
	if err := kv.db.CheckLevels(nil); err != nil {
		return st, kvErr("level check", err)
	}
	return st, nil
}

// validateTable reads and checksums every block of the table at path.
func validateTable(path string) error {
	f, err := vfs.Default.Open(path)
	if err != nil {
		return err
	}
	readable, err := sstable.NewSimpleReadable(f)
	if err != nil {
		f.Close()
		return err
	}
	r, err := sstable.NewReader(readable, sstable.ReaderOptions{}) // closes readable on error
	if err != nil {
		return err
	}
	verr := r.ValidateBlockChecksums()
	if err := r.Close(); verr == nil {
		verr = err
	}
	return verr
}

// kvErr words a Pebble error for the user. Damage Pebble detected (a
// checksum mismatch, a table that does not parse) is also ErrCorrupt, with
// the remedy: the index holds nothing the packs cannot give back but the
// records `repair index` carries over when it can read them.
func kvErr(op string, err error) error {
	if isCorruption(err) {
		return corruptErr(op, err)
	}
	return fmt.Errorf("index: %s: %w", op, err)
}

// isSystemError reports whether err comes from the operating system (a
// full disk, a permission, a missing file) rather than from Pebble
// reading its own files.
func isSystemError(err error) bool {
	var errno syscall.Errno
	var pe *fs.PathError
	return errors.As(err, &errno) || errors.As(err, &pe) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) ||
		strings.Contains(err.Error(), "lock held") // Pebble's own LOCK, held in this process
}

// corruptErr is err, in one line, as damage to the index.
func corruptErr(op string, err error) error {
	return fmt.Errorf("index: %s: %s; run `citadelfs repair index` to rebuild the index from the packs: %w",
		op, strings.Join(strings.Fields(err.Error()), " "), ErrCorrupt)
}
