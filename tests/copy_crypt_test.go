package tests

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"citadelfs/index"
)

// initEncrypted makes an encrypted local repository at dir whose
// passphrase is in the file pw (written here).
func initEncrypted(t *testing.T, dir, pw, passphrase string) string {
	t.Helper()
	if err := os.WriteFile(pw, []byte(passphrase+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCitadel(t, "init", "--repo", dir, "--password-file", pw)
	return dir
}

// treeDigest is every file under dir with its contents: what a refused
// command must leave as it was.
func treeDigest(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		b.WriteString(p)
		if fi.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			b.Write(data)
		}
		b.WriteByte('\n')
		return nil
	})
	return b.String()
}

// clear → encrypted → encrypted under another passphrase (another master
// key) → clear again: each copy re-chunks; each restores identical, the
// second encrypted one checks clean; each target's secret comes from its own flag or variable, the
// source's own passphrase is tried for a target given none, and a wrong
// one is exit 15 with nothing written.
func TestCopyClearToEncryptedToAnotherKey(t *testing.T) {
	dir := t.TempDir()
	src := smallCorpus(t, dir)
	repo := initRepo(t, dir)
	snap := takeSnapshot(t, repo, sourceFlags(src)...)
	pw1, pw2 := filepath.Join(dir, "pw1"), filepath.Join(dir, "pw2")
	enc1 := initEncrypted(t, filepath.Join(dir, "enc1"), pw1, "first passphrase")
	enc2 := initEncrypted(t, filepath.Join(dir, "enc2"), pw2, "second passphrase")

	// A wrong target passphrase, and none at all (no terminal): nothing
	// is written to the target.
	before := treeDigest(t, enc2)
	if r := citadel(t, "copy", "--repo", repo, "--to", enc2, "--to-password-file", pw1); r.code != 15 || !oneLine(r.stderr) {
		t.Fatalf("copy with the wrong target passphrase: want exit 15 and one line: %s", r)
	}
	if r := citadel(t, "copy", "--repo", repo, "--to", enc2); r.code != 2 || !oneLine(r.stderr) || !strings.Contains(r.stderr, "--to-password-file") {
		t.Fatalf("copy to an encrypted target with no secret: want exit 2 and one line naming --to-password-file: %s", r)
	}
	if treeDigest(t, enc2) != before {
		t.Fatal("a refused copy changed the target")
	}

	// clear → enc1: the target's passphrase by the command's own
	// --password-file (the source needs none).
	first := parseRechunk(t, mustCitadel(t, "copy", "--repo", repo, "--to", enc1, "--password-file", pw1, "--json"))
	if !first.Rechunked || len(first.Copied) != 1 || first.Targets[0] == snap.ID {
		t.Fatalf("copy clear → encrypted: %+v", first)
	}
	// enc1 → enc2: each side its own passphrase.
	second := parseRechunk(t, mustCitadel(t, "copy", "--repo", enc1, "--password-file", pw1, "--to", enc2, "--to-password-file", pw2, "--json"))
	if !second.Rechunked || len(second.Copied) != 1 || second.Copied[0] != first.Targets[0] || second.Targets[0] == first.Targets[0] {
		t.Fatalf("copy encrypted → another key: %+v (first %+v)", second, first)
	}
	// The clear original, copied again to enc2 ($CITADELFS_TO_PASSWORD_FILE):
	// enc2 has it already, as a copy of a copy.
	again := parseRechunk(t, mustCitadelEnv(t, []string{"CITADELFS_TO_PASSWORD_FILE=" + pw2}, "copy", "--repo", repo, "--to", enc2, "--json"))
	if len(again.Copied) != 0 || len(again.Skipped) != 1 || again.Blobs != 0 {
		t.Fatalf("copy of the original into the copy of its copy: %+v", again)
	}

	// The config's copy: {to, password_file} (what the copy timer runs).
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte("repo: "+repo+"\nsources:\n  models: "+src+"\ncopy:\n  to: "+enc2+"\n  password_file: "+pw2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if byConfig := parseRechunk(t, mustCitadel(t, "copy", "--config", cfg, "--json")); len(byConfig.Skipped) != 1 || byConfig.Blobs != 0 {
		t.Fatalf("copy by the config's copy: section: %+v", byConfig)
	}

	if r := citadel(t, "check", "--repo", enc2, "--password-file", pw2, "--read-data"); r.code != 0 {
		t.Fatalf("check --read-data of the second encrypted repository: %s", r)
	}
	out := restoreWith(t, enc2, pw2, second.Targets[0])
	for _, l := range labels {
		assertSameTree(t, filepath.Join(src, l), filepath.Join(out, l))
	}

	// enc2 → a new repository in the clear: the source's passphrase
	// only, the target needs none.
	plain := filepath.Join(dir, "plain")
	mustCitadel(t, "init", "--encryption", "none", "--repo", plain)
	down := parseRechunk(t, mustCitadel(t, "copy", "--repo", enc2, "--password-file", pw2, "--to", plain, "--json"))
	if !down.Rechunked || len(down.Copied) != 1 || down.Copied[0] != second.Targets[0] {
		t.Fatalf("copy encrypted → clear: %+v", down)
	}
	out = restore(t, plain, down.Targets[0])
	for _, l := range labels {
		assertSameTree(t, filepath.Join(src, l), filepath.Join(out, l))
	}
}

// restoreWith restores ref of the encrypted repository repo (passphrase in
// pw) into a new directory and returns it.
func restoreWith(t *testing.T, repo, pw, ref string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "restore")
	mustCitadel(t, "restore", "--repo", repo, "--password-file", pw, ref, dst)
	return dst
}

