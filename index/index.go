package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Pebble key prefixes. One byte each; everything after is the key proper.
const (
	prefixBlob        = 'b' // b<blob id>      -> BlobRef (blobRefSize bytes)
	prefixPack        = 'p' // p<pack id>      -> blob count u32 | size u64
	prefixSnapshot    = 's' // s<snapshot id>  -> manifest bytes (a copy of the pack blob)
	prefixFile        = 'f' // f<source key>   -> file-change cache entry (owned by snapshot)
	prefixAttempt     = 'r' // r<label>        -> last snapshot attempt of a source (JSON, owned by snapshot)
	prefixCheck       = 'c' // c               -> last check run (JSON, owned by snapshot)
	prefixCorrupt     = 'x' // x               -> corrupt reads through the mount (JSON, owned by snapshot)
	prefixTestRestore = 't' // t            -> last test restore (JSON, owned by snapshot)
	prefixMaint       = 'o' // o<op>           -> last forget or prune run (JSON, owned by snapshot)
	// q<pack id><blob id> -> time u64 | reason: a damaged copy of a blob (quarantine.go)
	prefixQuarantine = 'q'
	// e -> the last background failure of Pebble (JSON, kvhealth.go)
	// 'm' and 'a' belong to the monitor's history (see monitor package).
)

// Repo is an open repository: its config, the Pebble index and the packs.
// All methods are safe for concurrent use.
type Repo struct {
	Dir    string
	Config *Config
	KV     *KV
	// Store holds the packs: every pack byte is read and written
	// through it (LocalStore for a repository directory).
	Store Store
	// CacheDir holds the index of a remote repository (IsRemote): a
	// cache of what the store holds (remote.go). "" for a local one.
	CacheDir string
	// LastSync is what OpenStore's sync of the cache changed.
	LastSync *SyncResult
	rlock    *StoreLock // a remote repository's lock
	remote   bool
	// written: packs committed since the last index object (remote).
	writtenMu sync.Mutex
	written   []writtenPack
	// packsRemoved counts RemovePack calls (remote: index objects to
	// clean at Close).
	packsRemoved atomic.Int64
	lock         *Lock

	readOnly bool
	// The reserve (reserve.go): its size when it must be created, and
	// whether this process gave its blocks back.
	reserveMu       sync.Mutex
	reserveSize     int64
	reserveReleased bool
}

// Options for Open.
type Options struct {
	// Command names the holder in the lock file. Default "citadelfs".
	Command string
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// OpenPacks bounds the cached open pack file handles. Default 64.
	OpenPacks int
	// ReadOnly opens for reading only (see openReadOnly): for a
	// repository on read-only media or a full disk.
	ReadOnly bool
	// InsecurePermissions skips CheckPermissions (default false: a
	// repository other users can write is refused).
	InsecurePermissions bool
	// WrapStore, when set, wraps the repository's store (tests inject
	// faults with FaultyStore; read-only opens could use ReadOnlyStore).
	WrapStore func(Store) Store
	// Reserve is the size of the reserve file (reserve.go) created when
	// the repository has none. Default (0) defaultReserve.
	Reserve int64
	// KeepReserve never releases the reserve at open: for a command that
	// only reads and opens read-only instead when the disk is full.
	KeepReserve bool
	// For a remote repository (OpenStore): CacheDir is its local cache
	// (default DefaultCacheRoot/<repository id>); Exclusive takes the
	// exclusive lock (prune, repair) instead of a shared one (snapshot,
	// forget, reads); LockTimes tune the lock's refresh and expiry.
	CacheDir  string
	Exclusive bool
	LockTimes LockTimes
	// RebuildCache removes the cache's index once the lock is held, so
	// it is rebuilt from the store (repair index of a remote repository).
	RebuildCache bool
}

