package tests

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"citadelfs/index"
)

// keyTestSource is a small tree: a few files, one of them a few chunks.
func keyTestSource(t *testing.T, dir string) string {
	t.Helper()
	src := filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("alpha\n"), 0o644)
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i*7 + i/4096)
	}
	os.WriteFile(filepath.Join(src, "sub", "weights.bin"), big, 0o644)
	return src
}

// dirListing is every file under root with its size and SHA-256, and
// every directory, one line each, sorted: what "nothing changed" compares.
func dirListing(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			lines = append(lines, rel+"/")
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		h := sha256.Sum256(b)
		lines = append(lines, fmt.Sprintf("%s %d %s", rel, len(b), hex.EncodeToString(h[:])))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

type keySlotRow struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	Comment string `json:"comment"`
	InUse   bool   `json:"in_use"`
	Damaged string `json:"damaged"`
}

func keySlots(t *testing.T, run func(args ...string) result, unlock ...string) []keySlotRow {
	t.Helper()
	r := run(append([]string{"key", "list", "--json"}, unlock...)...)
	if r.code != 0 {
		t.Fatalf("key list: %s", r)
	}
	var rows []keySlotRow
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("key list --json: %v\n%s", err, r)
	}
	return rows
}

func inUse(t *testing.T, rows []keySlotRow) string {
	t.Helper()
	for _, r := range rows {
		if r.InUse {
			return r.ID
		}
	}
	t.Fatalf("no slot in use: %+v", rows)
	return ""
}

