package snapshot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"citadelfs/index"
	"citadelfs/snapshot/chunker"
	"citadelfs/snapshot/codec"
)

// Options configure a Repository. Zero values take the documented defaults.
type Options struct {
	// Command names the lock holder (default "citadelfs").
	Command string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// CacheBytes bounds the LRU of decoded chunks and trees used by reads
	// (default 64 MiB).
	CacheBytes int64
	// PackSize is the target pack file size (default 32 MiB in a
	// directory, 16 MiB in a store: RGW took four 16 MiB PUTs at once as
	// fast as four of 32 MiB, and a snapshot holds one pack per upload in
	// memory).
	PackSize int
	// Uploads is how many full packs a snapshot to a store PUTs at once
	// (default 4; a directory always writes one at a time).
	Uploads int
	// Workers is the number of chunk-compressing goroutines (default 2,
	// one per core on the machines this is built for).
	Workers int
	// ReadOnly opens for listing, reading, restoring and checking only
	// (index.Options.ReadOnly): a backup disk mounted read-only, or full.
	ReadOnly bool
	// InsecurePermissions opens a repository other users can write
	// (index.Options.InsecurePermissions; default false: refused).
	InsecurePermissions bool
	// WrapStore wraps the repository's pack store
	// (index.Options.WrapStore): tests inject faults with
	// index.FaultyStore.
	WrapStore func(index.Store) index.Store
	// Reserve is the size of the repository's reserve file, made by Init
	// (or by Open when there is none): default (0) index.DefaultReserve,
	// or less on a small file system; a negative value makes an empty one
	// (no reserve).
	Reserve int64
	// KeepReserve never gives the reserve back at open
	// (index.Options.KeepReserve).
	KeepReserve bool
	// CacheDir and Exclusive are for a repository in a store (OpenStore):
	// the local cache of its index (default
	// index.DefaultCacheRoot/<repository id>), and whether to take the
	// store's exclusive lock (prune, repair) instead of a shared one.
	CacheDir  string
	Exclusive bool
	// Reader takes the store's reader lock instead (index.Options.Reader):
	// the mount daemon, which no other host's prune waits for; commands
	// it runs take their own lock (index.Repo.LockCommand).
	Reader bool
	// RebuildCache throws the cache's index away and rebuilds it from
	// the store (repair index of a remote repository); it takes the
	// exclusive lock.
	RebuildCache bool
	// Keys are an encrypted repository's unlocked keys
	// (index.Options.Keys; index.UnlockKeys opens them from a key slot).
	Keys *index.Keys
	// Encryption is what InitStore makes: index.EncryptionAESGCM or
	// index.EncryptionNone ("" = none).
	Encryption string
	// ObjectLock is the retention InitStore records and writes every
	// object under (nil: none; index.ObjectLock).
	ObjectLock *index.ObjectLock
	// BlobCacheSize bounds the on-disk cache of blobs that reads of a
	// repository in a store fetched (index.BlobCache, in CacheDir); 0
	// keeps none.
	BlobCacheSize int64
}

func (o Options) withDefaults() Options {
	if o.Command == "" {
		o.Command = "citadelfs"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = 64 << 20
	}
	if o.PackSize == 0 {
		o.PackSize = 32 << 20
	}
	if o.Workers == 0 {
		o.Workers = 2
	}
	if o.Uploads == 0 {
		o.Uploads = 4
	}
	return o
}

// Repository is an open repository seen as snapshots, trees and files.
// Reads are safe from many goroutines; writers (snapshot, forget, prune)
// take writeMu so that two never interleave.
type Repository struct {
	idx    *index.Repo
	opts   Options
	params chunker.Params

	decoders sync.Pool
	cache    *blobCache

	writeMu sync.Mutex
	gen     atomic.Uint64

	inflightMu sync.Mutex
	inflight   map[index.ID]*inflightLoad
	prefetcher prefetcher
	treeAhead  treeAhead

	snapMu    sync.Mutex
	snapCache []*Snapshot
	snapGen   uint64

	// quarantined holds the damaged copies this process has recorded
	// (quarantineSeen -> true): see quarantine.
	quarantined sync.Map

	// resync is the cache sync a read that met a pack gone from the
	// store runs (missingpack.go).
	resync missingResync
}

