package testutil

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Run with -race: writers and a reader at once.
func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				b.Write([]byte("x"))
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if got := b.String(); got != strings.Repeat("x", 400) {
		t.Errorf("%d bytes, want 400", len(got))
	}
}

func TestNobodyDir(t *testing.T) {
	dir := NobodyDir(t)
	for d := dir; d != filepath.Dir(d) && d != os.TempDir(); d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o005 != 0o005 {
			t.Errorf("%s: %v %v: others cannot reach it", d, fi.Mode(), err)
		}
	}
}
