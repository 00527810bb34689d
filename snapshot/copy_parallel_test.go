package snapshot

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"citadelfs/index"
)

// readGate counts the pack reads in flight in a store, while on. Each
// read waits (up to a bound, so a reader that reads one at a time still
// ends) until want of them are in flight.
type readGate struct {
	index.Store
	want int

	mu       sync.Mutex
	on       bool
	inflight int
	max      int
}

func (g *readGate) ReadRange(name string, off int64, n int, buf []byte) ([]byte, error) {
	g.mu.Lock()
	if !g.on {
		g.mu.Unlock()
		return g.Store.ReadRange(name, off, n, buf)
	}
	g.inflight++
	g.max = max(g.max, g.inflight)
	deadline := time.Now().Add(300 * time.Millisecond)
	for g.inflight < g.want && time.Now().Before(deadline) {
		g.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		g.mu.Lock()
	}
	g.mu.Unlock()
	b, err := g.Store.ReadRange(name, off, n, buf)
	g.mu.Lock()
	g.inflight--
	g.mu.Unlock()
	return b, err
}

// A copy reads the blobs it transfers copyReads at once, never more, and
// the target restores identical. The old copier read, verified and
// wrote one blob after another: one read in flight.
func TestCopyReadsBlobsInParallel(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "src")
	if err := Init(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	gate := &readGate{want: copyReads}
	src, err := Open(dir, Options{PackSize: 1 << 20, WrapStore: func(s index.Store) index.Store { gate.Store = s; return gate }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	data := t.TempDir()
	files := map[string][]byte{}
	for i := range 3 * copyReads {
		b := make([]byte, 300<<10+i)
		fillRandom(b, uint64(100+i))
		name := fmt.Sprintf("f%02d", i)
		files[name] = b
		if err := os.WriteFile(filepath.Join(data, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	res, err := src.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "d", Path: data}}})
	if err != nil {
		t.Fatal(err)
	}
	dst, _ := newRepo(t)
	src.cache = newBlobCache(1) // every tree read goes to the store
	gate.mu.Lock()
	gate.on = true
	gate.mu.Unlock()
	cres, err := src.Copy(ctx, dst, []*Snapshot{res.Snapshot}, nil)
	if err != nil {
		t.Fatal(err)
	}
	gate.mu.Lock()
	peak := gate.max
	gate.mu.Unlock()
	if cres.Blobs < int64(len(files)) {
		t.Fatalf("copied %d blobs, want at least %d", cres.Blobs, len(files))
	}
	if peak != copyReads {
		t.Fatalf("%d blob reads in flight at most, want %d (copyReads)", peak, copyReads)
	}
	out := restoreAll(t, dst, findByID(t, dst, res.Snapshot.ID))
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(out, "d", name))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s restored from the copy wrong (%d bytes): %v", name, len(got), err)
		}
	}
	mustCheck(t, dst, "the copy")
}