func writeSecret(t *testing.T, dir, name, pass string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A local encrypted repository: init with a password file makes the
// store layout (key slot, no Pebble index inside); a wrong passphrase is
// exit 15 in one line from every way of giving it, and leaves every byte
// of the repository as it was; no passphrase and no terminal is exit 2
// naming the ways; key add (passphrase, key file), remove and passwd
// keep everything restorable with the slots that remain, and the
// removed ones stop opening; a flipped byte in the only key slot is
// damage, exit 4, never "wrong passphrase".
func TestEncryptedLocalKeys(t *testing.T) {
	dir := t.TempDir()
	src := keyTestSource(t, dir)
	repo := filepath.Join(dir, "repo")
	pw := writeSecret(t, dir, "pw", "first passphrase")
	bad := writeSecret(t, dir, "bad", "not the passphrase")
	run := func(args ...string) result { return citadel(t, append(args, "--repo", repo)...) }
	must := func(args ...string) result {
		t.Helper()
		r := run(args...)
		if r.code != 0 {
			t.Fatalf("citadelfs %s: %s", strings.Join(args, " "), r)
		}
		return r
	}

	if out := must("init", "--password-file", pw).stdout; !strings.Contains(out, "created encrypted repository") {
		t.Fatalf("init: %q", out)
	}
	cfg, err := index.ReadConfig(repo)
	if err != nil || cfg.Version != 2 || cfg.Encryption != "aes-256-gcm" || cfg.Chunker.Seed != 0 {
		t.Fatalf("citadel.json: %+v, %v", cfg, err)
	}
	if _, err := os.Stat(filepath.Join(repo, "reserve")); err == nil {
		t.Error("an encrypted repository has a reserve: its Pebble index is not inside it")
	}
	must("snapshot", "--password-file", pw, "--source", "data="+src)
	if ents, _ := os.ReadDir(filepath.Join(repo, "keys")); len(ents) != 1 {
		t.Fatalf("keys/: %d slots", len(ents))
	}
	if _, err := os.Stat(filepath.Join(repo, "index", "CURRENT")); err == nil {
		t.Fatal("a Pebble database inside the encrypted repository (it holds names in the clear)")
	}

	before := dirListing(t, repo)
	for name, r := range map[string]result{
		"--password-file":          run("snapshot", "--password-file", bad, "--source", "data="+src),
		"$CITADELFS_PASSWORD_FILE": citadelEnv(t, []string{"CITADELFS_PASSWORD_FILE=" + bad}, "forget", "--keep-last", "1", "--prune", "--repo", repo),
		"key add":                  run("key", "add", "--password-file", bad, "--new-password-file", pw),
		"a key file":               run("restore", "latest", filepath.Join(dir, "nowhere"), "--key-file", writeKeyFile(t, dir)),
	} {
		assertOneLineError(t, r, 15, "wrong passphrase")
		if r.code != 15 {
			t.Errorf("%s: exit %d", name, r.code)
		}
	}
	assertOneLineError(t, run("snapshots"), 2, "--password-file", "CITADELFS_PASSWORD_FILE", "--key-file")
	if after := dirListing(t, repo); after != before {
		t.Fatalf("a wrong or missing passphrase changed the repository:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if _, err := os.Stat(filepath.Join(dir, "nowhere")); err == nil {
		t.Error("restore with a wrong key file made its target")
	}

	// Add a passphrase slot and a key-file slot (made by the command).
	pw2 := writeSecret(t, dir, "pw2", "second passphrase")
	kf := filepath.Join(dir, "robot.key")
	must("key", "add", "--password-file", pw, "--new-password-file", pw2, "--comment", "ops")
	must("key", "add", "--password-file", pw2, "--new-key-file", kf, "--comment", "robot")
	if st, err := os.Stat(kf); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", st, err)
	}
	rows := keySlots(t, run, "--key-file", kf)
	if len(rows) != 3 || rows[2].Kind != "keyfile" || rows[2].Comment != "robot" || !rows[2].InUse {
		t.Fatalf("slots: %+v", rows)
	}
	first := rows[0].ID
	for _, unlock := range [][]string{{"--password-file", pw}, {"--password-file", pw2}, {"--key-file", kf}} {
		dst := filepath.Join(t.TempDir(), "r")
		must(append([]string{"restore", "latest", dst}, unlock...)...)
		diffTrees(t, src, filepath.Join(dst, "data"))
	}

	// Remove: not the slot in use without --force; then by prefix.
	assertOneLineError(t, run("key", "remove", first[:8], "--password-file", pw), 2, "--force")
	must("key", "remove", first[:8], "--key-file", kf)
	assertOneLineError(t, run("snapshots", "--password-file", pw), 15)

	// passwd: the key file's slot is replaced by a new passphrase.
	pw3 := writeSecret(t, dir, "pw3", "third passphrase")
	if out := must("key", "passwd", "--key-file", kf, "--new-password-file", pw3).stdout; !strings.Contains(out, "data is unchanged") {
		t.Fatalf("passwd: %q", out)
	}
	assertOneLineError(t, run("snapshots", "--key-file", kf), 15)
	rows = keySlots(t, run, "--password-file", pw3)
	if len(rows) != 2 {
		t.Fatalf("after passwd: %+v", rows)
	}
	must("snapshot", "--password-file", pw3, "--source", "data="+src)
	dst := filepath.Join(t.TempDir(), "r")
	must("restore", "latest", dst, "--password-file", pw2)
	diffTrees(t, src, filepath.Join(dst, "data"))

	// The last slot stays, --force or not.
	must("key", "remove", inUseOther(rows, pw3Slot(t, run, pw3)), "--password-file", pw3)
	last := pw3Slot(t, run, pw3)
	assertOneLineError(t, run("key", "remove", last, "--password-file", pw3, "--force"), 2, "last")

	// A flipped byte in the only slot: damage (exit 4), named.
	slotPath := filepath.Join(repo, "keys", last)
	data, err := os.ReadFile(slotPath)
	if err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), data...)
	flipped[len(flipped)/2] ^= 0x01
	os.WriteFile(slotPath, flipped, 0o600)
	assertOneLineError(t, run("snapshots", "--password-file", pw3), 4, "key slot", "damaged")
	os.WriteFile(slotPath, data, 0o600)
	must("check", "--password-file", pw3)
}

// inUseOther is the id of the slot in rows that is not id.
func inUseOther(rows []keySlotRow, id string) string {
	for _, r := range rows {
		if r.ID != id {
			return r.ID
		}
	}
	return ""
}

func pw3Slot(t *testing.T, run func(args ...string) result, pw string) string {
	t.Helper()
	return inUse(t, keySlots(t, run, "--password-file", pw))
}

func writeKeyFile(t *testing.T, dir string) string {
	t.Helper()
	b, err := index.NewKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "other.key")
	os.WriteFile(p, b, 0o600)
	return p
}