// The off-host copy this is for: a clear local repository into an
// encrypted bucket (re-chunked under the bucket's key) and back into a
// second clear local repository; each restores identical, the bucket
// checks clean, and no file name of the corpus is in any object.
func TestCopyClearToEncryptedS3AndBack(t *testing.T) {
	t.Parallel()
	r := newS3Repo(t)
	dir := t.TempDir()
	src := smallCorpus(t, dir)
	repo := initRepo(t, dir)
	snap := takeSnapshot(t, repo, sourceFlags(src)...)
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("bucket passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(dir, "cache")
	r.must(t, cache, "init", "--password-file", pw)

	up := parseRechunk(t, mustCitadelEnv(t, r.env, "copy", "--repo", repo, "--to", r.url, "--s3-endpoint", r.endpoint,
		"--to-cache-dir", filepath.Join(dir, "tocache"), "--to-password-file", pw, "--json"))
	if !up.Rechunked || len(up.Copied) != 1 || up.Copied[0] != snap.ID || up.Targets[0] == snap.ID || up.Blobs == 0 {
		t.Fatalf("copy into the encrypted bucket: %+v", up)
	}
	if res := r.run(t, cache, "check", "--read-data", "--password-file", pw); res.code != 0 {
		t.Fatalf("check --read-data of the bucket: %s", res)
	}
	packs, err := index.ListStorePacks(r.store)
	if err != nil || len(packs) == 0 {
		t.Fatalf("packs in the bucket: %v %d", err, len(packs))
	}
	for _, p := range packs[:min(len(packs), 4)] {
		b, err := r.store.ReadRange(index.PackName(p.ID), 0, int(p.Size), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"hardlink-a.yaml", "leaf.yaml", "-leading-dash.conf"} {
			if bytes.Contains(b, []byte(name)) {
				t.Fatalf("pack %s of the encrypted bucket holds the name %q", p.ID.Short(), name)
			}
		}
	}

	second := filepath.Join(dir, "second")
	mustCitadel(t, "init", "--encryption", "none", "--repo", second)
	down := parseRechunk(t, r.must(t, cache, "copy", "--password-file", pw, "--to", second, "--json"))
	if !down.Rechunked || len(down.Copied) != 1 || down.Copied[0] != up.Targets[0] {
		t.Fatalf("copy back from the encrypted bucket: %+v", down)
	}
	out := restore(t, second, down.Targets[0])
	for _, l := range labels {
		assertSameTree(t, filepath.Join(src, l), filepath.Join(out, l))
	}
	if again := parseRechunk(t, mustCitadelEnv(t, r.env, "copy", "--repo", repo, "--to", r.url, "--s3-endpoint", r.endpoint,
		"--to-cache-dir", filepath.Join(dir, "tocache"), "--to-password-file", pw, "--json")); again.Blobs != 0 || len(again.Skipped) != 1 {
		t.Fatalf("second copy into the bucket transferred something: %+v", again)
	}
}
