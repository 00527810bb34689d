package index

import (
	"errors"
	"fmt"
	"testing"
)

// The file-change cache's keys are f, label, NUL, path (docs/format.md);
// Put commits more entries than one batch holds; Clear drops the cache and
// nothing else, not even a record whose key starts like a cache entry's
// value would.
func TestFileCache(t *testing.T) {
	r := newTestRepo(t)
	c := r.FileCache()
	if k := c.Key("models", "llama/w.bin"); string(k) != "fmodels\x00llama/w.bin" {
		t.Fatalf("Key = %q", k)
	}
	var entries [][2][]byte
	for i := range fileCacheBatch + 10 {
		entries = append(entries, [2][]byte{c.Key("src", fmt.Sprint("file", i)), []byte(fmt.Sprint("node", i))})
	}
	if err := c.Put(entries); err != nil {
		t.Fatal(err)
	}
	if err := r.AttemptStore().Save("src", Attempt{Label: "src"}); err != nil {
		t.Fatal(err)
	}
	last := fmt.Sprint("file", fileCacheBatch+9)
	if v, err := c.Get(c.Key("src", last)); err != nil || string(v) != fmt.Sprint("node", fileCacheBatch+9) {
		t.Fatalf("Get(%s) = %q, %v", last, v, err)
	}
	if err := c.Clear(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(c.Key("src", "file0")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after Clear: %v", err)
	}
	if a, _ := r.AttemptStore().All(); len(a) != 1 {
		t.Fatalf("Clear took other records: attempts %+v", a)
	}
}