// The choice at init: a local repository in the clear keeps today's
// directory layout (from the flag or the config's encryption: none); an
// s3:// one in the clear needs --insecure-no-encryption besides.
func TestInitEncryptionChoice(t *testing.T) {
	dir := t.TempDir()
	clear := filepath.Join(dir, "clear")
	mustCitadel(t, "init", "--repo", clear, "--encryption", "none")
	if _, err := os.Stat(filepath.Join(clear, "index", "CURRENT")); err != nil {
		t.Fatalf("a local repository in the clear has no Pebble index inside: %v", err)
	}
	cfgFile := filepath.Join(dir, "config.yaml")
	viaConfig := filepath.Join(dir, "via-config")
	os.WriteFile(cfgFile, []byte("repo: "+viaConfig+"\nencryption: none\n"), 0o600)
	mustCitadel(t, "init", "--config", cfgFile)
	if cfg, err := index.ReadConfig(viaConfig); err != nil || cfg.Encryption != "none" {
		t.Fatalf("encryption: none in the config: %+v, %v", cfg, err)
	}
	os.WriteFile(cfgFile, []byte("repo: "+viaConfig+"\nencryption: rot13\n"), 0o600)
	assertOneLineError(t, citadel(t, "init", "--config", cfgFile), 2, "encryption")
	assertOneLineError(t, citadel(t, "init", "--repo", filepath.Join(dir, "x"), "--encryption", "des"), 2, "--encryption")
	assertOneLineError(t, citadel(t, "init", "--repo", "s3://bucket/p", "--encryption", "none"), 2, "--insecure-no-encryption")
	assertOneLineError(t, citadel(t, "init", "--repo", filepath.Join(dir, "enc")), 2, "--password-file")
	if _, err := os.Stat(filepath.Join(dir, "enc")); err == nil {
		t.Error("init without a passphrase made the repository's directory")
	}
}

