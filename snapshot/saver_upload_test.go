package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"citadelfs/index"
)

// gateStore counts the pack commits in flight in a store. Each commit
// waits (up to a bound, so a serial writer still ends) until want of
// them are in flight, so a writer that uploads in parallel is seen doing
// it whatever the scheduling.
type gateStore struct {
	index.Store
	want int

	mu       sync.Mutex
	inflight int
	max      int
	commits  int
}

func newGateStore(s index.Store, want int) *gateStore {
	return &gateStore{Store: s, want: want}
}

func (g *gateStore) Create() (index.ObjectWriter, error) {
	w, err := g.Store.Create()
	if err != nil {
		return nil, err
	}
	return &gateWriter{ObjectWriter: w, g: g}, nil
}

type gateWriter struct {
	index.ObjectWriter
	g *gateStore
}

func (w *gateWriter) Commit(name string, size int64) error {
	g := w.g
	g.mu.Lock()
	g.inflight++
	g.commits++
	g.max = max(g.max, g.inflight)
	deadline := time.Now().Add(300 * time.Millisecond)
	for g.inflight < g.want && time.Now().Before(deadline) {
		g.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		g.mu.Lock()
	}
	g.mu.Unlock()
	err := w.ObjectWriter.Commit(name, size)
	g.mu.Lock()
	g.inflight--
	g.mu.Unlock()
	return err
}

// A snapshot into a store PUTs Options.Uploads packs at once, never more
// (each one in flight is a pack held in memory), and the result restores
// and checks. The old saver finished packs on one goroutine: one in
// flight, and the compressing workers waited on every upload.
func TestStoreSnapshotUploadsPacksInParallel(t *testing.T) {
	store := index.NewLocalStore(t.TempDir(), 8) // stands in for the bucket
	t.Cleanup(func() { store.Close() })
	if err := InitStore(store, "fake://bucket", Options{}); err != nil {
		t.Fatal(err)
	}
	const uploads = 3
	var gate *gateStore
	r, err := OpenStore(store, "fake://bucket", Options{CacheDir: t.TempDir(), PackSize: 256 << 10, Uploads: uploads,
		WrapStore: func(s index.Store) index.Store { gate = newGateStore(s, uploads); return gate }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	src := t.TempDir()
	data := make([]byte, 6<<20)
	fillRandom(data, 7)
	if err := os.WriteFile(filepath.Join(src, "f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := r.TakeSnapshot(context.Background(), Request{Sources: []SourceSpec{{Label: "d", Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	gate.mu.Lock()
	peak, commits := gate.max, gate.commits
	gate.mu.Unlock()
	if commits < 2*uploads {
		t.Fatalf("only %d pack commits; the test needs more packs than uploads", commits)
	}
	if peak != uploads {
		t.Fatalf("%d pack PUTs in flight at most, want %d (Options.Uploads)", peak, uploads)
	}
	mustCheck(t, r, "after a parallel upload")
	mustRestore(t, r, res.Snapshot, "f", data)
}

// A directory still writes one pack at a time, whatever Uploads says.
func TestDirectorySnapshotWritesOnePackAtATime(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	if err := Init(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	var gate *gateStore
	r, err := Open(dir, Options{PackSize: 256 << 10, Uploads: 3,
		WrapStore: func(s index.Store) index.Store { gate = newGateStore(s, 1); return gate }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	src := t.TempDir()
	data := make([]byte, 3<<20)
	fillRandom(data, 8)
	os.WriteFile(filepath.Join(src, "f"), data, 0o644)
	if _, err := r.TakeSnapshot(context.Background(), Request{Sources: []SourceSpec{{Label: "d", Path: src}}}); err != nil {
		t.Fatal(err)
	}
	if gate.max != 1 {
		t.Fatalf("%d pack commits in flight in a directory, want 1", gate.max)
	}
}
