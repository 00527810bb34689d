package snapshot

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"citadelfs/internal/testutil"
)

// renamerEnv, when set ("DIR OUTSIDE"), makes TestRestoreRaceWithRenamer
// the attacker instead: it swaps DIR/a for a symlink to OUTSIDE and back,
// forever, as the unprivileged user the test started it as.
const renamerEnv = "CITADELFS_TEST_RENAMER"

// Root restored into a tree another user can rename entries in. The user
// swapped a directory restore had already checked for a symlink to a
// directory of root's, and restore removed and rewrote root's files
// there through it (and chmod'ed and chown'ed the directories), because
// every later call named the entry by a path from the target down.
func TestRestoreRaceWithRenamer(t *testing.T) {
	if spec := os.Getenv(renamerEnv); spec != "" {
		dir, outside, _ := strings.Cut(spec, " ")
		renameLoop(dir, outside)
		return
	}
	testutil.NeedRoot(t, "(the restore runs as root, the renamer as uid 65534)")
	ctx := context.Background()
	// The snapshot: s/a/b/c/d, 40 small files in each of a, b, c and d.
	src := t.TempDir()
	deep := filepath.Join(src, "a", "b", "c", "d")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	var names []string // relative to a: what the restore writes below the swapped directory
	for dir, rel := deep, "b/c/d"; ; dir, rel = filepath.Dir(dir), filepath.Dir(rel) {
		for i := range 40 {
			name := filepath.Join(rel, fmt.Sprintf("f%02d", i))
			names = append(names, name)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d", i)), []byte("restored "+name+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if rel == "." {
			break
		}
	}
	r, _ := newRepo(t)
	res, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "s", Path: src}}})
	if err != nil {
		t.Fatal(err)
	}

	// base (root's, searchable by all) holds the renamer's binary, root's
	// outside directory of decoys, and the user's home the restores go to.
	base, err := os.MkdirTemp("", "citadelfs-race-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(base, "snapshot.test")
	copyFile(t, os.Args[0], exe)
	// outside mirrors what the restore writes below a, so every write
	// the old restore made through the symlink replaced a decoy.
	outside := filepath.Join(base, "outside")
	for _, name := range names {
		p := filepath.Join(outside, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o711); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("root's decoy\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	before := outsideState(t, outside)
	home := filepath.Join(base, "home")
	mkdirOwned(t, home)

	const rounds = 8
	var refused int
	for i := range rounds {
		// Each round restores over a tree the user owns, as a restore
		// over their home does: target/s and target/s/a are theirs.
		target := filepath.Join(home, fmt.Sprint(i))
		s := filepath.Join(target, "s")
		for _, d := range []string{target, s, filepath.Join(s, "a")} {
			mkdirOwned(t, d)
		}
		renamer := exec.Command(exe, "-test.run=^"+t.Name()+"$")
		renamer.Env = append(os.Environ(), renamerEnv+"="+s+" "+outside)
		renamer.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		if err := renamer.Start(); err != nil {
			t.Fatal(err)
		}
		stop := func() {
			renamer.Process.Kill()
			renamer.Wait()
		}
		// Restore only once the user watches for it.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			if _, err := os.Lstat(filepath.Join(s, "ready")); err == nil {
				break
			}
			if time.Now().After(deadline) {
				stop()
				t.Fatal("the renamer never started")
			}
		}
		_, err := r.Restore(ctx, res.Snapshot, nil, target, RestoreOptions{})
		stop()
		if err != nil {
			// Refused, one line (restore found a swapped when it came back
			// to set its metadata): never a write outside the target.
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "snapshot: restore") {
				t.Fatalf("round %d: restore failed without a one-line reason: %q", i, msg)
			}
			refused++
			t.Logf("round %d: %v", i, err)
		}
		if err == nil {
			// Whole, in the directory restore made: at a, or at a.moved
			// if the renamer was killed half way through a swap.
			real := filepath.Join(s, "a")
			if fi, err := os.Lstat(real); err != nil || !fi.IsDir() {
				real = filepath.Join(s, "a.moved")
			}
			for _, name := range names {
				if got, err := os.ReadFile(filepath.Join(real, name)); err != nil || string(got) != "restored "+name+"\n" {
					t.Fatalf("round %d: restore succeeded, but %s holds %q (%v)", i, name, got, err)
				}
			}
		}
		if diff := stateDiff(before, outsideState(t, outside)); diff != "" {
			t.Fatalf("round %d: restore changed root's directory outside the target: %s", i, diff)
		}
	}
	t.Logf("%d of %d restores found a swapped directory and failed; none wrote outside the target", refused, rounds)
}

// renameLoop is the attacker. It waits until restore is inside a (a/b
// exists: restore checked a and went on), then swaps a for a symlink to
// outside, and back, and again, until it is killed.
func renameLoop(dir, outside string) {
	a, moved := filepath.Join(dir, "a"), filepath.Join(dir, "a.moved")
	os.WriteFile(filepath.Join(dir, "ready"), nil, 0o644)
	for {
		if _, err := os.Lstat(filepath.Join(a, "b")); err == nil {
			break
		}
	}
	for {
		if os.Rename(a, moved) == nil {
			os.Symlink(outside, a)
		}
		time.Sleep(300 * time.Microsecond)
		unix.Unlink(a) // the symlink only: never a directory
		os.Rename(moved, a)
		time.Sleep(50 * time.Microsecond)
	}
}

func mkdirOwned(t *testing.T, dir string) {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
}

// outsideState maps every entry below dir to its inode, mode, owner,
// mtime and content: any removal, creation or change shows.
func outsideState(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		e := fmt.Sprintf("ino=%d mode=%o uid=%d gid=%d mtime=%d", st.Ino, st.Mode, st.Uid, st.Gid, st.Mtim.Nano())
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e += fmt.Sprintf(" %q", data)
		}
		out[p] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// stateDiff names the first few entries that differ, "" when none does.
func stateDiff(before, after map[string]string) string {
	var diffs []string
	for p, b := range before {
		if a, ok := after[p]; !ok {
			diffs = append(diffs, p+" removed")
		} else if a != b {
			diffs = append(diffs, fmt.Sprintf("%s: %s, was %s", p, a, b))
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			diffs = append(diffs, p+" created")
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 3 {
		diffs = append(diffs[:3], fmt.Sprintf("and %d more", len(diffs)-3))
	}
	return strings.Join(diffs, "; ")
}