// Init creates a repository at dir.
func Init(dir string, o Options) error {
	o = o.withDefaults()
	p := chunker.Default
	reserve := o.Reserve
	switch {
	case reserve == 0:
		reserve = -1 // the default
	case reserve < 0:
		reserve = 0 // none
	}
	_, err := index.InitWithReserve(dir, index.ChunkerParams{Min: p.Min, Avg: p.Avg, Max: p.Max, Seed: p.Seed}, o.Now(), reserve)
	return err
}

// InitStore creates a repository in store s (an S3 bucket and prefix);
// location names it in messages.
func InitStore(s index.Store, location string, o Options) error {
	o = o.withDefaults()
	p := chunker.Default
	_, err := index.InitStoreWith(s, location, index.InitOptions{Chunker: index.ChunkerParams{Min: p.Min, Avg: p.Avg, Max: p.Max, Seed: p.Seed},
		Encryption: o.Encryption, Now: o.Now(), ObjectLock: o.ObjectLock})
	return err
}

// Open opens the repository at dir, taking its lock.
func Open(dir string, o Options) (*Repository, error) {
	o = o.withDefaults()
	idx, err := index.Open(dir, o.indexOptions())
	if err != nil {
		return nil, err
	}
	return newRepository(idx, o)
}

// OpenStore opens the repository in store s, its index a local cache
// (index.OpenStore).
func OpenStore(s index.Store, location string, o Options) (*Repository, error) {
	if o.PackSize == 0 {
		o.PackSize = 16 << 20
	}
	o = o.withDefaults()
	idx, err := index.OpenStore(s, location, o.indexOptions())
	if err != nil {
		return nil, err
	}
	return newRepository(idx, o)
}

func (o Options) indexOptions() index.Options {
	return index.Options{Command: o.Command, Now: o.Now, ReadOnly: o.ReadOnly, InsecurePermissions: o.InsecurePermissions,
		WrapStore: o.WrapStore, Reserve: max(o.Reserve, 0), KeepReserve: o.KeepReserve, CacheDir: o.CacheDir, Exclusive: o.Exclusive || o.RebuildCache, RebuildCache: o.RebuildCache,
		Reader: o.Reader, Keys: o.Keys, BlobCacheSize: o.BlobCacheSize}
}

func newRepository(idx *index.Repo, o Options) (*Repository, error) {
	cp := idx.Config.Chunker
	params := chunker.Params{Min: cp.Min, Avg: cp.Avg, Max: cp.Max, Seed: cp.Seed}
	if idx.Keys != nil {
		// An encrypted repository's gear table comes from its key (the
		// seed in citadel.json, which is plaintext, is unused), so chunk
		// boundaries cannot fingerprint a known file.
		params.Seed = idx.Keys.GearSeed()
	}
	// Before anything sizes a buffer by them: a citadel.json edited (or
	// written by hand) with parameters the chunker cannot use is refused
	// in one line, not met as an out-of-memory crash in the first snapshot.
	if err := params.Validate(); err != nil {
		idx.Close()
		return nil, fmt.Errorf("%s/citadel.json: %v: %w", idx.Dir, err, ErrCorrupt)
	}
	r := &Repository{idx: idx, opts: o, params: params, cache: newBlobCache(o.CacheBytes)}
	r.decoders.New = func() any { return codec.NewDecoder() }
	r.gen.Store(1)
	return r, nil
}

// Close releases the repository, once background decoding has stopped.
func (r *Repository) Close() error {
	r.stopPrefetch()
	r.treeAhead.stop()
	return r.idx.Close()
}

// blobID is the id of a blob of plain bytes b: keyed BLAKE3 in an
// encrypted repository, plain BLAKE3 in the clear.
func (r *Repository) blobID(b []byte) index.ID { return r.idx.Keys.BlobID(b) }