// An encrypted s3:// repository on the shared Ceph: init with a password
// file, a wrong passphrase is exit 15 and leaves every object of the
// bucket as it was (no lock object, nothing), a key-file slot added and
// the passphrase rotated still restore.
func TestEncryptedS3Keys(t *testing.T) {
	t.Parallel()
	r := newS3Repo(t)
	dir := t.TempDir()
	src := keyTestSource(t, dir)
	cache := filepath.Join(dir, "cache")
	pw := writeSecret(t, dir, "pw", "bucket passphrase")
	bad := writeSecret(t, dir, "bad", "wrong")
	r.must(t, cache, "init", "--password-file", pw)
	r.must(t, cache, "snapshot", "--password-file", pw, "--source", "data="+src)

	objects := func() string {
		var lines []string
		if err := r.store.List("", func(name string, size int64) error {
			lines = append(lines, fmt.Sprintf("%s %d", name, size))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		sort.Strings(lines)
		return strings.Join(lines, "\n")
	}
	before := objects()
	if !strings.Contains(before, "keys/") {
		t.Fatalf("no key slot in the bucket:\n%s", before)
	}
	assertOneLineError(t, r.run(t, cache, "snapshot", "--password-file", bad, "--source", "data="+src), 15, "wrong passphrase")
	assertOneLineError(t, r.run(t, filepath.Join(dir, "other-cache"), "snapshots", "--password-file", bad), 15)
	if after := objects(); after != before {
		t.Fatalf("a wrong passphrase changed the bucket:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if _, err := os.Stat(filepath.Join(dir, "other-cache")); err == nil {
		t.Error("a wrong passphrase made a cache")
	}

	kf := filepath.Join(dir, "robot.key")
	r.must(t, cache, "key", "add", "--password-file", pw, "--new-key-file", kf)
	pw2 := writeSecret(t, dir, "pw2", "rotated")
	r.must(t, cache, "key", "passwd", "--password-file", pw, "--new-password-file", pw2)
	assertOneLineError(t, r.run(t, cache, "snapshots", "--password-file", pw), 15)
	for _, unlock := range [][]string{{"--key-file", kf}, {"--password-file", pw2}} {
		dst := filepath.Join(t.TempDir(), "r")
		r.must(t, filepath.Join(t.TempDir(), "fresh-cache"), append([]string{"restore", "latest", dst}, unlock...)...)
		diffTrees(t, src, filepath.Join(dst, "data"))
	}
}

// copy and migrate unlock an encrypted target, local too: from
// --to-password-file, or the source's own sources when the target has the
// same passphrase (a migrate from a repository in the clear); a wrong
// target passphrase is exit 15.
func TestCopyToEncryptedLocalTarget(t *testing.T) {
	dir := t.TempDir()
	src := keyTestSource(t, dir)
	clear := filepath.Join(dir, "clear")
	enc := filepath.Join(dir, "enc")
	enc2 := filepath.Join(dir, "enc2")
	pw := writeSecret(t, dir, "pw", "target one")
	pw2 := writeSecret(t, dir, "pw2", "target two")
	mustCitadel(t, "init", "--encryption", "none", "--repo", clear)
	mustCitadel(t, "snapshot", "--repo", clear, "--source", "data="+src)
	mustCitadel(t, "init", "--repo", enc, "--password-file", pw)
	mustCitadel(t, "init", "--repo", enc2, "--password-file", pw2)
	mustCitadel(t, "migrate", "--repo", clear, "--to", enc, "--password-file", pw)
	assertOneLineError(t, citadel(t, "copy", "--repo", enc, "--password-file", pw, "--to", enc2, "--to-password-file", pw), 15, "--to-password-file")
	mustCitadel(t, "copy", "--repo", enc, "--password-file", pw, "--to", enc2, "--to-password-file", pw2)
	dst := filepath.Join(t.TempDir(), "r")
	mustCitadel(t, "restore", "--repo", enc2, "--password-file", pw2, "latest", dst)
	diffTrees(t, src, filepath.Join(dst, "data"))
}

// The mount daemon of a local encrypted repository unlocks it from the
// systemd credential (as the generated unit gives it), serves its
// snapshots, and runs a client's snapshot, which then needs no
// passphrase of its own: the daemon holds the repository open.
func TestMountEncryptedLocal(t *testing.T) {
	needMount(t)
	dir := t.TempDir()
	src := keyTestSource(t, dir)
	repo := filepath.Join(dir, "repo")
	pw := writeSecret(t, dir, "pw", "mount passphrase")
	mustCitadel(t, "init", "--repo", repo, "--password-file", pw)
	mustCitadel(t, "snapshot", "--repo", repo, "--password-file", pw, "--source", "data="+src)
	creds := filepath.Join(dir, "creds")
	os.Mkdir(creds, 0o700)
	os.WriteFile(filepath.Join(creds, "citadelfs-password"), []byte("mount passphrase\n"), 0o600)
	mp := filepath.Join(dir, "mnt")
	os.Mkdir(mp, 0o755)
	startMountEnv(t, []string{"CREDENTIALS_DIRECTORY=" + creds}, repo, mp, fastMonitorConfig(t, dir))
	got, err := os.ReadFile(filepath.Join(mp, "latest", "data", "a.txt"))
	if err != nil || string(got) != "alpha\n" {
		t.Fatalf("latest/data/a.txt through the mount: %q, %v", got, err)
	}
	os.WriteFile(filepath.Join(src, "b.txt"), []byte("beta\n"), 0o644)
	mustCitadel(t, "snapshot", "--repo", repo, "--source", "data="+src)
	if got, err := os.ReadFile(filepath.Join(mp, "latest", "data", "b.txt")); err != nil || string(got) != "beta\n" {
		t.Fatalf("the client's snapshot through the daemon: %q, %v", got, err)
	}
}

// A local encrypted repository keeps no on-disk blob cache: its packs are
// on a local disk already, and the default 2 GiB cache would copy the
// backup beside itself. The cache dir holds the index only.
func TestEncryptedLocalKeepsNoBlobCache(t *testing.T) {
	dir := t.TempDir()
	src := keyTestSource(t, dir)
	repo := filepath.Join(dir, "repo")
	kf := writeKeyFile(t, dir)
	for _, args := range [][]string{
		{"init", "--key-file", kf},
		{"snapshot", "--key-file", kf, "--source", "data=" + src},
		{"restore", "--key-file", kf, "latest", filepath.Join(dir, "out")},
	} {
		if r := citadel(t, append(args, "--repo", repo)...); r.code != 0 {
			t.Fatalf("citadelfs %s: %s", strings.Join(args, " "), r)
		}
	}
	cfg, err := index.ReadConfig(repo)
	if err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(stateDir, "cache", cfg.ID)
	if _, err := os.Stat(filepath.Join(cache, "index")); err != nil {
		t.Fatalf("no index in the cache dir %s: %v", cache, err)
	}
	ents, _ := os.ReadDir(filepath.Join(cache, "blobs"))
	if len(ents) != 0 {
		t.Fatalf("%s/blobs holds %d entries: a local repository's blobs were cached", cache, len(ents))
	}
}
