// Package tests holds the end-to-end tests: they build the real citadelfs
// binary and the project's corpusgen (cmd/corpusgen) once (TestMain), then drive the binary
// against real directories, real kill -9s, a real full tmpfs and real
// FUSE mounts. Nothing here is mocked; a failure means the shipped binary
// misbehaves. What the host must offer (root, /dev/fuse, setpriv, a
// directory nobody can reach) is checked by internal/testutil, shared with
// the unit tests of cmd, fs, snapshot and index.
package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"citadelfs/internal/cephtest"
)

// Paths of the binaries TestMain builds.
var (
	citadelBin   string
	corpusgenBin string
)

// stateDir is $CITADELFS_STATE_DIR for every command (see testEnv): the
// host-wide state a command keeps outside any repository (monitor
// history) goes under TestMain's temp dir, never /var/lib/citadelfs.
var stateDir string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "citadelfs-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Tests that run the binary as another user (nobody) must reach it.
	os.Chmod(dir, 0o755)
	citadelBin = filepath.Join(dir, "citadelfs")
	corpusgenBin = filepath.Join(dir, "corpusgen")
	stateDir = filepath.Join(dir, "state")
	builds := []*exec.Cmd{
		exec.Command("go", "build", "-o", citadelBin, "./cmd/citadelfs"),
		exec.Command("go", "build", "-o", corpusgenBin, "./cmd/corpusgen"),
	}
	for _, c := range builds {
		c.Dir = ".." // the repository root
		c.Env = append(os.Environ(), "CGO_CFLAGS=-Wno-deprecated-declarations")
		if out, err := c.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n%s", strings.Join(c.Args, " "), err, out)
			return 1
		}
	}
	code := m.Run()
	cephtest.Stop() // the Ceph an S3 test started, if any
	return code
}

// cmdTimeout bounds every command a test runs, so a hang fails the test
// with a message instead of eating the package timeout.
const cmdTimeout = 120 * time.Second

// result is what one run of the binary did.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// testEnv is the environment every command runs in: no repository from the
// caller's environment, host-wide state in a temp dir (stateDir), and UTC
// so that day and week boundaries in retention are the ones the test
// computes. A later entry of extraEnv overrides these.
func testEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CITADELFS_") || strings.HasPrefix(kv, "TZ=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "TZ=UTC", "CITADELFS_STATE_DIR="+stateDir)
}

// citadel runs the binary with args and returns what it did, whatever the
// exit code. extraEnv entries (KEY=VALUE) are added to testEnv.
func citadel(t testing.TB, args ...string) result {
	t.Helper()
	return citadelEnv(t, nil, args...)
}

func citadelEnv(t testing.TB, extraEnv []string, args ...string) result {
	t.Helper()
	return runCmd(t, append(testEnv(), extraEnv...), citadelBin, args...)
}

func runCmd(t testing.TB, env []string, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	c := exec.CommandContext(ctx, name, args...)
	c.Env = env
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		t.Fatalf("%s %s: timed out after %s\n%s", filepath.Base(name), strings.Join(args, " "), cmdTimeout, r)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("%s %s: %v", filepath.Base(name), strings.Join(args, " "), err)
	}
	return r
}