// Index exposes the underlying index (for the monitor's history and for
// maintenance commands).
func (r *Repository) Index() *index.Repo { return r.idx }

// Dir is the repository directory.
func (r *Repository) Dir() string { return r.idx.Dir }

// Generation changes whenever snapshots are added or removed.
func (r *Repository) Generation() uint64 { return r.gen.Load() }

func (r *Repository) changed() { r.gen.Add(1) }

// Snapshots returns every snapshot oldest first, in Compare's order. The result is
// cached per generation and shared: callers must not modify it.
func (r *Repository) Snapshots() ([]*Snapshot, error) {
	gen := r.Generation()
	r.snapMu.Lock()
	defer r.snapMu.Unlock()
	if r.snapCache != nil && r.snapGen == gen {
		return r.snapCache, nil
	}
	var out []*Snapshot
	err := r.idx.Snapshots(func(id index.ID, b []byte) error {
		m, err := DecodeManifest(b)
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", id.Short(), err)
		}
		out = append(out, &Snapshot{ID: id, Manifest: *m})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, Compare)
	r.snapCache, r.snapGen = out, gen
	return out, nil
}

// ErrNoSnapshot: no snapshot matches.
var ErrNoSnapshot = errors.New("no such snapshot")

// FindSnapshot resolves "latest" (the last in Compare's order) or a unique
// hex id prefix.
func (r *Repository) FindSnapshot(ref string) (*Snapshot, error) {
	snaps, err := r.Snapshots()
	if err != nil {
		return nil, err
	}
	if ref == "latest" {
		if len(snaps) == 0 {
			return nil, fmt.Errorf("snapshot: latest: repository has no snapshots: %w", ErrNoSnapshot)
		}
		return snaps[len(snaps)-1], nil
	}
	ref = strings.ToLower(ref)
	var found *Snapshot
	for _, s := range snaps {
		if strings.HasPrefix(s.ID.String(), ref) {
			if found != nil {
				return nil, fmt.Errorf("snapshot: %q is ambiguous (%s, %s)", ref, found.ID.Short(), s.ID.Short())
			}
			found = s
		}
	}
	if found == nil || ref == "" {
		return nil, fmt.Errorf("snapshot: %q: %w", ref, ErrNoSnapshot)
	}
	return found, nil
}

// SourcePick is one source of one snapshot.
type SourcePick struct {
	Snapshot *Snapshot
	Label    string
}

// LatestSources returns each source's newest snapshot, in label order:
// what the mount shows under latest/. Sources are often snapshotted
// apart (a timer each), so the newest snapshot alone may hold only one.
func (r *Repository) LatestSources() ([]SourcePick, error) {
	snaps, err := r.Snapshots()
	if err != nil {
		return nil, err
	}
	newest := map[string]*Snapshot{}
	for _, s := range snaps { // in Compare's order: the last of a label wins
		for _, src := range s.Sources {
			newest[src.Label] = s
		}
	}
	if len(newest) == 0 {
		return nil, fmt.Errorf("snapshot: latest: repository has no snapshots: %w", ErrNoSnapshot)
	}
	out := make([]SourcePick, 0, len(newest))
	for l, s := range newest {
		out = append(out, SourcePick{Snapshot: s, Label: l})
	}
	slices.SortFunc(out, func(a, b SourcePick) int { return strings.Compare(a.Label, b.Label) })
	return out, nil
}

