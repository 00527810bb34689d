package index_test

import (
	"strings"
	"testing"
	"time"

	"citadelfs/index"
)

// retainingStore is a LocalStore that records the retention it is given,
// standing in for a bucket with Object Lock (the real one is tested
// against RGW in s3store and tests/).
type retainingStore struct {
	*index.LocalStore
	mode string
	d    time.Duration
	ex   []string
}

func (s *retainingStore) SetRetention(mode string, d time.Duration, exempt ...string) error {
	s.mode, s.d, s.ex = mode, d, exempt
	return nil
}

// The object lock is recorded in citadel.json and checked by its
// checksum; every open sets the retention on the store under the
// decorators (read-only and fault wrappers), lock objects exempt; a store
// that cannot retain refuses such a repository rather than writing
// unlocked objects into it.
func TestObjectLockRecordedAndApplied(t *testing.T) {
	s := &retainingStore{LocalStore: index.NewLocalStore(t.TempDir(), 8)}
	defer s.Close()
	lock := &index.ObjectLock{Mode: index.RetentionCompliance, Days: 7}
	if _, err := index.InitStoreWith(s, "fake://b", index.InitOptions{Chunker: index.ChunkerParams{Min: 1, Avg: 2, Max: 4}, ObjectLock: lock}); err != nil {
		t.Fatal(err)
	}
	if s.mode != "COMPLIANCE" || s.d != 7*24*time.Hour || len(s.ex) != 2 || s.ex[0] != "locks/" || s.ex[1] != "forgotten/" {
		t.Fatalf("init set %q %v %v", s.mode, s.d, s.ex)
	}
	cfg, err := index.ReadStoreConfig(s, "fake://b")
	if err != nil || cfg.ObjectLock == nil || *cfg.ObjectLock != *lock {
		t.Fatalf("citadel.json: %+v, %v", cfg, err)
	}
	*s = retainingStore{LocalStore: s.LocalStore}
	r, err := index.OpenStore(s, "fake://b", index.Options{CacheDir: t.TempDir(), ReadOnly: true,
		WrapStore: func(st index.Store) index.Store { return index.NewFaultyStore(st) }})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if s.d != 7*24*time.Hour {
		t.Fatalf("open through decorators set no retention (%v)", s.d)
	}
	_, err = index.OpenStore(s.LocalStore, "fake://b", index.Options{CacheDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "object lock") {
		t.Fatalf("open in a store without retention: %v", err)
	}
	if _, err := index.InitStoreWith(index.NewLocalStore(t.TempDir(), 1), "fake://c", index.InitOptions{Chunker: index.ChunkerParams{Min: 1, Avg: 2, Max: 4}, ObjectLock: &index.ObjectLock{Mode: "COMPLIANCE", Days: 0}}); err == nil {
		t.Fatal("a lock of 0 days was accepted")
	}
}