// mustCitadel runs the binary and fails the test unless it exits 0.
func mustCitadel(t testing.TB, args ...string) result {
	t.Helper()
	r := citadel(t, args...)
	if r.code != 0 {
		t.Fatalf("citadelfs %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// corpus runs corpusgen with args (e.g. -out DIR -models-mb 16, or
// -out DIR -mutate day -seed 2) and returns its stdout.
func corpus(t testing.TB, args ...string) string {
	t.Helper()
	r := runCmd(t, os.Environ(), corpusgenBin, args...)
	if r.code != 0 {
		t.Fatalf("corpusgen %s: %s", strings.Join(args, " "), r)
	}
	return r.stdout
}

// smallCorpus writes the standard small tree (models, configs, logs) under
// dir/src and returns that path. It is small enough for a 2-core machine to
// snapshot in well under a second.
func smallCorpus(t testing.TB, dir string) string {
	t.Helper()
	src := filepath.Join(dir, "src")
	corpus(t, "-out", src, "-models-mb", "16", "-logs-mb", "2", "-configs", "200")
	return src
}

// initRepo creates a repository at dir/repo and returns its path.
func initRepo(t testing.TB, dir string) string {
	t.Helper()
	repo := filepath.Join(dir, "repo")
	mustCitadel(t, "init", "--encryption", "none", "--repo", repo)
	return repo
}

// labels are the three sources every corpusgen tree has.
var labels = []string{"models", "configs", "logs"}

// sourceFlags returns --source label=src/label for each label (all three
// when none are given).
func sourceFlags(src string, ls ...string) []string {
	if len(ls) == 0 {
		ls = labels
	}
	var out []string
	for _, l := range ls {
		out = append(out, "--source", l+"="+filepath.Join(src, l))
	}
	return out
}

// snapSummary is the part of `snapshot --json` the tests read.
type snapSummary struct {
	ID        string   `json:"id"`
	Time      string   `json:"time"`
	Files     int64    `json:"files"`
	Bytes     int64    `json:"bytes"`
	ReadBytes int64    `json:"read_bytes"`
	NewBytes  int64    `json:"new_bytes"`
	Stored    int64    `json:"stored_bytes"`
	Warnings  []string `json:"warnings"`
	Sources   map[string]struct {
		Files     int64 `json:"files"`
		Bytes     int64 `json:"bytes"`
		ReadBytes int64 `json:"read_bytes"`
		NewBytes  int64 `json:"new_bytes"`
	} `json:"sources"`
}

// takeSnapshot runs `snapshot --json` with args and fails unless it exits 0.
// An empty repo leaves --repo out.
func takeSnapshot(t testing.TB, repo string, args ...string) snapSummary {
	t.Helper()
	argv := []string{"snapshot", "--json"}
	if repo != "" { // else from the environment or the config file
		argv = append(argv, "--repo", repo)
	}
	r := mustCitadel(t, append(argv, args...)...)
	var s snapSummary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("snapshot --json printed something that is not the summary: %v\n%s", err, r)
	}
	if s.ID == "" {
		t.Fatalf("snapshot --json: no id\n%s", r)
	}
	return s
}

// snapInfo is one entry of `snapshots --json`.
type snapInfo struct {
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	Tags    []string  `json:"tags"`
	Sources []string  `json:"sources"`
}

func listSnapshots(t testing.TB, repo string) []snapInfo {
	t.Helper()
	r := mustCitadel(t, "snapshots", "--repo", repo, "--json")
	var out []snapInfo
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("snapshots --json: %v\n%s", err, r)
	}
	return out
}

// restore restores ref (SNAP or SNAP:label/path) into a new directory and
// returns it.
func restore(t testing.TB, repo, ref string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "restore")
	mustCitadel(t, "restore", "--repo", repo, ref, dst)
	return dst
}

// diffTrees runs diff -r --no-dereference, which compares every byte and
// symlink target and reports entries present on one side only.
func diffTrees(t testing.TB, a, b string) {
	t.Helper()
	r := runCmd(t, os.Environ(), "diff", "-r", "--no-dereference", a, b)
	if r.code != 0 {
		out := r.stdout + r.stderr
		if len(out) > 4000 {
			out = out[:4000] + "\n..."
		}
		t.Fatalf("diff -r %s %s:\n%s", a, b, out)
	}
}

// assertSameTree compares src and dst by content (diff -r) and by
// metadata, entry by entry (see compareMeta).
func assertSameTree(t testing.TB, src, dst string) {
	t.Helper()
	diffTrees(t, src, dst)
	compareMeta(t, src, dst)
}

// oneLine reports whether s is exactly one line of text.
func oneLine(s string) bool {
	return strings.Count(s, "\n") == 1 && strings.HasSuffix(s, "\n") && strings.TrimSpace(s) != ""
}

