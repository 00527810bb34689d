package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestLatestAgreesWithinASecond: two snapshots of one label in one second,
// the second taken with --time backdated before the first. The mount's
// latest/ showed the one committed last while restore latest, diff latest
// and forget latest took the other (the later Time): each decided
// "latest" its own way. Now snapshot.Compare decides it for all.
func TestLatestAgreesWithinASecond(t *testing.T) {
	needMount(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	repo := initRepo(t, dir)
	sec := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	take := func(content string, at time.Time) string {
		t.Helper()
		if err := os.WriteFile(filepath.Join(src, "f"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return takeSnapshot(t, repo, "--source", "c="+src, "--time", at.Format(time.RFC3339Nano)).ID
	}
	first := take("first", sec.Add(900*time.Millisecond))
	time.Sleep(10 * time.Millisecond) // distinct commit times
	second := take("second", sec.Add(100*time.Millisecond))

	mp := filepath.Join(dir, "mnt")
	startMount(t, repo, mp, monitorConfig(t, dir))
	readLatest := func() string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(mp, "latest", "c", "f"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := readLatest(); got != "second" {
		t.Errorf("mount latest/c/f = %q, want the last committed (second)", got)
	}
	if got, _ := os.ReadFile(filepath.Join(mp, "2026-11-26", "c", "f")); string(got) != "second" {
		t.Errorf("mount 2026-11-26/c/f = %q, want second", got)
	}
	for _, ref := range []string{"latest", "latest:c"} {
		out := restore(t, repo, ref)
		if got, err := os.ReadFile(filepath.Join(out, "c", "f")); err != nil || string(got) != "second" {
			t.Errorf("restore %s: c/f = %q, %v; want second", ref, got, err)
		}
	}
	diffCount := func(a, b string) int {
		t.Helper()
		r := mustCitadel(t, "diff", "--repo", repo, "--json", a, b)
		var changes []map[string]string
		if err := json.Unmarshal([]byte(r.stdout), &changes); err != nil {
			t.Fatalf("diff --json: %v\n%s", err, r)
		}
		return len(changes)
	}
	if n := diffCount(second, "latest"); n != 0 {
		t.Errorf("diff second latest: %d changes, want none", n)
	}
	if n := diffCount(first, "latest"); n == 0 {
		t.Errorf("diff first latest: no changes; latest is not the second")
	}
	mustCitadel(t, "forget", "--repo", repo, "latest")
	left := listSnapshots(t, repo)
	if len(left) != 1 || left[0].ID != first {
		t.Fatalf("after forget latest: %v, want only %s", left, first)
	}
	// The mount follows: latest/ is now the first.
	deadline := time.Now().Add(10 * time.Second)
	for readLatest() != "first" && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if got := readLatest(); got != "first" {
		t.Errorf("mount latest/c/f after forget = %q, want first", got)
	}
}
