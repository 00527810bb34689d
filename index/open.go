package index

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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
	// Keys are an encrypted repository's keys (crypt.go), nil for one in
	// the clear: every blob id is Keys.BlobID, every stored object sealed.
	Keys *Keys
	// LastSync is what OpenStore's sync of the cache changed.
	LastSync *SyncResult
	// BlobCache keeps blobs a remote repository's reads fetched
	// (Options.BlobCacheSize); nil when there is none.
	BlobCache *BlobCache
	rlock     *StoreLock // a remote repository's lock
	// cmdLocks are the locks commands took beside a reader rlock
	// (LockCommand), which checkLock checks.
	cmdLocksMu sync.Mutex
	cmdLocks   map[*StoreLock]bool
	remote     bool
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
	// Reader takes a reader lock instead (a mount daemon: excluded by
	// nothing, and no prune waits for it); what the repository then
	// commits needs a command lock beside it (Repo.LockCommand).
	Reader bool
	// Keys are the unlocked keys of an encrypted repository (key slots
	// unlock them from a passphrase or key file); Open and OpenStore
	// refuse an encrypted repository without them (ErrNeedKey), and keys
	// for one in the clear.
	Keys *Keys
	// RebuildCache removes the cache's index once the lock is held, so
	// it is rebuilt from the store (repair index of a remote repository).
	RebuildCache bool
	// BlobCacheSize bounds the on-disk cache of fetched blobs in a remote
	// repository's CacheDir (blobcache.go); 0 keeps none.
	BlobCacheSize int64
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
	if cfg.StoreLayout() {
		// Its index/ holds index objects, not a Pebble database.
		return nil, fmt.Errorf("index: %s is an encrypted repository: it has the store layout (open it with OpenStore over NewLocalStore)", dir)
	}
	if err := checkKeys(cfg, o.Keys, dir); err != nil {
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
	r := &Repo{Dir: dir, Config: cfg, KV: kv, lock: lock, Store: o.store(dir), Keys: o.Keys,
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
	return &Repo{Dir: dir, Config: cfg, KV: kv, lock: lock, Store: o.store(dir), readOnly: true, Keys: o.Keys}, nil
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
