package index

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// A remote repository lives whole in a Store (an S3 bucket and prefix):
//
//	citadel.json            the config, put once, if absent, by InitStore
//	packs/<xx>/<id>.pack    the packs, content-named, put if absent
//	snapshots/<id>          a snapshot's manifest: the snapshot exists
//	                        while this object does (put last by a snapshot,
//	                        deleted by forget)
//	locks/<random>          lock objects (StoreLock)
//
// Its Pebble index is only a cache on this host (Options.CacheDir): it
// can be deleted at any time, and OpenStore brings it up to date with the
// store on every open (syncCache): packs another host wrote are indexed
// from their trailers (two ranged reads each), packs another host's
// prune deleted are dropped, and snapshots follow the snapshots/ objects.

const (
	snapshotsPrefix = "snapshots/"
	cacheRepoFile   = "repository"
)

// DefaultCacheRoot is where a remote repository's cache lives when
// Options.CacheDir is not given: <root>/<repository id>.
const DefaultCacheRoot = "/var/cache/citadelfs"

// InitOptions say how InitStoreWith makes a repository.
type InitOptions struct {
	// Chunker are the chunking sizes. For an encrypted repository the
	// seed is not stored (0): its gear table comes from Keys.GearSeed,
	// so citadel.json, which is plaintext, says nothing about boundaries.
	Chunker ChunkerParams
	// Encryption is EncryptionAESGCM or EncryptionNone ("" = none). An
	// encrypted repository needs a key slot (CreateKeySlot) before
	// citadel.json is written, or nobody could ever open it: InitEncrypted
	// does both in that order.
	Encryption string
	// Now is the creation time (default time.Now).
	Now time.Time
	// ObjectLock (nil for none) is recorded in citadel.json and set on
	// the store before anything is written, so citadel.json (and a key
	// slot) is the first object under that retention (objectlock.go).
	ObjectLock *ObjectLock
}

// InitStore creates a repository in the clear in store s (location names
// it in messages: s3://bucket/prefix). It writes citadel.json only, if
// absent.
func InitStore(s Store, location string, cp ChunkerParams, now time.Time) (*Config, error) {
	return InitStoreWith(s, location, InitOptions{Chunker: cp, Now: now})
}

// InitStoreWith creates a repository in store s as o says: it writes
// citadel.json only, if absent (format version FormatVersion).
func InitStoreWith(s Store, location string, o InitOptions) (*Config, error) {
	cfg, err := newStoreConfig(o)
	if err != nil {
		return nil, fmt.Errorf("index: init %s: %w", location, err)
	}
	if err := applyObjectLock(s, cfg, location); err != nil {
		return nil, err
	}
	return cfg, putConfig(s, location, cfg)
}

