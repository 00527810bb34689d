package index

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func cacheRef(i int, n int) BlobRef {
	pack := Hash([]byte(fmt.Sprintf("pack %d", i%3)))
	return BlobRef{ID: Hash([]byte(fmt.Sprint(i))), Pack: pack, PackEntry: PackEntry{Offset: uint64(i) * 1000, Length: uint32(n)}}
}

func cacheData(i, n int) []byte { return bytes.Repeat([]byte{byte(i)}, n) }

// The cache keeps what it is given up to its bound and evicts the least
// recently used first; a hit makes an entry recent, and that order
// survives a reopen (the files' times).
func TestBlobCacheEvictsLeastRecentlyUsed(t *testing.T) {
	dir := t.TempDir()
	const n = 1000
	entry := int64(blobCacheHeader + n)
	c, err := OpenBlobCache(dir, 8*entry) // room for 8
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		c.Put(cacheRef(i, n), cacheData(i, n))
		// Distinct times for the reopen's order (coarse file system clocks).
		os.Chtimes(filepath.Join(dir, cacheKey(cacheRef(i, n))), time.Unix(int64(1000+i), 0), time.Unix(int64(1000+i), 0))
	}
	if c.Len() != 8 || c.Size() != 8*entry {
		t.Fatalf("%d entries, %d bytes; want 8, %d", c.Len(), c.Size(), 8*entry)
	}
	// 0 is the oldest; a hit makes it the newest, so 1 goes first.
	if b, ok := c.Get(cacheRef(0, n), nil); !ok || !bytes.Equal(b, cacheData(0, n)) {
		t.Fatal("entry 0 not served")
	}
	c.Put(cacheRef(8, n), cacheData(8, n))
	if _, ok := c.Get(cacheRef(1, n), nil); ok {
		t.Fatal("the least recently used entry (1) was kept over the bound")
	}
	for _, i := range []int{0, 2, 8} {
		if b, ok := c.Get(cacheRef(i, n), make([]byte, 0, n)); !ok || !bytes.Equal(b, cacheData(i, n)) {
			t.Fatalf("entry %d lost or wrong", i)
		}
	}
	if c.Size() > 8*entry {
		t.Fatalf("cache holds %d bytes, bound %d", c.Size(), 8*entry)
	}
	files := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files++
		}
		return nil
	})
	if files != 8 {
		t.Fatalf("%d files in the cache directory, want 8 (evicted entries are removed)", files)
	}

	// Reopen smaller: the oldest by time go (3 to 7 were not touched
	// since they were put; 0, 2 and 8 were hit last).
	os.MkdirAll(filepath.Join(dir, "ab"), 0o700)
	os.WriteFile(filepath.Join(dir, "ab", "tmp-1-2"), []byte("torn"), 0o600)
	c2, err := OpenBlobCache(dir, 3*entry)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Len() != 3 {
		t.Fatalf("reopened with room for 3: %d entries", c2.Len())
	}
	for _, i := range []int{0, 2, 8} {
		if _, ok := c2.Get(cacheRef(i, n), nil); !ok {
			t.Fatalf("recently used entry %d evicted at reopen", i)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ab", "tmp-1-2")); !os.IsNotExist(err) {
		t.Fatal("a temporary file a killed writer left was kept")
	}
	// Too large for the bound: not kept at all.
	c2.Put(cacheRef(20, 2*n), cacheData(20, 2*n))
	if _, ok := c2.Get(cacheRef(20, 2*n), nil); ok {
		t.Fatal("an entry over an eighth of the bound was cached")
	}
}

// A torn or damaged entry (a crash after the rename, before the bytes
// reached the disk; a flipped bit) is a miss and is removed: never wrong
// bytes.
func TestBlobCacheDamagedEntryIsAMiss(t *testing.T) {
	const n = 4096
	for name, damage := range map[string]func(p string){
		"flipped byte": func(p string) {
			b, _ := os.ReadFile(p)
			b[len(b)-7] ^= 1
			os.WriteFile(p, b, 0o600)
		},
		"short":      func(p string) { os.Truncate(p, blobCacheHeader+n/2) },
		"zeros":      func(p string) { os.WriteFile(p, make([]byte, blobCacheHeader+n), 0o600) },
		"empty":      func(p string) { os.Truncate(p, 0) },
		"trailing":   func(p string) { f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0); f.Write([]byte("x")); f.Close() },
		"bad length": func(p string) { f, _ := os.OpenFile(p, os.O_WRONLY, 0); f.WriteAt([]byte{0, 1}, 8); f.Close() },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			c, err := OpenBlobCache(dir, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			ref := cacheRef(1, n)
			c.Put(ref, cacheData(1, n))
			p := filepath.Join(dir, cacheKey(ref))
			damage(p)
			if b, ok := c.Get(ref, nil); ok {
				t.Fatalf("damaged entry served (%d bytes, equal %v)", len(b), bytes.Equal(b, cacheData(1, n)))
			}
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Fatal("damaged entry left in place")
			}
			if c.Len() != 0 || c.Size() != 0 || c.Stats().Bad != 1 {
				t.Fatalf("after a bad entry: %d entries, %d bytes, %+v", c.Len(), c.Size(), c.Stats())
			}
			// And it is cached again once fetched again.
			c.Put(ref, cacheData(1, n))
			if b, ok := c.Get(ref, nil); !ok || !bytes.Equal(b, cacheData(1, n)) {
				t.Fatal("entry not cached again")
			}
		})
	}
}

// Readers and writers at once (a mount's many reads, its prefetch
// workers): every hit is the right bytes, the bound holds, and what the
// cache counts is what is on disk.
func TestBlobCacheConcurrent(t *testing.T) {
	dir := t.TempDir()
	const n = 512
	bound := int64(10 * (blobCacheHeader + n))
	c, err := OpenBlobCache(dir, bound)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 400 {
				i := (k*7 + g*13) % 50
				ref := cacheRef(i, n)
				if b, ok := c.Get(ref, nil); ok && !bytes.Equal(b, cacheData(i, n)) {
					errs <- fmt.Sprintf("entry %d: wrong bytes", i)
					return
				} else if !ok {
					c.Put(ref, cacheData(i, n))
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	if c.Size() > bound {
		t.Fatalf("%d bytes cached, bound %d", c.Size(), bound)
	}
	files := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files++
		}
		return nil
	})
	if files != c.Len() {
		t.Fatalf("%d files on disk, %d entries counted", files, c.Len())
	}
}