// LoadBlob reads, decodes and verifies a blob. It never returns bytes whose
// hash differs from id: such a blob is an error wrapping ErrCorrupt.
// With useCache the decoded bytes may come from and go to the LRU; the
// returned slice must then not be modified.
func (r *Repository) LoadBlob(ctx context.Context, id index.ID, useCache bool) ([]byte, error) {
	if useCache {
		// escape: the caller may keep the bytes for as long as it likes,
		// so the buffer is never recycled.
		if b, ok := r.cache.getEscaped(id); ok {
			return b, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	plain, err := r.loadPlain(id, false)
	if err != nil {
		return nil, err
	}
	if useCache {
		r.cache.put(id, plain)
	}
	return plain, nil
}

// loadPlain reads, decodes and verifies a blob; with pooled, into a
// recycled buffer (see blobCache). The stored bytes are read into a
// recycled buffer: the decoded result never shares memory with them.
func (r *Repository) loadPlain(id index.ID, pooled bool) ([]byte, error) {
	return r.loadPlainKeep(id, pooled, cacheKeep)
}

// loadData loads a file's chunk for a restore: through the blob cache of
// a remote repository, but without keeping what it fetches
// (index.Repo.ReadStoredCached); with fromStore past the cache.
func (r *Repository) loadData(ctx context.Context, id index.ID, fromStore bool) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	mode := cacheHitsOnly
	if fromStore {
		mode = cacheBypass
	}
	return r.loadPlainKeep(id, false, mode)
}

// How a read of a remote repository uses its blob cache.
type cacheMode int

const (
	cacheKeep     cacheMode = iota // hits, and keep what is fetched
	cacheHitsOnly                  // hits; keep nothing (a restore)
	cacheBypass                    // always the store (a test restore)
)

// readStored reads ref's stored bytes as mode says.
func (r *Repository) readStored(ref index.BlobRef, buf []byte, mode cacheMode) ([]byte, error) {
	if mode == cacheBypass {
		return r.idx.ReadStored(ref, buf)
	}
	return r.idx.ReadStoredCached(ref, buf, mode == cacheKeep)
}

// loadPlainKeep is loadPlain; mode says how a remote repository's blob
// cache is used.
func (r *Repository) loadPlainKeep(id index.ID, pooled bool, mode cacheMode) ([]byte, error) {
	ref, err := r.idx.Lookup(id)
	if errors.Is(err, index.ErrBlobMissing) && r.idx.IsRemote() {
		// A sync of the cache may be between dropping a pack another
		// host's prune deleted and indexing the one the blob moved to.
		ref, err = r.lookupSettled(id)
	}
	if err != nil {
		if errors.Is(err, index.ErrBlobMissing) {
			return nil, fmt.Errorf("snapshot: chunk %s: %v: %w", id.Short(), err, ErrCorrupt)
		}
		return nil, err
	}
	// Room for the 4 KiB blocks around the blob too, so that ReadStored
	// can read it with O_DIRECT (pooled buffers of that size are
	// page-aligned).
	sbuf := r.cache.bufs.get(int(ref.Length) + 8<<10)
	stored, err := r.readStored(ref, sbuf, mode)
	if errors.Is(err, index.ErrPackMissing) {
		// Prune may have moved the blob to a new pack and removed the
		// old one between the lookup and the read: look again.
		if again, lerr := r.idx.Lookup(id); lerr == nil && again.Pack != ref.Pack {
			r.cache.bufs.put(sbuf)
			ref = again
			sbuf = r.cache.bufs.get(int(ref.Length) + 8<<10)
			stored, err = r.readStored(ref, sbuf, mode)
		}
	}
	if errors.Is(err, index.ErrPackMissing) && r.idx.IsRemote() {
		// Another host's prune, which this process's reader lock (a
		// mount) does not hold back, deleted the pack: the cache,
		// synced, knows where the blob went, if it lives on.
		if again, ok := r.refindAfterPrune(id, ref); ok {
			r.cache.bufs.put(sbuf)
			ref = again
			sbuf = r.cache.bufs.get(int(ref.Length) + 8<<10)
			stored, err = r.readStored(ref, sbuf, mode)
		}
	}
	if err != nil {
		r.cache.bufs.put(sbuf)
		if errors.Is(err, index.ErrCorrupt) {
			err = corruptError{fmt.Errorf("snapshot: chunk %s: %w", id.Short(), err)}
			if !errors.Is(err, index.ErrPackMissing) {
				r.noteDamagedRead(ref, err) // a short pack; a missing one is dropped by the next snapshot
			}
			return nil, err
		}
		// A failing disk or file system: an error, not a finding
		// about the backup's bytes.
		return nil, fmt.Errorf("snapshot: chunk %s: %w", id.Short(), err)
	}
	var dst []byte
	if pooled {
		dst = r.cache.bufs.get(int(ref.RawLength))
	}
	dec := r.decoders.Get().(*codec.Decoder)
	// stored is this read's own (in sbuf, or memory the store allocated
	// for it; the blob cache copied what it keeps): decrypted in place.
	plain, err := decodeScratch(r.idx.Keys, dec, dst, ref, stored)
	if err != nil && mode != cacheBypass && r.idx.DropCached(ref) {
		// The bytes came from the blob cache (a remote repository's);
		// what the store holds decides, so read it from there once.
		if stored, err = r.idx.ReadStored(ref, sbuf); err == nil {
			if plain, err = decodeVerified(r.idx.Keys, dec, dst, ref, stored); err == nil && mode == cacheKeep {
				r.idx.CacheStored(ref, stored)
			}
		} else if !errors.Is(err, index.ErrCorrupt) {
			r.decoders.Put(dec)
			r.cache.bufs.put(sbuf)
			r.cache.bufs.put(dst)
			return nil, fmt.Errorf("snapshot: chunk %s: %w", id.Short(), err)
		}
	}
	r.decoders.Put(dec)
	if len(plain) > 0 && cap(dst) >= len(plain) && &plain[0] == &dst[:1][0] {
		// Decoded in place. Codecs may cap their result at its length
		// (zstd does); give back the whole pooled buffer, or the cache
		// would count (and the pool recycle) a 256 KiB buffer as 20
		// bytes and hold on to far more memory than it is allowed.
		plain = dst[:len(plain)]
	}
	// ReadStored read into sbuf (it is large enough), and the decoded
	// bytes never share memory with the stored ones.
	r.cache.bufs.put(sbuf)
	if err != nil {
		err = fmt.Errorf("snapshot: %w", err)
		r.noteDamagedRead(ref, err)
		return nil, err
	}
	return plain, nil
}

// corruptError marks an error from the index or a codec that already says
// "corrupt data" (index.ErrCorrupt, codec.ErrCorrupt) as this package's
// ErrCorrupt too, without saying it twice.
type corruptError struct{ error }

func (e corruptError) Is(target error) bool { return target == ErrCorrupt }
func (e corruptError) Unwrap() error        { return e.error }

// LoadTree reads and decodes a tree blob (cached). A load of it that
// LoadTreeAhead started is joined.
func (r *Repository) LoadTree(ctx context.Context, id index.ID) (*Tree, error) {
	if t, ok := r.cache.getTree(id); ok {
		return t, nil
	}
	if l := r.treeAhead.loading(id); l != nil {
		select {
		case <-l.done:
			if l.err == nil {
				return l.t, nil
			}
			// Load it here, for this caller's own error.
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return r.loadTreeNow(ctx, id)
}

func (r *Repository) loadTreeNow(ctx context.Context, id index.ID) (*Tree, error) {
	b, err := r.LoadBlob(ctx, id, false)
	if err != nil {
		return nil, err
	}
	t, err := DecodeTree(b)
	if err != nil {
		return nil, fmt.Errorf("snapshot: tree %s: %w", id.Short(), err)
	}
	size := len(b)
	if len(t.Parts) > 0 {
		if size, err = r.loadTreeParts(ctx, id, t); err != nil {
			return nil, err
		}
	}
	r.cache.putTree(id, t, size)
	return t, nil
}

// loadTreeParts fills t.Nodes from the parts of a split directory, checking
// that each part holds what the index says and that the names run on in
// order across parts. It returns the encoded size of all the parts.
func (r *Repository) loadTreeParts(ctx context.Context, id index.ID, t *Tree) (int, error) {
	var total uint64
	for _, p := range t.Parts {
		total += p.Count
	}
	if total > 1<<32 {
		return 0, fmt.Errorf("snapshot: tree %s: %d entries: %w", id.Short(), total, ErrCorrupt)
	}
	t.Nodes = make([]Node, 0, total)
	size := 0
	for i, p := range t.Parts {
		b, err := r.LoadBlob(ctx, p.ID, false)
		if err != nil {
			return 0, fmt.Errorf("snapshot: tree %s part %d: %w", id.Short(), i, err)
		}
		pt, err := DecodeTree(b)
		if err == nil && (len(pt.Parts) > 0 || uint64(len(pt.Nodes)) != p.Count || pt.Nodes[0].Name != p.First ||
			(len(t.Nodes) > 0 && pt.Nodes[0].Name <= t.Nodes[len(t.Nodes)-1].Name) ||
			(i+1 < len(t.Parts) && pt.Nodes[len(pt.Nodes)-1].Name >= t.Parts[i+1].First)) {
			err = fmt.Errorf("snapshot: tree: part does not match its index: %w", ErrCorrupt)
		}
		if err != nil {
			return 0, fmt.Errorf("snapshot: tree %s part %d (%s): %w", id.Short(), i, p.ID.Short(), err)
		}
		t.Nodes = append(t.Nodes, pt.Nodes...)
		size += len(b)
	}
	return size, nil
}

// blobCache is a byte-bounded LRU of decoded chunks and trees.
//
// Chunks that file reads load (loadShared) live in recycled buffers: each
// chunk counts its holders (the cache, and every reader copying out of
// it), and its buffer goes back to bufs when the last one lets go, so a
// sequential read reuses a few dozen buffers instead of allocating (and
// faulting in, and clearing) a fresh one per chunk. Counts change under mu.
type blobCache struct {
	mu    sync.Mutex
	max   int64
	size  int64
	tick  uint64
	items map[index.ID]*cacheItem
	bufs  bufPool
}

type cacheItem struct {
	data *chunk
	tree *Tree
	size int64
	used uint64
}

// chunk is a decoded chunk held by the cache and/or readers.
type chunk struct {
	data []byte
	refs int
	// escaped: the bytes were handed to a caller that does not count
	// itself (LoadBlob), so the buffer must never be recycled.
	escaped bool
}

func newBlobCache(max int64) *blobCache {
	return &blobCache{max: max, items: map[index.ID]*cacheItem{}}
}

// acquire returns the cached chunk with a reference taken for the caller,
// who must release it.
func (c *blobCache) acquire(id index.ID) (*chunk, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.touchLocked(id)
	if !ok || it.data == nil {
		return nil, false
	}
	it.data.refs++
	return it.data, true
}

// touchLocked finds id and marks it most recently used.
func (c *blobCache) touchLocked(id index.ID) (*cacheItem, bool) {
	it, ok := c.items[id]
	if ok {
		c.tick++
		it.used = c.tick
	}
	return it, ok
}

// has reports whether id is cached, without touching its recency.
func (c *blobCache) has(id index.ID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.items[id]
	return ok && it.data != nil
}

// hasTree reports whether tree id is cached, without making it recent.
func (c *blobCache) hasTree(id index.ID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.items[id]
	return ok && it.tree != nil
}

// getEscaped returns a cached chunk's bytes for a caller that keeps them.
func (c *blobCache) getEscaped(id index.ID) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.touchLocked(id)
	if !ok || it.data == nil {
		return nil, false
	}
	it.data.escaped = true
	return it.data.data, true
}

// addRefs adds n references to ch (n may be negative); at zero its buffer
// is recycled.
func (c *blobCache) addRefs(ch *chunk, n int) {
	c.mu.Lock()
	c.addRefsLocked(ch, n)
	c.mu.Unlock()
}

func (c *blobCache) release(ch *chunk) { c.addRefs(ch, -1) }

func (c *blobCache) addRefsLocked(ch *chunk, n int) {
	ch.refs += n
	if ch.refs == 0 && !ch.escaped && ch.data != nil {
		c.bufs.put(ch.data)
		ch.data = nil
	}
}

func (c *blobCache) getTree(id index.ID) (*Tree, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.touchLocked(id)
	if !ok || it.tree == nil {
		return nil, false
	}
	return it.tree, true
}

// put caches bytes that a caller keeps (never recycled).
func (c *blobCache) put(id index.ID, b []byte) {
	c.add(id, &cacheItem{data: &chunk{data: b, escaped: true}, size: int64(cap(b))})
}

// putChunk caches ch, taking a reference for the cache (or none, if it
// is too large to cache).
func (c *blobCache) putChunk(id index.ID, ch *chunk) {
	c.add(id, &cacheItem{data: ch, size: int64(cap(ch.data))})
}

func (c *blobCache) putTree(id index.ID, t *Tree, size int) {
	c.add(id, &cacheItem{tree: t, size: int64(size) * 3})
}

func (c *blobCache) add(id index.ID, it *cacheItem) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if it.size > c.max/4 {
		return
	}
	if it.data != nil {
		it.data.refs++ // the cache's own
	}
	if old, ok := c.items[id]; ok {
		c.remove(id, old)
	}
	c.tick++
	it.used = c.tick
	c.items[id] = it
	c.size += it.size
	for c.size > c.max {
		// Evict the least recently used of a small random sample (map
		// order): O(1) per eviction, close enough to LRU for chunk reads.
		var victim index.ID
		var vi *cacheItem
		n := 0
		for k, v := range c.items {
			if vi == nil || v.used < vi.used {
				victim, vi = k, v
			}
			if n++; n >= 8 {
				break
			}
		}
		c.remove(victim, vi)
	}
}

// drop removes id's decoded chunk from the cache; its buffer is recycled
// once no reader holds it.
func (c *blobCache) drop(id index.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if it, ok := c.items[id]; ok && it.data != nil {
		c.remove(id, it)
	}
}

// remove drops an item (under mu) and the cache's reference to its chunk.
func (c *blobCache) remove(id index.ID, it *cacheItem) {
	delete(c.items, id)
	c.size -= it.size
	if it.data != nil {
		c.addRefsLocked(it.data, -1)
	}
}

// bufPool recycles chunk buffers. Chunks differ in size, so it keeps a
// few buffers (at most bufPoolBytes in all) and hands out the smallest
// that fits; buffers are allocated with their length rounded up so that a
// recycled one fits most chunks. In a steady sequential read each load
// takes about the buffer an eviction gave back, so few are ever idle.
type bufPool struct {
	mu    sync.Mutex
	free  [][]byte
	bytes int
}

const (
	bufPoolBytes = 32 << 20  // idle buffers kept, in bytes
	bufPoolRound = 256 << 10 // allocation granularity
	bufPoolMin   = 64 << 10  // smaller buffers are not pooled
)

func (p *bufPool) get(n int) []byte {
	if n < bufPoolMin {
		// Small files' chunks: the allocator's size classes fit them far
		// better than a pooled buffer rounded up to bufPoolRound.
		return make([]byte, n)
	}
	p.mu.Lock()
	best := -1
	for i, b := range p.free {
		if cap(b) >= n && cap(b) <= n+n/2+bufPoolRound && (best < 0 || cap(b) < cap(p.free[best])) {
			best = i
		}
	}
	if best >= 0 {
		b := p.free[best]
		last := len(p.free) - 1
		p.free[best] = p.free[last]
		p.free[last] = nil
		p.free = p.free[:last]
		p.bytes -= cap(b)
		p.mu.Unlock()
		return b[:n]
	}
	p.mu.Unlock()
	return make([]byte, n, (n+bufPoolRound-1)/bufPoolRound*bufPoolRound)
}

func (p *bufPool) put(b []byte) {
	if cap(b) < bufPoolMin || cap(b) > bufPoolBytes/4 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// Full: drop the smallest buffers (larger ones fit more chunks) as
	// long as b is larger than them, else b itself.
	for p.bytes+cap(b) > bufPoolBytes {
		small := -1
		for i, f := range p.free {
			if small < 0 || cap(f) < cap(p.free[small]) {
				small = i
			}
		}
		if small < 0 || cap(p.free[small]) >= cap(b) {
			return
		}
		p.bytes -= cap(p.free[small])
		last := len(p.free) - 1
		p.free[small] = p.free[last]
		p.free[last] = nil
		p.free = p.free[:last]
	}
	p.free = append(p.free, b[:0])
	p.bytes += cap(b)
}
