package index

import (
	"container/list"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// BlobCache keeps the stored (still encoded) bytes of blobs a remote
// repository's reads fetched, in files under <cache dir>/blobs, so that a
// mount or restore that reads them again does not fetch them again.
//
// Entries are keyed by pack, offset and length: exactly one ranged read of
// ReadStored. The total is bounded (BlobCacheSize bytes on disk); the
// least recently used entries go first. It is an LRU in memory, rebuilt
// at open from the files' modification times (a hit touches its file).
//
// Crash safety: an entry is written to a temporary file and renamed into
// place, without fsync. A crash may leave a renamed file whose bytes never
// reached the disk (zeros, or short), so every entry carries its length
// and the CRC-32C of its bytes, checked on each hit: an entry that fails
// is removed and the blob fetched from the store again. A torn cache file
// is a miss, never wrong bytes and never a finding of damage in the
// repository. (The blob's id is verified after decoding anyway; an entry
// that passes its CRC but not that check, which only bytes the store
// handed back wrong can make, is dropped by Repo.DropCached and read from
// the store once more before anything is reported.)
//
// One process uses a cache directory at a time: the Pebble index beside
// it is locked while the repository is open.
type BlobCache struct {
	dir string
	max int64

	mu      sync.Mutex
	lru     *list.List // of *cacheEntry, most recent first
	entries map[string]*list.Element
	size    int64
	seq     atomic.Int64 // temporary file names

	hits, misses, bad atomic.Int64
}

type cacheEntry struct {
	key  string // the file's path below dir
	size int64  // on disk, header included
}

// blobCacheDir is the cache's directory inside a remote repository's
// cache directory.
const blobCacheDir = "blobs"

// blobCacheMagic starts every entry; the header is the magic, the
// payload's length and its CRC-32C.
const (
	blobCacheMagic  = "cfsblob1"
	blobCacheHeader = 8 + 4 + 4
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// OpenBlobCache opens (making it if needed) the blob cache in dir,
// holding at most max bytes. It removes temporary files a killed process
// left, and entries over the bound (a smaller size than last time).
func OpenBlobCache(dir string, max int64) (*BlobCache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("index: blob cache: %w", err)
	}
	c := &BlobCache{dir: dir, max: max, lru: list.New(), entries: map[string]*list.Element{}}
	type found struct {
		key   string
		size  int64
		mtime time.Time
	}
	var all []found
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if strings.HasPrefix(d.Name(), "tmp-") || !validCacheKey(rel) {
			os.Remove(p)
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		all = append(all, found{rel, info.Size(), info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index: blob cache %s: %w", dir, err)
	}
	// Oldest first, so each PushFront leaves the newest at the front.
	sort.Slice(all, func(i, j int) bool { return all[i].mtime.Before(all[j].mtime) })
	for _, f := range all {
		c.entries[f.key] = c.lru.PushFront(&cacheEntry{key: f.key, size: f.size})
		c.size += f.size
	}
	c.mu.Lock()
	c.evictLocked()
	c.mu.Unlock()
	return c, nil
}

// cacheKey is the entry's path below the cache directory:
// <xx>/<pack id>.<offset>.<length>.
func cacheKey(ref BlobRef) string {
	s := ref.Pack.String()
	return s[:2] + "/" + s + "." + strconv.FormatUint(uint64(ref.Offset), 10) + "." + strconv.FormatUint(uint64(ref.Length), 10)
}

// validCacheKey reports whether rel is a name cacheKey makes.
func validCacheKey(rel string) bool {
	dir, name, ok := strings.Cut(filepath.ToSlash(rel), "/")
	if !ok || len(dir) != 2 || len(name) < 64+4 || name[:2] != dir {
		return false
	}
	if _, err := ParseID(name[:64]); err != nil {
		return false
	}
	parts := strings.Split(name[64:], ".")
	if len(parts) != 3 || parts[0] != "" {
		return false
	}
	for _, p := range parts[1:] {
		if _, err := strconv.ParseUint(p, 10, 64); err != nil {
			return false
		}
	}
	return true
}

// Size is what the entries take on disk now.
func (c *BlobCache) Size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}

// Len is the number of entries.
func (c *BlobCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// BlobCacheStats counts what the cache did since it was opened.
type BlobCacheStats struct {
	Hits, Misses int64
	// Bad counts entries that failed their length or CRC check (or the
	// blob's own check, Repo.DropCached) and were removed.
	Bad int64
}

// Stats returns the counts.
func (c *BlobCache) Stats() BlobCacheStats {
	return BlobCacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Bad: c.bad.Load()}
}

// Get returns the cached stored bytes of ref, read into buf when it is
// large enough. ok is false on a miss, and for an entry that fails its
// checks (which is removed).
func (c *BlobCache) Get(ref BlobRef, buf []byte) ([]byte, bool) {
	key := cacheKey(ref)
	c.mu.Lock()
	el, ok := c.entries[key]
	if ok {
		c.lru.MoveToFront(el)
	}
	c.mu.Unlock()
	if !ok {
		c.misses.Add(1)
		return nil, false
	}
	b, err := c.read(key, int(ref.Length), buf)
	if err != nil {
		c.misses.Add(1)
		c.bad.Add(1)
		c.remove(key)
		return nil, false
	}
	c.hits.Add(1)
	now := time.Now()
	os.Chtimes(filepath.Join(c.dir, key), now, now) // recency for the next open
	return b, true
}

// errBadEntry: a cache file that is not what its name and header say.
var errBadEntry = errors.New("bad blob cache entry")

func (c *BlobCache) read(key string, n int, buf []byte) ([]byte, error) {
	f, err := os.Open(filepath.Join(c.dir, key))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var h [blobCacheHeader]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		return nil, errBadEntry
	}
	if string(h[:8]) != blobCacheMagic || int(binary.LittleEndian.Uint32(h[8:12])) != n {
		return nil, errBadEntry
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if got, _ := f.ReadAt(buf, blobCacheHeader); got != n {
		return nil, errBadEntry
	}
	// Anything after the payload: not a file this cache wrote whole.
	var one [1]byte
	if got, _ := f.ReadAt(one[:], int64(blobCacheHeader+n)); got != 0 {
		return nil, errBadEntry
	}
	if crc32.Checksum(buf, crc32c) != binary.LittleEndian.Uint32(h[12:16]) {
		return nil, errBadEntry
	}
	return buf, nil
}

// Put stores the stored bytes of ref. Entries larger than an eighth of
// the bound are not kept (one would push out many others). A failure to
// write (a full disk) only means the entry is not cached.
func (c *BlobCache) Put(ref BlobRef, data []byte) {
	size := int64(blobCacheHeader + len(data))
	if len(data) != int(ref.Length) || size > c.max/8 {
		return
	}
	key := cacheKey(ref)
	c.mu.Lock()
	_, ok := c.entries[key]
	c.mu.Unlock()
	if ok {
		return
	}
	tmp, err := c.write(key, data)
	if err != nil {
		return
	}
	// The rename, like every removal, under mu: what entries holds is
	// what is on disk.
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; ok {
		os.Remove(tmp) // two readers fetched it at once
		return
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, key)); err != nil {
		os.Remove(tmp)
		return
	}
	c.entries[key] = c.lru.PushFront(&cacheEntry{key: key, size: size})
	c.size += size
	c.evictLocked()
}

// write writes an entry's file under a temporary name, beside where it
// goes, and returns that name.
func (c *BlobCache) write(key string, data []byte) (string, error) {
	dir := filepath.Dir(filepath.Join(c.dir, key))
	tmp := filepath.Join(dir, "tmp-"+strconv.FormatInt(c.seq.Add(1), 10)+"-"+strconv.Itoa(os.Getpid()))
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(dir, 0o700); err == nil {
			f, err = os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		}
	}
	if err != nil {
		return "", err
	}
	var h [blobCacheHeader]byte
	copy(h[:8], blobCacheMagic)
	binary.LittleEndian.PutUint32(h[8:12], uint32(len(data)))
	binary.LittleEndian.PutUint32(h[12:16], crc32.Checksum(data, crc32c))
	_, err = f.Write(h[:])
	if err == nil {
		_, err = f.Write(data)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

// Drop removes ref's entry, if there is one, and reports whether there
// was.
func (c *BlobCache) Drop(ref BlobRef) bool {
	key := cacheKey(ref)
	c.mu.Lock()
	_, ok := c.entries[key]
	c.mu.Unlock()
	if ok {
		c.bad.Add(1)
		c.remove(key)
	}
	return ok
}

func (c *BlobCache) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		e := el.Value.(*cacheEntry)
		c.lru.Remove(el)
		delete(c.entries, key)
		c.size -= e.size
	}
	os.Remove(filepath.Join(c.dir, key))
}

// evictLocked removes the least recently used entries until the cache
// fits its bound.
func (c *BlobCache) evictLocked() {
	for c.size > c.max {
		el := c.lru.Back()
		if el == nil {
			return
		}
		e := el.Value.(*cacheEntry)
		c.lru.Remove(el)
		delete(c.entries, e.key)
		c.size -= e.size
		os.Remove(filepath.Join(c.dir, e.key))
	}
}