func (o Options) withDefaults() Options {
	if o.Command == "" {
		o.Command = "citadelfs"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.OpenPacks == 0 {
		o.OpenPacks = 64
	}
	if o.Reserve <= 0 {
		o.Reserve = -1 // holdReserve sizes it
	}
	return o
}

// store is the store of repository directory dir, wrapped as o asks.
func (o Options) store(dir string) Store {
	var s Store = NewLocalStore(dir, o.OpenPacks)
	if o.WrapStore != nil {
		s = o.WrapStore(s)
	}
	return s
}

// Open takes the repository lock, checks citadel.json and opens Pebble.
// Left-over .partial packs from a killed writer are removed: holding the
// lock proves nobody is still writing them.
func Open(dir string, o Options) (*Repo, error) {
	o = o.withDefaults()
	if !o.InsecurePermissions {
		if err := CheckPermissions(dir); err != nil {
			return nil, err
		}
	}
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	if o.ReadOnly {
		return openReadOnly(dir, cfg, o)
	}
	lock, err := AcquireLock(dir, o.Command, o.Now())
	if err != nil {
		return nil, err
	}
	if err := removePartials(filepath.Join(dir, packsDir)); err != nil {
		lock.Release()
		return nil, err
	}
	// A rebuild that was killed leaves its unfinished index.new-*: the
	// lock proves nobody is still building it.
	removeRebuildLeftovers(dir)
	upgradeConfig(dir, cfg)
	released := false
	if !o.KeepReserve && lowOnSpace(dir) {
		// Give the reserve back before Pebble replays its log: an open
		// that fails inside Pebble (a MANIFEST it cannot write) leaves
		// the database held by this process and cannot be retried.
		if n, rerr := releaseReserve(dir); rerr == nil && n > 0 {
			released = true
		}
	}
	kv, err := openIndexKV(dir, false)
	if IsDiskFull(err) && !o.KeepReserve && !released {
		// Replaying Pebble's log writes a table: on a full disk the
		// reserve gives it room, so forget and prune can free space.
		if n, rerr := releaseReserve(dir); rerr == nil && n > 0 {
			released = true
			kv, err = openIndexKV(dir, false)
		}
	}
	if err != nil {
		lock.Release()
		if IsDiskFull(err) {
			err = fmt.Errorf("%w (no reserve left to give back: free space on the disk of %s)", err, dir)
		}
		return nil, err
	}
	r := &Repo{Dir: dir, Config: cfg, KV: kv, lock: lock, Store: o.store(dir),
		reserveSize: o.Reserve, reserveReleased: released}
	if !released {
		// Absent (a repository made before the reserve, or one whose
		// reserve was deleted) or released by an earlier process: hold
		// it now if there is room. Without room it stays released and
		// EnsureReserve says so to whoever would write new data.
		holdReserve(dir, o.Reserve)
	}
	if lock.Stale {
		// The last holder was killed. A pack it renamed into place but
		// had not yet indexed is complete and durable: adopt it, so the
		// next snapshot reuses its chunks instead of storing them again.
		if _, err := r.AdoptOrphanPacks(); err != nil {
			r.Close()
			return nil, err
		}
	}
	return r, nil
}

// openReadOnly opens a repository for reading: a shared lock, Pebble
// read-only, and nothing cleaned up, adopted or recorded. Writes through
// it fail.
func openReadOnly(dir string, cfg *Config, o Options) (*Repo, error) {
	lock, err := AcquireSharedLock(dir)
	if err != nil {
		return nil, err
	}
	kv, err := openIndexKV(dir, true)
	if err != nil {
		lock.Release()
		return nil, err
	}
	return &Repo{Dir: dir, Config: cfg, KV: kv, lock: lock, Store: o.store(dir), readOnly: true}, nil
}

// openIndexKV opens <dir>/index, never creating it: a repository whose
// index is gone (or was never finished) opened with an empty one would
// look as if it had no snapshots, and the next prune would delete every
// pack. Only a missing index gets the advice to rebuild it; an earlier
// version's interrupted rebuild is refused the same way. Read-only, it
// skips Pebble's own lock: the caller holds the repository's shared one.
func openIndexKV(dir string, readOnly bool) (*KV, error) {
	if old := oldRebuildLeftovers(dir); len(old) > 0 {
		return nil, fmt.Errorf("index: a `repair index` was interrupted (%s is still there, and %s/%s is only partly rebuilt); run `citadelfs repair index` again: %w",
			filepath.Base(old[0]), dir, indexDir, ErrCorrupt)
	}
	path := filepath.Join(dir, indexDir)
	_, err := os.Stat(path) // Pebble would make the directory even when it refuses to make the database
	var kv *KV
	if err == nil {
		kv, err = OpenKV(path, KVOptions{MustExist: true, ReadOnly: readOnly, SkipPebbleLock: readOnly})
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("index: %s is missing; run `citadelfs repair index` to rebuild it from the packs: %w", path, ErrCorrupt)
	}
	return kv, err
}

// AdoptOrphanPacks indexes complete packs on disk that the index does not
// know (left by a writer killed between a pack's rename and its index
// commit). Only blobs not indexed elsewhere are added. Packs whose trailer
// does not verify are left alone for check to report. It returns the
// number of packs adopted.
func (r *Repo) AdoptOrphanPacks() (int, error) {
	packs, err := r.ListPacks()
	if err != nil {
		return 0, err
	}
	adopted := 0
	for _, p := range packs {
		if ok, err := r.KV.Has(append([]byte{prefixPack}, p.ID[:]...)); err != nil || ok {
			if err != nil {
				return adopted, err
			}
			continue
		}
		if q, err := r.PackQuarantine(p.ID); err != nil || len(q) > 0 {
			// Known damaged: `repair packs` was dropping it (or prune
			// found it bad). Its good blobs are indexed elsewhere.
			if err != nil {
				return adopted, err
			}
			continue
		}
		es, size, err := r.ReadPackTrailer(p.ID)
		if err != nil {
			continue
		}
		var fresh []PackEntry
		for _, e := range es {
			if e.Type == SnapshotBlob {
				continue // an uncommitted snapshot stays invisible
			}
			if ok, err := r.HasBlob(e.ID); err != nil {
				return adopted, err
			} else if !ok {
				fresh = append(fresh, e)
			}
		}
		if err := r.CommitPack(p.ID, fresh, uint64(size)); err != nil {
			return adopted, err
		}
		adopted++
	}
	return adopted, nil
}

// IsIndexedPack reports whether the index has a record of pack id.
func (r *Repo) IsIndexedPack(id ID) (bool, error) {
	return r.KV.Has(append([]byte{prefixPack}, id[:]...))
}

// Close closes the index and releases the lock.
func (r *Repo) Close() error {
	if !r.readOnly && !r.remote { // a remote repository's disk is the store's
		r.closeReserve()
	}
	var err error
	if r.remote && !r.readOnly {
		err = r.FlushIndexObject() // what prune or repair committed
		if err == nil && r.packsRemoved.Load() > 0 && r.rlock != nil && r.rlock.info.Exclusive {
			err = r.dropDeadIndexObjects()
		}
	}
	if serr := r.Store.Close(); err == nil {
		err = serr
	}
	if kerr := r.KV.Close(); err == nil {
		err = kerr
	}
	var lerr error
	if r.remote {
		lerr = r.rlock.Release()
	} else {
		lerr = r.lock.Release()
	}
	if err == nil {
		err = lerr
	}
	return err
}

func removePartials(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("index: list packs: %w", err)
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".partial") {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return nil
}

// BlobRef is where a blob is stored.
type BlobRef struct {
	ID ID
	PackEntry
	Pack ID
}

const blobRefSize = 32 + 8 + 4 + 4 + 1 + 1

func blobKey(id ID) []byte {
	k := make([]byte, 1+len(id))
	k[0] = prefixBlob
	copy(k[1:], id[:])
	return k
}

func encodeBlobRef(pack ID, e PackEntry) []byte {
	v := make([]byte, blobRefSize)
	copy(v, pack[:])
	binary.LittleEndian.PutUint64(v[32:], e.Offset)
	binary.LittleEndian.PutUint32(v[40:], e.Length)
	binary.LittleEndian.PutUint32(v[44:], e.RawLength)
	v[48] = e.Codec
	v[49] = byte(e.Type)
	return v
}

// DecodeBlobRef parses an index value; it is fuzzed since it is read from disk.
func DecodeBlobRef(id ID, v []byte) (BlobRef, error) {
	if len(v) != blobRefSize {
		return BlobRef{}, fmt.Errorf("index: blob %s: index entry of %d bytes: %w", id.Short(), len(v), ErrCorrupt)
	}
	var r BlobRef
	r.ID = id
	copy(r.Pack[:], v)
	r.Offset = binary.LittleEndian.Uint64(v[32:])
	r.Length = binary.LittleEndian.Uint32(v[40:])
	r.RawLength = binary.LittleEndian.Uint32(v[44:])
	r.Codec = v[48]
	r.Type = BlobType(v[49])
	r.PackEntry.ID = id
	if r.Type > SnapshotBlob || r.Length > MaxBlobSize || r.RawLength > MaxBlobSize {
		return BlobRef{}, fmt.Errorf("index: blob %s: bad index entry: %w", id.Short(), ErrCorrupt)
	}
	return r, nil
}

// ErrPackMissing: the pack file an index entry names is not on disk. It
// is ErrCorrupt too, unless prune moved the blob a moment ago (look it up
// again).
var ErrPackMissing = errors.New("pack missing")

// errPackMissing is ErrPackMissing and ErrCorrupt at once, printed once.
var errPackMissing = fmt.Errorf("%w: %w", ErrPackMissing, ErrCorrupt)

// ErrBlobMissing: the index has no entry for a blob.
var ErrBlobMissing = errors.New("blob not in index")

// Lookup finds a blob.
func (r *Repo) Lookup(id ID) (BlobRef, error) {
	v, err := r.KV.Get(blobKey(id))
	if errors.Is(err, ErrNotFound) {
		return BlobRef{}, fmt.Errorf("index: blob %s: %w", id.Short(), ErrBlobMissing)
	}
	if err != nil {
		return BlobRef{}, err
	}
	return DecodeBlobRef(id, v)
}

// HasBlob reports whether the index knows blob id.
func (r *Repo) HasBlob(id ID) (bool, error) { return r.KV.Has(blobKey(id)) }

// CommitPack records a finished, durable pack and all its blobs in one
// synced batch. extra is applied in the same batch (snapshot records go
// in a later, separate commit).
func (r *Repo) CommitPack(pack ID, entries []PackEntry, size uint64) error {
	b := r.KV.NewBatch()
	for _, e := range entries {
		b.Put(blobKey(e.ID), encodeBlobRef(pack, e))
	}
	var pv [12]byte
	binary.LittleEndian.PutUint32(pv[0:], uint32(len(entries)))
	binary.LittleEndian.PutUint64(pv[4:], size)
	b.Put(append([]byte{prefixPack}, pack[:]...), pv[:])
	if err := b.Commit(true); err != nil {
		return err
	}
	r.noteWritten(pack, entries, size)
	return nil
}

// ReadStored returns the stored (still encoded) bytes of a blob, read
// into buf when it is large enough (the result may start inside buf).
//
// The store decides how: LocalStore copies blobs already in the page
// cache from it and reads others of at least directReadMin bytes straight
// from the disk (O_DIRECT) into buf, when buf is aligned and has room for
// the blob plus directAlign on each side (see readDirect).
func (r *Repo) ReadStored(ref BlobRef, buf []byte) ([]byte, error) {
	b, err := r.Store.ReadRange(PackName(ref.Pack), int64(ref.Offset), int(ref.Length), buf)
	switch {
	case err == nil:
		return b, nil
	case isNotExist(err):
		return nil, fmt.Errorf("index: pack %s is missing: %w", ref.Pack.Short(), errPackMissing)
	case errors.Is(err, io.ErrUnexpectedEOF):
		// The pack ends before the blob does: truncated.
		return nil, fmt.Errorf("index: read blob %s from pack %s: short read: %w", ref.ID.Short(), ref.Pack.Short(), ErrCorrupt)
	}
	// The disk, the file system or the store failed (EIO, ESTALE, a
	// 503, ...): an error, but not a finding about the backup's bytes.
	return nil, fmt.Errorf("index: read blob %s from pack %s: %w", ref.ID.Short(), ref.Pack.Short(), err)
}

// PackInfo describes a pack file on disk.
type PackInfo struct {
	ID   ID
	Size int64
}

// ListPacks lists every complete pack in the store.
func (r *Repo) ListPacks() ([]PackInfo, error) { return ListStorePacks(r.Store) }

// ListPackFiles is ListPacks for a repository directory that is not open.
func ListPackFiles(repoDir string) ([]PackInfo, error) {
	return ListStorePacks(NewLocalStore(repoDir, 1))
}

// ReadPackTrailer reads the trailer of pack id.
func (r *Repo) ReadPackTrailer(id ID) ([]PackEntry, int64, error) {
	return ReadStoreTrailer(r.Store, id)
}

// ReadStoreTrailer reads the trailer of pack id in store s: a stat and
// three ranged reads (header, footer, trailer), never the whole pack.
func ReadStoreTrailer(s Store, id ID) ([]PackEntry, int64, error) {
	name := PackName(id)
	size, err := s.Stat(name)
	if isNotExist(err) {
		return nil, 0, fmt.Errorf("index: pack %s is missing: %w", id.Short(), errPackMissing)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("index: stat pack %s: %w", id.Short(), err)
	}
	es, err := DecodeTrailer(readerAt{s, name}, size)
	if err != nil {
		return nil, 0, fmt.Errorf("pack %s: %w", id.Short(), err)
	}
	return es, size, nil
}

// RemovePack deletes a pack file and its index record. Callers must first
// have removed (or re-pointed) every blob entry that refers to it.
func (r *Repo) RemovePack(id ID) error {
	if err := r.rlock.Check(); err != nil {
		return err
	}
	if err := r.Store.Delete(PackName(id)); err != nil {
		return fmt.Errorf("index: remove pack %s: %w", id.Short(), err)
	}
	r.packsRemoved.Add(1)
	if err := r.KV.Delete(append([]byte{prefixPack}, id[:]...), true); err != nil {
		return err
	}
	// The damaged copies it held went with it.
	return r.dropPackQuarantine(id)
}

// SnapshotKey is the Pebble key of a snapshot record.
func SnapshotKey(id ID) []byte { return append([]byte{prefixSnapshot}, id[:]...) }

// PutSnapshot commits a snapshot record with Sync. This is the last write
// of a snapshot: before it, nothing of the snapshot is visible.
//
// In a remote repository the snapshot is committed by its snapshots/<id>
// object, put first: the cache's record follows it.
func (r *Repo) PutSnapshot(id ID, manifest []byte) error {
	if r.remote {
		if err := r.rlock.Check(); err != nil {
			return err
		}
		// The index object first: a host that sees the snapshot finds
		// the packs it uses without reading their trailers.
		if err := r.FlushIndexObject(); err != nil {
			return err
		}
		if err := r.Store.Put(snapshotName(id), manifest); err != nil && !errors.Is(err, ErrObjectExists) {
			return fmt.Errorf("index: commit snapshot %s: %w", id.Short(), err)
		}
	}
	return r.KV.Put(SnapshotKey(id), manifest, true)
}

// DeleteSnapshot removes a snapshot record.
// In a remote repository its snapshots/<id> object goes first.
func (r *Repo) DeleteSnapshot(id ID) error {
	if r.remote {
		if err := r.Store.Delete(snapshotName(id)); err != nil {
			return fmt.Errorf("index: forget snapshot %s: %w", id.Short(), err)
		}
	}
	return r.KV.Delete(SnapshotKey(id), true)
}

// Snapshots calls fn with every snapshot record.
func (r *Repo) Snapshots(fn func(id ID, manifest []byte) error) error {
	lo := []byte{prefixSnapshot}
	return r.KV.Scan(lo, PrefixEnd(lo), func(k, v []byte) error {
		if len(k) != 33 {
			return nil
		}
		var id ID
		copy(id[:], k[1:])
		return fn(id, v)
	})
}

// FileCacheKey builds the file-change cache key for a source path.
func FileCacheKey(source string) []byte { return append([]byte{prefixFile}, source...) }

// FileCachePrefix bounds the whole file cache.
func FileCachePrefix() []byte { return []byte{prefixFile} }

// AttemptKey is where the last snapshot attempt of a source is recorded
// (for the monitor's backup_failed and freshness rules).
func AttemptKey(label string) []byte { return append([]byte{prefixAttempt}, label...) }

// AttemptPrefix bounds every attempt record.
func AttemptPrefix() []byte { return []byte{prefixAttempt} }

// CheckKey is where the outcome of the last check run is recorded (for the
// monitor's backup_corrupt rule). There is one: each run replaces it.
func CheckKey() []byte { return []byte{prefixCheck} }

// TestRestoreKey is where the outcome of the last test restore is recorded
// (for the monitor's test_restore rule). There is one: each run replaces it.
func TestRestoreKey() []byte { return []byte{prefixTestRestore} }

// MaintenanceKey is where the outcome of the last run of op ("forget",
// "prune") is recorded (for the monitor's retention_failed rule). Each run
// replaces it.
func MaintenanceKey(op string) []byte { return append([]byte{prefixMaint}, op...) }

// MaintenancePrefix bounds every maintenance record.
func MaintenancePrefix() []byte { return []byte{prefixMaint} }

// CorruptReadsKey is where reads through the mount that found corrupt data
// are recorded, so that a restarted daemon still alerts about them. There
// is one; a passing full check removes it.
func CorruptReadsKey() []byte { return []byte{prefixCorrupt} }
