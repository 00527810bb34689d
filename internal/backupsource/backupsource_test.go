package backupsource

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"citadelfs/snapshot"
)

// A configured source is reported before its first attempt, and the
// attempt of a label the config no longer has (here "old") goes once it
// is older than ExpireAfter, so a retired label cannot hold backup_failed.
func TestBackupStateLabelsAndExpiry(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	repoDir := filepath.Join(dir, "repo")
	if err := snapshot.Init(repoDir, snapshot.Options{}); err != nil {
		t.Fatal(err)
	}
	r, err := snapshot.Open(repoDir, snapshot.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.TakeSnapshot(context.Background(), snapshot.Request{Sources: []snapshot.SourceSpec{{Label: "old", Path: src}}}); err != nil {
		t.Fatal(err)
	}

	labels := func(now time.Time) map[string]bool {
		s := &Source{Repo: r, Labels: []string{"models"}, ExpireAfter: time.Hour, Now: func() time.Time { return now },
			MaxAge: map[string]time.Duration{"models": 30 * time.Minute}}
		st, err := s.BackupState(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, so := range st.Sources {
			out[so.Label] = true
			if so.Label == "models" && (so.MaxAge != 30*time.Minute || !so.LastTime.IsZero()) {
				t.Errorf("models before its first attempt: %+v", so)
			}
		}
		return out
	}
	if got := labels(time.Now()); !got["old"] || !got["models"] {
		t.Errorf("just after the attempt: %v, want old and models", got)
	}
	if got := labels(time.Now().Add(2 * time.Hour)); got["old"] || !got["models"] {
		t.Errorf("two hours later: %v, want models only (old expired)", got)
	}
}
