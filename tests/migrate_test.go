package tests

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// migrateSummary is the part of `migrate --json` the tests read.
type migrateSummary struct {
	rechunkSummary
	Verified struct {
		Snapshots int   `json:"snapshots"`
		Files     int64 `json:"files"`
		Bytes     int64 `json:"bytes"`
	} `json:"verified"`
	Snapshots []string `json:"snapshots"`
}

func parseMigrate(t *testing.T, r result) migrateSummary {
	t.Helper()
	var s migrateSummary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("migrate --json: %v\n%s", err, r)
	}
	return s
}

// packDigest is every pack file of a repository with its sha256: what a
// migrate must leave as it was.
func packDigest(t *testing.T, repo string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(filepath.Join(repo, "packs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		rel, _ := filepath.Rel(repo, p)
		b.WriteString(rel + " " + hex.EncodeToString(sum[:]) + "\n")
		return nil
	})
	return b.String()
}

// The frozen version 1 fixture migrated into a new encrypted repository:
// both snapshots re-chunked and verified, each restores from the target
// as from the source (the latest as the frozen listing), the target
// checks clean, a rerun copies nothing, and the source's packs and
// snapshots are as they were.
func TestMigrateV1Fixture(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the fixture's files are root's, with a user xattr and modes to restore as root")
	}
	want, err := os.ReadFile(v1Fixture + ".listing")
	if err != nil {
		t.Fatal(err)
	}
	repo := copyV1Fixture(t)
	before, beforeSnaps := packDigest(t, repo), strings.Join(snapshotIDs(t, repo), ",")
	pw := filepath.Join(t.TempDir(), "pw")
	target := initEncrypted(t, filepath.Join(t.TempDir(), "v2"), pw, "migrated")

	// The source is in the clear: --password-file is the target's.
	m := parseMigrate(t, mustCitadel(t, "migrate", "--repo", repo, "--to", target, "--password-file", pw, "--json"))
	if !m.Rechunked || len(m.Copied) != 2 || len(m.Snapshots) != 2 || m.Verified.Snapshots != 2 || m.Verified.Files == 0 || m.Verified.Bytes == 0 {
		t.Fatalf("migrate of the v1 fixture: %+v", m)
	}
	srcIDs := snapshotIDs(t, repo)
	for i, id := range srcIDs {
		if m.Snapshots[i] == id {
			t.Fatalf("snapshot %s kept its id in a repository that chunks differently", id)
		}
		if a, b := v1Listing(t, restore(t, repo, id)), v1Listing(t, restoreWith(t, target, pw, m.Snapshots[i])); a != b {
			t.Fatalf("snapshot %s restores differently from the target:\ntarget:\n%s\nsource:\n%s", id[:8], b, a)
		}
	}
	if got := v1Listing(t, restoreWith(t, target, pw, "latest")); got != string(want) {
		t.Fatalf("restore latest of the migrated fixture differs from its listing:\ngot:\n%s\nwant:\n%s", got, want)
	}
	if r := citadel(t, "check", "--read-data", "--repo", target, "--password-file", pw); r.code != 0 {
		t.Fatalf("check --read-data of the migrated repository: %s", r)
	}
	again := parseMigrate(t, mustCitadel(t, "migrate", "--repo", repo, "--to", target, "--to-password-file", pw, "--json"))
	if len(again.Copied) != 0 || len(again.Skipped) != 2 || again.Blobs != 0 || again.Verified.Snapshots != 2 ||
		strings.Join(again.Snapshots, ",") != strings.Join(m.Snapshots, ",") {
		t.Fatalf("second migrate: %+v (first %+v)", again, m)
	}
	if after := packDigest(t, repo); after != before || strings.Join(snapshotIDs(t, repo), ",") != beforeSnaps {
		t.Fatalf("migrate changed the source's packs or snapshots")
	}

	// Bad input: no target, an argument, the source itself.
	for _, args := range [][]string{
		{"migrate", "--repo", repo},
		{"migrate", "--repo", repo, "--to", target, "--password-file", pw, "latest"},
		{"migrate", "--repo", repo, "--to", repo},
	} {
		if r := citadel(t, args...); r.code != 2 || !oneLine(r.stderr) {
			t.Errorf("citadelfs %s: want exit 2 and one line: %s", strings.Join(args, " "), r)
		}
	}
}
