package index

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// More packs read than stay open: every acquire hands back an open file,
// the least recently used one is closed, and one still in use is closed
// only when its reader lets go. (The newest file used to be the one
// evicted, so the caller read from a closed file: "corrupt data".)
func TestPackFilesEvictLeastRecentlyUsed(t *testing.T) {
	dir := t.TempDir()
	const max = 2
	var ids []ID
	for i := range 5 {
		var id ID
		id[0] = byte(i + 1)
		p := PackPath(dir, id)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bytes.Repeat([]byte{byte(i + 1)}, 4096), 0o644); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	p := newPackFiles(dir, max)
	defer p.closeAll()
	read := func(pf *packFile, want byte) {
		t.Helper()
		b := make([]byte, 1)
		if _, err := pf.f.ReadAt(b, 100); err != nil || b[0] != want {
			t.Fatalf("read pack %d: %v %v", want, b, err)
		}
	}
	// Hold the first pack while the others come and go.
	held, releaseHeld, err := p.acquire(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 3; round++ {
		for i, id := range ids[1:] {
			pf, release, err := p.acquire(id)
			if err != nil {
				t.Fatal(err)
			}
			read(pf, byte(i+2))
			release()
			if len(p.open) > max {
				t.Fatalf("%d packs open, max %d", len(p.open), max)
			}
		}
	}
	read(held, 1) // evicted long ago, but still in use: still open
	releaseHeld()
	if _, err := held.f.ReadAt(make([]byte, 1), 0); err == nil {
		t.Fatal("an evicted pack stayed open after its last reader let go")
	}
}