// meta is what a faithful restore must keep of one directory entry.
type meta struct {
	mode       uint32 // type and permission bits, setuid/setgid/sticky included
	uid, gid   uint32
	size       int64
	nlink      uint64
	mtimeNs    int64
	ino        uint64
	blocks     int64 // 512-byte blocks allocated
	target     string
	xattrs     map[string]string
	isDir, reg bool
}

func lmeta(t testing.TB, p string) (meta, error) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return meta{}, err
	}
	m := meta{mode: st.Mode, uid: st.Uid, gid: st.Gid, size: st.Size, nlink: uint64(st.Nlink),
		mtimeNs: st.Mtim.Nano(), ino: st.Ino, blocks: st.Blocks,
		isDir: st.Mode&unix.S_IFMT == unix.S_IFDIR, reg: st.Mode&unix.S_IFMT == unix.S_IFREG}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		tg, err := os.Readlink(p)
		if err != nil {
			return meta{}, err
		}
		m.target = tg
	}
	xa, err := readXattrs(p)
	if err != nil {
		return meta{}, err
	}
	m.xattrs = xa
	return m, nil
}

// readXattrs returns every extended attribute of p (not following symlinks).
func readXattrs(p string) (map[string]string, error) {
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listxattr %s: %w", p, err)
	}
	out := map[string]string{}
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		v := make([]byte, 64<<10)
		vn, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			return nil, fmt.Errorf("getxattr %s %s: %w", p, name, err)
		}
		out[name] = string(v[:vn])
	}
	return out, nil
}

// compareMeta walks src and checks that every entry exists in dst with the
// same type and mode, owner, mtime to the nanosecond, size, link count,
// symlink target and extended attributes, and that files hardlinked
// together in src are hardlinked together in dst.
func compareMeta(t testing.TB, src, dst string) {
	t.Helper()
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	inodes := map[uint64]uint64{} // src inode -> dst inode, for hardlinks
	n := 0
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		a, err := lmeta(t, p)
		if err != nil {
			return err
		}
		b, err := lmeta(t, filepath.Join(dst, rel))
		if err != nil {
			bad("%s: %v", rel, err)
			return nil
		}
		n++
		if a.mode != b.mode {
			bad("%s: mode %o, restored %o", rel, a.mode, b.mode)
		}
		if a.uid != b.uid || a.gid != b.gid {
			bad("%s: owner %d:%d, restored %d:%d", rel, a.uid, a.gid, b.uid, b.gid)
		}
		if a.mtimeNs != b.mtimeNs {
			bad("%s: mtime %d, restored %d", rel, a.mtimeNs, b.mtimeNs)
		}
		if !a.isDir && a.size != b.size {
			bad("%s: size %d, restored %d", rel, a.size, b.size)
		}
		if a.nlink != b.nlink {
			bad("%s: %d links, restored %d", rel, a.nlink, b.nlink)
		}
		if a.target != b.target {
			bad("%s: symlink to %q, restored to %q", rel, a.target, b.target)
		}
		if fmt.Sprint(a.xattrs) != fmt.Sprint(b.xattrs) {
			bad("%s: xattrs %v, restored %v", rel, a.xattrs, b.xattrs)
		}
		if a.reg && a.nlink > 1 {
			if prev, ok := inodes[a.ino]; ok && prev != b.ino {
				bad("%s: hardlinked in the source, a separate file after restore", rel)
			}
			inodes[a.ino] = b.ino
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", src, err)
	}
	if n < 2 {
		t.Fatalf("compareMeta: only %d entries under %s; is the tree there?", n, src)
	}
	if len(problems) > 0 {
		if len(problems) > 20 {
			problems = append(problems[:20], fmt.Sprintf("... and %d more", len(problems)-20))
		}
		t.Fatalf("metadata differs between %s and %s:\n  %s", src, dst, strings.Join(problems, "\n  "))
	}
}