// newStoreConfig is the citadel.json InitStoreWith writes.
func newStoreConfig(o InitOptions) (*Config, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	switch o.Encryption {
	case "":
		o.Encryption = EncryptionNone
	case EncryptionNone:
	case EncryptionAESGCM:
		o.Chunker.Seed = 0
	default:
		return nil, fmt.Errorf("encryption %q: want %q or %q", o.Encryption, EncryptionAESGCM, EncryptionNone)
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	cfg := &Config{Version: FormatVersion, ID: hex.EncodeToString(id[:]), Created: o.Now.UTC(), Hash: "blake3", Chunker: o.Chunker,
		Encryption: o.Encryption, ObjectLock: o.ObjectLock}
	if o.ObjectLock != nil {
		if err := o.ObjectLock.check(); err != nil {
			return nil, err
		}
	}
	cfg.Checksum = configChecksum(*cfg)
	return cfg, nil
}

// putConfig writes citadel.json into s if it is absent.
func putConfig(s Store, location string, cfg *Config) error {
	err := s.Put(configName, encodeConfig(*cfg))
	if errors.Is(err, ErrObjectExists) {
		return fmt.Errorf("index: init %s: a repository already exists there", location)
	}
	if err != nil {
		return fmt.Errorf("index: init %s: %w", location, err)
	}
	return nil
}

// ReadStoreConfig reads and validates citadel.json from store s.
func ReadStoreConfig(s Store, location string) (*Config, error) {
	size, err := s.Stat(configName)
	if isNotExist(err) {
		hint := ""
		if strings.HasPrefix(location, "s3://") {
			hint = "; if it was deleted from a bucket with versioning or Object Lock, 'citadelfs repair undelete' brings it back"
		}
		return nil, fmt.Errorf("%s has no %s: %w (create one with 'citadelfs init --repo %s'%s)", location, configName, ErrNoRepository, location, hint)
	}
	if err != nil {
		return nil, fmt.Errorf("index: read %s/%s: %w", location, configName, err)
	}
	if size > 1<<20 {
		return nil, fmt.Errorf("index: %s/%s is %d bytes, not a citadelfs config: %w", location, configName, size, ErrCorrupt)
	}
	data, err := s.ReadRange(configName, 0, int(size), nil)
	if err != nil {
		return nil, fmt.Errorf("index: read %s/%s: %w", location, configName, err)
	}
	return parseConfig(location, data)
}

// OpenStore opens the repository in store s: citadel.json from the store,
// a lock object in the store (shared, or Options.Exclusive), and the
// local cache index, made or brought up to date from the store.
func OpenStore(s Store, location string, o Options) (*Repo, error) {
	o = o.withDefaults()
	if o.WrapStore != nil {
		s = o.WrapStore(s)
	}
	if o.ReadOnly {
		s = NewReadOnlyStore(s)
	}
	cfg, err := ReadStoreConfig(s, location)
	if err != nil {
		return nil, err
	}
	if err := checkKeys(cfg, o.Keys, location); err != nil {
		return nil, err
	}
	if err := applyObjectLock(s, cfg, location); err != nil {
		return nil, err
	}
	cache := o.CacheDir
	if cache == "" {
		cache = filepath.Join(DefaultCacheRoot, cfg.ID)
	}
	if err := prepareCache(cache, cfg, location); err != nil {
		return nil, err
	}
	var lock *StoreLock
	if !o.ReadOnly {
		kind := LockShared
		switch {
		case o.Exclusive:
			kind = LockExclusive
		case o.Reader:
			kind = LockReader
		}
		lock, err = AcquireStoreLockKind(s, kind, o.Command, o.Now, o.LockTimes)
		if err != nil {
			return nil, err
		}
	}
	if o.RebuildCache {
		if err := os.RemoveAll(filepath.Join(cache, indexDir)); err != nil {
			lock.Release()
			return nil, fmt.Errorf("index: cache %s: %w", cache, err)
		}
	}
	kv, err := OpenKV(filepath.Join(cache, indexDir), KVOptions{})
	if err != nil {
		lock.Release()
		return nil, fmt.Errorf("index: cache %s: %w", cache, err)
	}
	r := &Repo{Dir: location, Config: cfg, KV: kv, Store: s, rlock: lock, remote: true, CacheDir: cache, Keys: o.Keys}
	if o.BlobCacheSize > 0 {
		// Opened under the KV's lock: one process per cache directory.
		if r.BlobCache, err = OpenBlobCache(filepath.Join(cache, blobCacheDir), o.BlobCacheSize); err != nil {
			r.Close()
			return nil, err
		}
	} else {
		// Left from a run with a cache: it would only take space.
		os.RemoveAll(filepath.Join(cache, blobCacheDir))
	}
	if r.LastSync, err = r.SyncCache(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// prepareCache makes the cache directory and checks it is this
// repository's: a cache of another repository would make this one look
// as if it held that one's blobs.
func prepareCache(dir string, cfg *Config, location string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("index: cache %s: %w", dir, err)
	}
	p := filepath.Join(dir, cacheRepoFile)
	b, err := os.ReadFile(p)
	if err == nil {
		if id := strings.TrimSpace(strings.SplitN(string(b), " ", 2)[0]); id != cfg.ID {
			return fmt.Errorf("index: cache %s belongs to repository %s, not to %s (%s); give this one a --cache-dir of its own", dir, id, cfg.ID, location)
		}
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("index: cache %s: %w", dir, err)
	}
	// A directory with anything else in it is not a cache we made.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != indexDir && e.Name() != blobCacheDir {
			return fmt.Errorf("index: cache %s is not empty and holds no citadelfs cache; give a --cache-dir of its own", dir)
		}
	}
	return writeFileSync(p, []byte(cfg.ID+" "+location+"\n"), 0o600)
}

