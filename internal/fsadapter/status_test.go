package fsadapter

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"citadelfs/snapshot"
)

// status/repo's dedup ratio counts data, not sparse holes: two snapshots
// of 1 MiB of data, half of it in a 64 MiB sparse file, store 1 MiB once,
// so the ratio is 2x (it said 65x, the holes counted as deduplicated data).
func TestRepoStatusDedupRatioExcludesHoles(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	data := make([]byte, 512<<10)
	rand.Read(data)
	os.WriteFile(filepath.Join(src, "dense.bin"), data, 0o644)
	f, err := os.Create(filepath.Join(src, "sparse.bin"))
	if err != nil {
		t.Fatal(err)
	}
	rand.Read(data)
	f.WriteAt(data, 32<<20)
	f.Truncate(64 << 20)
	f.Close()

	repoDir := filepath.Join(dir, "repo")
	if err := snapshot.Init(repoDir, snapshot.Options{}); err != nil {
		t.Fatal(err)
	}
	r, err := snapshot.Open(repoDir, snapshot.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i := range 2 {
		res, err := r.TakeSnapshot(context.Background(), snapshot.Request{Sources: []snapshot.SourceSpec{{Label: "m", Path: src}},
			Time: time.Date(2026, 12, 1, i, 0, 0, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		if st := res.Snapshot.Sources[0].Stats; st.DataBytes >= st.Bytes {
			t.Skipf("the file system reports no holes (data %d of %d bytes)", st.DataBytes, st.Bytes)
		}
	}
	out, err := NewStatus(r).Render(context.Background(), "repo")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`dedup ratio\s+([0-9.]+)x`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no dedup ratio in\n%s", out)
	}
	if got, _ := strconv.ParseFloat(string(m[1]), 64); got < 1.9 || got > 2.1 {
		t.Errorf("dedup ratio %.2fx, want about 2x (two copies of 1 MiB of data)\n%s", got, out)
	}
}
