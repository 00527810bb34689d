package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// largestPack returns the biggest pack file of repo and its size.
func largestPack(t *testing.T, repo string) (string, int64) {
	t.Helper()
	packs, _ := filepath.Glob(filepath.Join(repo, "packs", "*", "*.pack"))
	var largest string
	var size int64
	for _, p := range packs {
		if fi, err := os.Stat(p); err == nil && fi.Size() > size {
			largest, size = p, fi.Size()
		}
	}
	if size < 1<<20 {
		t.Fatalf("largest pack is %d bytes; expected the models' chunks in one big pack", size)
	}
	return largest, size
}

// flip4 inverts 4 bytes in the middle of path: inside some chunk's stored
// bytes of a big pack.
func flip4(t *testing.T, path string, size int64) {
	t.Helper()
	for i := int64(0); i < 4; i++ {
		flipByte(t, path, size/2+i)
	}
}

// restoreEverySnapshotMatches restores each snapshot of repo and compares
// it, byte for byte, with src: nothing in src changed since.
func restoreEverySnapshotMatches(t *testing.T, repo, src string) {
	t.Helper()
	snaps := listSnapshots(t, repo)
	for _, s := range snaps {
		out := filepath.Join(t.TempDir(), "restore")
		r := citadel(t, "restore", "--repo", repo, s.ID, out)
		if r.code != 0 {
			t.Fatalf("restore of snapshot %s after healing: %s", s.ID[:8], r)
		}
		for _, l := range s.Sources {
			diffTrees(t, filepath.Join(src, l), filepath.Join(out, l))
		}
	}
}

// TestNewSnapshotHealsQuarantinedChunks: a chunk that check (or a restore)
// found damaged was reused by the next snapshot, so "take a new snapshot"
// left the new snapshot damaged too (check --read-data named it, and its
// restore exited 4). Damaged copies are now quarantined: the next
// snapshot stores them again from the source, which re-points the chunk
// to the good copy and heals every older snapshot that used it.
func TestNewSnapshotHealsQuarantinedChunks(t *testing.T) {
	cases := []struct {
		name string
		// find makes citadelfs notice the damage (and must exit 4).
		find func(t *testing.T, repo string) result
		// snapshot flags for the healing snapshot.
		flags []string
	}{
		{"check then snapshot --read-all", func(t *testing.T, repo string) result {
			return citadel(t, "check", "--repo", repo, "--read-data")
		}, []string{"--read-all"}},
		// Without --read-all the file-change cache would skip the
		// unchanged file whose chunk is damaged.
		{"check then plain snapshot", func(t *testing.T, repo string) result {
			return citadel(t, "check", "--repo", repo, "--read-data")
		}, nil},
		// A restore's corrupt read is a finding too.
		{"restore then plain snapshot", func(t *testing.T, repo string) result {
			return citadel(t, "restore", "--repo", repo, "latest", filepath.Join(t.TempDir(), "out"))
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src := smallCorpus(t, dir)
			repo := initRepo(t, dir)
			first := takeSnapshot(t, repo, sourceFlags(src)...)
			pack, size := largestPack(t, repo)
			flip4(t, pack, size)

			if r := tc.find(t, repo); r.code != 4 {
				t.Fatalf("finding the damage: exit %d, want 4\n%s", r.code, r)
			}
			// Without the check, a structural check also knows now.
			if r := citadel(t, "check", "--repo", repo); r.code != 4 || !strings.Contains(r.stdout, "quarantined") {
				t.Errorf("check without --read-data after the damage was found: want exit 4 naming the quarantine\n%s", r)
			}
			heal := takeSnapshot(t, repo, append(sourceFlags(src), tc.flags...)...)
			if heal.NewBytes == 0 {
				t.Errorf("the healing snapshot stored nothing new: the damaged chunk was reused\n%+v", heal)
			}
			r := citadel(t, "check", "--repo", repo, "--read-data")
			if r.code != 0 {
				t.Fatalf("check --read-data after the healing snapshot %s (first %s): %s", heal.ID[:8], first.ID[:8], r)
			}
			restoreEverySnapshotMatches(t, repo, src)

			// Prune keeps what the healed snapshots need and leaves a
			// repository that still checks.
			mustCitadel(t, "prune", "--repo", repo)
			mustCitadel(t, "check", "--repo", repo, "--read-data")
			restoreEverySnapshotMatches(t, repo, src)
			// Once nothing needs the damaged pack, prune drops it.
			forget := []string{"forget", "--repo", repo, "--prune"}
			for _, s := range listSnapshots(t, repo) {
				forget = append(forget, s.ID)
			}
			mustCitadel(t, forget...)
			if _, err := os.Stat(pack); err == nil {
				t.Errorf("damaged pack %s still there after forgetting every snapshot and pruning", filepath.Base(pack))
			}
		})
	}
}