// IsRemote reports whether the repository lives in a store other than a
// local directory (its index is a cache).
func (r *Repo) IsRemote() bool { return r.remote }

func snapshotName(id ID) string { return snapshotsPrefix + id.String() }

// SyncResult says what SyncCache changed in the cache.
type SyncResult struct {
	PacksAdded, PacksDropped int
	// FromIndexObjects counts the packs of PacksAdded indexed from index
	// objects; the others were read from their trailers.
	FromIndexObjects                 int
	SnapshotsAdded, SnapshotsDropped int
	// Damaged names packs whose trailer could not be read.
	Damaged []string
	// BlobsRefound counts blobs of dropped packs indexed again in
	// another pack that holds them (refindBlobs).
	BlobsRefound int
}

// SyncCache brings a remote repository's cache index up to date with
// the store. It is idempotent, and a sync that is cut short leaves a
// consistent cache (each pack is one batch) that the next one finishes.
// Its cost is one listing of packs/ and snapshots/, plus two small
// ranged reads for each pack the cache does not know yet.
func (r *Repo) SyncCache() (*SyncResult, error) {
	res := &SyncResult{}
	inStore, err := r.ListPacks()
	if err != nil {
		return nil, err
	}
	present := make(map[ID]int64, len(inStore))
	for _, p := range inStore {
		present[p.ID] = p.Size
	}
	// Packs gone from the store (another host's prune): their blobs go
	// first, so that a blob it moved to a new pack is indexed there next.
	missing := map[ID]bool{}
	if err := r.IndexedPacks(func(id ID, _ int, _ uint64) error {
		if _, ok := present[id]; !ok {
			missing[id] = true
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		b := r.KV.NewBatch()
		orphans := map[ID]bool{}
		if err := r.Blobs(func(ref BlobRef) error {
			if missing[ref.Pack] {
				b.Delete(blobKey(ref.ID))
				orphans[ref.ID] = true
			}
			return nil
		}); err != nil {
			return nil, err
		}
		// In the same batch, so a crash cannot leave them unindexed.
		if err := r.refindBlobs(b, orphans, missing, present); err != nil {
			return nil, err
		}
		for id := range missing {
			b.Delete(append([]byte{prefixPack}, id[:]...))
		}
		if err := b.Commit(true); err != nil {
			return nil, err
		}
		res.PacksDropped = len(missing)
		res.BlobsRefound = len(orphans)
	}
	// Index objects first: one read per writing session.
	n, err := r.applyIndexObjects(present, res)
	if err != nil {
		return nil, err
	}
	res.PacksAdded += n
	res.FromIndexObjects = n
	var fresh []PackInfo
	for _, p := range inStore {
		if ok, err := r.IsIndexedPack(p.ID); err != nil {
			return nil, err
		} else if !ok {
			fresh = append(fresh, p)
		}
	}
	trailers := readTrailers(r.Store, r.Keys, fresh, 8)
	for i, p := range fresh {
		t := trailers[i]
		if t.err != nil {
			res.Damaged = append(res.Damaged, fmt.Sprintf("%s: %v", p.ID.Short(), t.err))
			continue
		}
		var keep []PackEntry
		for _, e := range t.entries {
			if ok, err := r.HasBlob(e.ID); err != nil {
				return nil, err
			} else if !ok {
				keep = append(keep, e)
			}
		}
		if err := r.commitRebuiltPack(p.ID, keep, len(t.entries), uint64(t.size)); err != nil {
			return nil, err
		}
		res.PacksAdded++
	}
	if err := r.syncSnapshots(res); err != nil {
		return nil, err
	}
	return res, nil
}

type trailerResult struct {
	entries []PackEntry
	size    int64
	err     error
}

// readTrailers reads the trailers of packs with n in flight: a new host's
// first sync reads every pack's, and each is two round trips.
func readTrailers(s Store, keys *Keys, packs []PackInfo, n int) []trailerResult {
	out := make([]trailerResult, len(packs))
	sem := make(chan struct{}, n)
	done := make(chan struct{})
	for i := range packs {
		go func() {
			sem <- struct{}{}
			es, err := readTrailerSized(s, keys, packs[i])
			out[i] = trailerResult{es, packs[i].Size, err}
			<-sem
			done <- struct{}{}
		}()
	}
	for range packs {
		<-done
	}
	return out
}

// syncSnapshots makes the cache's snapshot records those of the store's
// snapshots/ objects.
func (r *Repo) syncSnapshots(res *SyncResult) error {
	inStore := map[ID]bool{}
	if err := r.Store.List(snapshotsPrefix, func(name string, size int64) error {
		id, err := ParseID(strings.TrimPrefix(name, snapshotsPrefix))
		if err == nil {
			inStore[id] = true
		}
		return nil
	}); err != nil {
		return fmt.Errorf("index: list snapshots: %w", err)
	}
	forgotten, err := r.forgottenSnapshots()
	if err != nil {
		return err
	}
	for id := range forgotten {
		delete(inStore, id)
	}
	var gone []ID
	if err := r.Snapshots(func(id ID, _ []byte) error {
		if !inStore[id] {
			gone = append(gone, id)
		} else {
			delete(inStore, id)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, id := range gone {
		if err := r.KV.Delete(SnapshotKey(id), true); err != nil {
			return err
		}
		res.SnapshotsDropped++
	}
	for id := range inStore {
		name := snapshotName(id)
		size, err := r.Store.Stat(name)
		if err != nil {
			return fmt.Errorf("index: snapshot %s: %w", id.Short(), err)
		}
		if size > MaxBlobSize {
			res.Damaged = append(res.Damaged, fmt.Sprintf("snapshot %s: %d bytes", id.Short(), size))
			continue
		}
		data, err := r.Store.ReadRange(name, 0, int(size), nil)
		if err != nil {
			return fmt.Errorf("index: snapshot %s: %w", id.Short(), err)
		}
		if r.Keys != nil {
			if data, err = r.Keys.openObject(adSnapshot, id[:], data); err != nil {
				res.Damaged = append(res.Damaged, fmt.Sprintf("snapshot %s: %v", id.Short(), err))
				continue
			}
		}
		if r.Keys.BlobID(data) != id {
			res.Damaged = append(res.Damaged, fmt.Sprintf("snapshot %s fails its hash check", id.Short()))
			continue
		}
		if err := r.KV.Put(SnapshotKey(id), data, true); err != nil {
			return err
		}
		res.SnapshotsAdded++
	}
	return nil
}

// tailSpan is how much of a pack's end readTrailerSized fetches at once:
// the footer and, for packs of up to about 1300 blobs, the whole trailer.
const tailSpan = 64 << 10

// readTrailerSized reads the trailer of a pack whose size the listing
// gave: one ranged GET of its header and one of its tail, where
// ReadStoreTrailer needs a HEAD and three.
func readTrailerSized(s Store, keys *Keys, p PackInfo) ([]PackEntry, error) {
	name := PackName(p.ID)
	r := &tailReader{s: s, name: name, size: p.Size}
	es, err := decodeTrailer(r, p.Size, keys, &p.ID)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", p.ID.Short(), err)
	}
	return es, nil
}

// tailReader serves a pack's header and tail from one read each.
type tailReader struct {
	s          Store
	name       string
	size       int64
	tail       []byte
	tailOff    int64
	head       []byte
	tailLoaded bool
}

func (t *tailReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) <= headerSize {
		if t.head == nil {
			b, err := t.s.ReadRange(t.name, 0, int(min(headerSize, t.size)), nil)
			if err != nil {
				return 0, err
			}
			t.head = b
		}
		return copy(p, t.head[off:]), nil
	}
	if !t.tailLoaded {
		t.tailOff = max(0, t.size-tailSpan)
		b, err := t.s.ReadRange(t.name, t.tailOff, int(t.size-t.tailOff), nil)
		if err != nil {
			return 0, err
		}
		t.tail, t.tailLoaded = b, true
	}
	if off >= t.tailOff && off+int64(len(p)) <= t.tailOff+int64(len(t.tail)) {
		return copy(p, t.tail[off-t.tailOff:]), nil
	}
	return readerAt{t.s, t.name}.ReadAt(p, off) // a trailer bigger than the tail
}

// refindBlobs adds to b, for each of orphans (blobs of the packs missing
// from the store, whose entries b deletes), an entry in another pack this
// cache knows that holds it, if one does; orphans keeps the ones found.
//
// Two hosts that store the same new chunks at the same moment both
// upload them, in different packs. Each cache, when it next syncs, knows
// the other's pack but indexes none of those chunks there: it holds them
// in its own. A prune on one host then deletes the other's copy (dead in
// its index), and the host it belonged to must be pointed at the copy
// that stays, or its snapshots no longer restore and check calls them
// damaged. Most blobs of a pruned pack are dead and found nowhere; this
// costs one read per index object, and the trailers of the known packs no
// index object names, only after packs went from the store.
func (r *Repo) refindBlobs(b *Batch, orphans, missing map[ID]bool, present map[ID]int64) error {
	if len(orphans) == 0 {
		return nil
	}
	found := map[ID]bool{}
	take := func(pack ID, es []PackEntry) {
		for _, e := range es {
			if orphans[e.ID] && !found[e.ID] {
				b.Put(blobKey(e.ID), encodeBlobRef(pack, e))
				found[e.ID] = true
			}
		}
	}
	known := func(id ID) (bool, error) {
		if _, ok := present[id]; !ok || missing[id] {
			return false, nil
		}
		return r.IsIndexedPack(id)
	}
	var names []string
	if err := r.Store.List(indexObjsPrefix, func(name string, _ int64) error {
		names = append(names, name)
		return nil
	}); err != nil {
		return fmt.Errorf("index: list index objects: %w", err)
	}
	named := map[ID]bool{}
	for _, name := range names {
		size, err := r.Store.Stat(name)
		if isNotExist(err) || err == nil && size > 256<<20 {
			continue
		}
		if err != nil {
			return err
		}
		data, err := r.Store.ReadRange(name, 0, int(size), nil)
		if isNotExist(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("index: read %s: %w", name, err)
		}
		ps, err := decodeStoredIndexObj(r.Keys, name, data)
		if err != nil {
			continue // reported by applyIndexObjects
		}
		for _, p := range ps {
			if sz, ok := present[p.id]; !ok || uint64(sz) != p.size {
				continue
			}
			named[p.id] = true
			if ok, err := known(p.id); err != nil {
				return err
			} else if ok {
				take(p.id, p.entries)
			}
		}
	}
	if len(found) < len(orphans) {
		var rest []PackInfo
		for id, size := range present {
			if named[id] {
				continue
			}
			if ok, err := known(id); err != nil {
				return err
			} else if ok {
				rest = append(rest, PackInfo{ID: id, Size: size})
			}
		}
		for i, t := range readTrailers(r.Store, r.Keys, rest, 8) {
			if t.err == nil {
				take(rest[i].ID, t.entries)
			}
		}
	}
	for id := range orphans {
		if !found[id] {
			delete(orphans, id)
		}
	}
	return nil
}
