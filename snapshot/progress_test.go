package snapshot

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Progress counts data bytes: a 64 MiB sparse file with 512 KiB in it
// makes a total of about 512 KiB, and the bytes done reach it, on the first
// snapshot (read) and on the next (from the file cache). The total was the
// apparent 64 MiB, so the percentage stayed under 1% and the ETA was wrong.
func TestProgressCountsDataBytes(t *testing.T) {
	src := t.TempDir()
	data := make([]byte, 512<<10)
	rand.Read(data)
	f, err := os.Create(filepath.Join(src, "sparse.bin"))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(data, 32<<20)
	f.Truncate(64 << 20)
	f.Close()
	os.WriteFile(filepath.Join(src, "small.txt"), []byte("hello\n"), 0o644)

	r, _ := newRepo(t)
	for i := range 2 {
		p := &Progress{Start: time.Now()}
		res, err := r.TakeSnapshot(context.Background(), Request{Sources: []SourceSpec{{Label: "d", Path: src}}, Progress: p,
			Time: time.Date(2026, 12, 1, i, 0, 0, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		st := res.Snapshot.Sources[0].Stats
		if st.DataBytes >= st.Bytes {
			t.Skipf("the file system reports no holes (data %d of %d bytes)", st.DataBytes, st.Bytes)
		}
		if p.Bytes.Load() != st.DataBytes {
			t.Errorf("snapshot %d: progress bytes %d, want the data bytes %d (apparent %d)", i, p.Bytes.Load(), st.DataBytes, st.Bytes)
		}
		// The scan's total (it runs beside the snapshot and stops with it,
		// so it is checked file by file here) comes from allocated blocks:
		// the data, give or take the blocks of its edges.
		var total int64
		for _, name := range []string{"sparse.bin", "small.txt"} {
			fi, err := os.Stat(filepath.Join(src, name))
			if err != nil {
				t.Fatal(err)
			}
			total += dataSize(fi)
		}
		if total < st.DataBytes-8192 || total > st.DataBytes+8192 {
			t.Errorf("snapshot %d: scan total %d, want about the data bytes %d (apparent %d)", i, total, st.DataBytes, st.Bytes)
		}
	}
}
