package snapshot

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"citadelfs/index"
)

func TestTestRestore(t *testing.T) {
	ctx := context.Background()
	r, dir := newRepo(t)
	src := t.TempDir()
	data := make([]byte, 3<<20)
	fillRandom(data, 11)
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "big"), data, 0o644)
	for i := 0; i < 30; i++ {
		os.WriteFile(filepath.Join(src, "sub", "f"+string(rune('a'+i%26))+string(rune('a'+i/26))), []byte(strings.Repeat("x", i+1)), 0o644)
	}
	// A sparse file: holes must restore as holes (zeros).
	sp, _ := os.Create(filepath.Join(src, "sparse"))
	sp.WriteAt([]byte("head"), 0)
	sp.WriteAt([]byte("tail"), 8<<20)
	sp.Close()
	if _, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "d", Path: src}}}); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	rep, err := r.TestRestore(ctx, TestRestoreOptions{Fraction: 1, TempDir: tmp, Rand: rand.New(rand.NewPCG(1, 2))})
	if err != nil || !rep.OK() || rep.Files != 32 || rep.SourceCompared != 32 || len(rep.SourceDiffers) != 0 {
		t.Fatalf("sound repository: %+v %v", rep, err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("temp dir not cleaned: %v", left)
	}
	rec, err := r.LastTestRestore()
	if err != nil || rec == nil || rec.Result != index.CheckOK || rec.Files != 32 || len(rec.Snapshots) != 1 {
		t.Fatalf("record: %+v %v", rec, err)
	}
	rep, err = r.TestRestore(ctx, TestRestoreOptions{Files: 5, TempDir: tmp})
	if err != nil || rep.Files != 5 {
		t.Fatalf("sample of 5: %+v %v", rep, err)
	}

	// The source changed without its mtime moving: reported, not damage.
	st, _ := os.Stat(filepath.Join(src, "big"))
	data[100] ^= 1
	os.WriteFile(filepath.Join(src, "big"), data, 0o644)
	os.Chtimes(filepath.Join(src, "big"), st.ModTime(), st.ModTime())
	rep, err = r.TestRestore(ctx, TestRestoreOptions{Fraction: 1, TempDir: tmp})
	if err != nil || !rep.OK() || len(rep.SourceDiffers) != 1 || !strings.Contains(rep.SourceDiffers[0], "d/big") {
		t.Fatalf("source changed under its mtime: %+v %v", rep, err)
	}

	// A flipped byte in the pack holding big's chunks: damage, exit 4's
	// error, recorded.
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "*", "*.pack"))
	var biggest string
	var size int64
	for _, p := range packs {
		if st, _ := os.Stat(p); st.Size() > size {
			biggest, size = p, st.Size()
		}
	}
	f, _ := os.OpenFile(biggest, os.O_RDWR, 0)
	b := make([]byte, 1)
	f.ReadAt(b, size/2)
	b[0] ^= 0x20
	f.WriteAt(b, size/2)
	f.Close()
	rep, err = r.TestRestore(ctx, TestRestoreOptions{Fraction: 1, TempDir: tmp})
	if err != nil || rep.OK() || !strings.Contains(rep.Problems[0], "d/big") {
		t.Fatalf("corrupt pack: %+v %v", rep, err)
	}
	rec, _ = r.LastTestRestore()
	if rec.Result != index.CheckErrors || rec.Errors == 0 || !strings.Contains(rec.FirstError, "d/big") {
		t.Fatalf("record after damage: %+v", rec)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("temp dir not cleaned after damage: %v", left)
	}

	// Nothing to restore is a failed run, recorded as such.
	if _, err := r.TestRestore(ctx, TestRestoreOptions{Labels: []string{"nope"}, TempDir: tmp}); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("unknown label: %v", err)
	}
	if rec, _ = r.LastTestRestore(); rec.Result != index.CheckFailed {
		t.Fatalf("record after a failed run: %+v", rec)
	}
	// A cancelled run records nothing.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	r.TestRestore(cctx, TestRestoreOptions{TempDir: tmp})
	if rec2, _ := r.LastTestRestore(); rec2.Time != rec.Time {
		t.Errorf("a cancelled run replaced the record")
	}
}

// compareWithChunks catches what a restore could get wrong on disk.
func TestCompareWithChunks(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	body := []byte("hello, world")
	os.WriteFile(p, append(make([]byte, 4), body...), 0o644)
	n := &Node{Size: 16, Content: []ChunkRef{{Offset: 4, Length: int64(len(body)), ID: index.Hash(body)}}}
	if msg := compareWithChunks(nil, p, n); msg != "" {
		t.Fatal(msg)
	}
	os.WriteFile(p, append([]byte{0, 1, 0, 0}, body...), 0o644)
	if msg := compareWithChunks(nil, p, n); !strings.Contains(msg, "hole") {
		t.Errorf("data in a hole: %q", msg)
	}
	os.WriteFile(p, append(make([]byte, 4), []byte("hello, World")...), 0o644)
	if msg := compareWithChunks(nil, p, n); !strings.Contains(msg, "differs") {
		t.Errorf("changed chunk: %q", msg)
	}
	os.WriteFile(p, body, 0o644)
	if msg := compareWithChunks(nil, p, n); !strings.Contains(msg, "bytes, the snapshot says 16") {
		t.Errorf("short file: %q", msg)
	}
}
