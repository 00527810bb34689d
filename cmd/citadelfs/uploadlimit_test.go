package main

import (
	"path/filepath"
	"runtime/debug"
	"testing"

	"citadelfs/index"
	"citadelfs/snapshot"
)

// A command that uploads to a store raises the soft heap target to
// uploadMemoryLimit (its pipeline of packs does not fit main's 128 MiB,
// and the GC then ran almost without pause); one writing a directory
// keeps it.
func TestUploadMemoryLimitOnlyForStores(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	old := debug.SetMemoryLimit(128 << 20)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })

	dir := filepath.Join(t.TempDir(), "repo")
	if err := snapshot.Init(dir, snapshot.Options{}); err != nil {
		t.Fatal(err)
	}
	local, err := snapshot.Open(dir, snapshot.Options{})
	if err != nil {
		t.Fatal(err)
	}
	raiseMemoryLimitForUploads(local)
	local.Close()
	if got := debug.SetMemoryLimit(-1); got != 128<<20 {
		t.Fatalf("a directory repository set the limit to %d", got)
	}

	store := index.NewLocalStore(t.TempDir(), 8) // stands in for a bucket
	defer store.Close()
	if err := snapshot.InitStore(store, "fake://bucket", snapshot.Options{}); err != nil {
		t.Fatal(err)
	}
	remote, err := snapshot.OpenStore(store, "fake://bucket", snapshot.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	raiseMemoryLimitForUploads(remote)
	if got := debug.SetMemoryLimit(-1); got != uploadMemoryLimit {
		t.Fatalf("a store repository: limit %d, want %d", got, uploadMemoryLimit)
	}
}
