package snapshot

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkTakeSnapshot snapshots a tree of many small files and a few
// large ones with --read-all, so every byte goes through the walk, the
// file and chunk workers and the saver on each iteration.
func BenchmarkTakeSnapshot(b *testing.B) {
	src := b.TempDir()
	for d := 0; d < 20; d++ {
		dir := filepath.Join(src, fmt.Sprintf("d%02d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := 0; f < 100; f++ {
			buf := make([]byte, 4096+f*13)
			fillRandom(buf, uint64(d*1000+f))
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", f)), buf, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	big := make([]byte, 16<<20)
	fillRandom(big, 7)
	if err := os.WriteFile(filepath.Join(src, "big.bin"), big, 0o644); err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(b.TempDir(), "repo")
	if err := Init(dir, Options{}); err != nil {
		b.Fatal(err)
	}
	r, err := Open(dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	b.SetBytes(int64(len(big)) + 20*100*4096)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.TakeSnapshot(context.Background(), Request{Sources: []SourceSpec{{Label: "bench", Path: src}}, ReadAll: true}); err != nil {
			b.Fatal(err)
		}
	}
}
