package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"citadelfs/internal/testutil"
)

// assertOneLineError checks the contract for every refusal: the documented
// exit code and exactly one line on stderr, never a Go panic or stack.
func assertOneLineError(t *testing.T, r result, code int, mentions ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d\n%s", r.code, code, r)
	}
	if !oneLine(r.stderr) {
		t.Errorf("want exactly one line on stderr, got %q", r.stderr)
	}
	for _, bad := range []string{"panic", "goroutine ", ".go:"} {
		if strings.Contains(r.stderr, bad) {
			t.Errorf("stderr has %q (a crash, not a message): %q", bad, r.stderr)
		}
	}
	for _, m := range mentions {
		if re, ok := strings.CutPrefix(m, "re:"); ok {
			if !regexp.MustCompile(re).MatchString(r.stderr) {
				t.Errorf("stderr %q does not match %s", r.stderr, re)
			}
			continue
		}
		if !strings.Contains(strings.ToLower(r.stderr), strings.ToLower(m)) {
			t.Errorf("stderr %q does not mention %q", r.stderr, m)
		}
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "etc", "a.yaml"), []byte("a: 1\n"), 0o644)
	repo := initRepo(t, dir)
	takeSnapshot(t, repo, "--source", "configs="+filepath.Join(src, "etc"))

	notRepo := filepath.Join(dir, "not-a-repo")
	os.Mkdir(notRepo, 0o755)
	aFile := filepath.Join(dir, "a-file")
	os.WriteFile(aFile, []byte("x"), 0o644)

	newer := initRepo(t, filepath.Join(dir, "v99"))
	cj := filepath.Join(newer, "citadel.json")
	data, err := os.ReadFile(cj)
	if err != nil {
		t.Fatal(err)
	}
	v99 := regexp.MustCompile(`"version":\s*\d+\b`).ReplaceAll(data, []byte(`"version": 99`))
	if string(v99) == string(data) {
		t.Fatalf("citadel.json has no \"version\" to edit:\n%s", data)
	}
	os.WriteFile(cj, v99, 0o600)

	cfg := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	badSyntax := cfg("syntax.yaml", "repo: "+repo+"\nsources:\n  models: [unclosed\n")
	unknownKey := cfg("unknown.yaml", "repo: "+repo+"\nsourcez:\n  models: /x\n")
	wrongType := cfg("type.yaml", "repo: "+repo+"\nsources: 7\n")
	empty := cfg("empty.yaml", "")
	badLabel := cfg("label.yaml", "repo: "+repo+"\nsources:\n  bad label!: /x\n")

	cases := []struct {
		name     string
		args     []string
		code     int
		mentions []string
	}{
		{"missing repo path", []string{"snapshots", "--repo", filepath.Join(dir, "nowhere")}, 10, []string{"nowhere"}},
		{"dir that is not a repo", []string{"snapshots", "--repo", notRepo}, 10, []string{"not-a-repo"}},
		{"file that is not a repo", []string{"snapshots", "--repo", aFile}, 10, []string{"a-file"}},
		{"snapshot into a missing repo", []string{"snapshot", "--repo", filepath.Join(dir, "nowhere"), "--source", "c=" + src}, 10, nil},
		{"wrong format version", []string{"snapshots", "--repo", newer}, 12, []string{"99"}},
		{"unknown flag", []string{"snapshots", "--repo", repo, "--bogus"}, 2, []string{"--bogus"}},
		{"unknown command", []string{"frobnicate"}, 2, []string{"frobnicate"}},
		// yaml.v3 reports some syntax errors at the line of the enclosing
		// node, not the offending one (go-yaml/yaml#704): line 2 or 3 here.
		{"config syntax error", []string{"snapshot", "--config", badSyntax}, 2, []string{`re:syntax\.yaml:[23]: `}},
		{"config unknown key", []string{"snapshot", "--config", unknownKey}, 2, []string{`re:unknown\.yaml:2: unknown key "sourcez" \(did you mean "sources"\?\)`}},
		{"config wrong type", []string{"snapshot", "--config", wrongType}, 2, []string{`re:type\.yaml:2: "7" is not a mapping of keys`}},
		{"config missing", []string{"snapshots", "--config", filepath.Join(dir, "nope.yaml")}, 2, []string{"nope.yaml"}},
		{"no repository anywhere", []string{"snapshots", "--config", empty}, 2, []string{"--repo"}},
		{"--time garbage", []string{"snapshot", "--repo", repo, "--source", "c=" + src, "--time", "yesterday-ish"}, 2, []string{"--time"}},
		{"--source without a label", []string{"snapshot", "--repo", repo, "--source", src}, 2, []string{"--source"}},
		{"--source with a bad label", []string{"snapshot", "--repo", repo, "--source", "bad label!=" + src}, 2, []string{`re:--source: source label "bad label!": only letters`}},
		{"--source with a 300-byte label", []string{"snapshot", "--repo", repo, "--source", strings.Repeat("l", 300) + "=" + src}, 2, []string{"is 300 bytes; at most 64"}},
		{"restore latest with a bad label", []string{"restore", "--repo", repo, "latest:a.b/x", filepath.Join(dir, "rt")}, 2, []string{`source label "a.b"`}},
		{"config with a bad label", []string{"snapshot", "--config", badLabel}, 2, []string{`re:label\.yaml:3: sources: source label "bad label!"`}},
		{"--subset out of range", []string{"check", "--repo", repo, "--subset", "200%"}, 2, []string{"--subset"}},
		{"restore without target", []string{"restore", "--repo", repo, "latest"}, 2, nil},
		// restic's "-1 = unlimited" would keep nothing here: refused.
		{"negative --keep-daily", []string{"forget", "--repo", repo, "--keep-daily", "-1"}, 2, []string{"--keep-daily -1"}},
		{"--metrics-listen garbage", []string{"mount", "--repo", repo, "--metrics-listen", "999.1.1.1:99999", filepath.Join(dir, "mnt-never")}, 2, []string{"--metrics-listen"}},
		{"monitor --metrics-listen typo", []string{"monitor", "--repo", repo, "--metrics-listen", "typo"}, 2, []string{"--metrics-listen"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assertOneLineError(t, citadel(t, c.args...), c.code, c.mentions...)
		})
	}

	t.Run("locked repo", func(t *testing.T) {
		f, err := os.OpenFile(filepath.Join(repo, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			t.Fatal(err)
		}
		assertOneLineError(t, citadel(t, "snapshot", "--repo", repo, "--source", "c="+src), 11, "lock")
		assertOneLineError(t, citadel(t, "check", "--repo", repo), 11, "lock")
		f.Close() // releases the flock
		mustCitadel(t, "check", "--repo", repo)
	})
}

// TestUnreadableFile runs a snapshot as nobody over a tree holding one
// root-only file (chmod 000 would not stop root): the snapshot completes
// without it, exits 3 and names it.
func TestUnreadableFile(t *testing.T) {
	testutil.NeedRoot(t, "to make a file another user cannot read")
	setpriv := testutil.Setpriv(t)
	dir := testutil.NobodyDir(t)
	src := filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "readable.txt"), []byte("everyone\n"), 0o644)
	os.WriteFile(filepath.Join(src, "sub", "also.txt"), []byte("also\n"), 0o644)
	os.WriteFile(filepath.Join(src, "root-only.key"), []byte("secret\n"), 0o600)
	repo := initRepo(t, dir)
	if out, err := exec.Command("chown", "-R", "65534:65534", repo).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}

	r := runCmd(t, testEnv(), setpriv, testutil.AsNobody(citadelBin, "snapshot", "--repo", repo, "--source", "data="+src)...)
	if r.code != 3 {
		t.Fatalf("snapshot with an unreadable file: exit %d, want 3\n%s", r.code, r)
	}
	if !strings.Contains(r.stderr, "root-only.key") || strings.Contains(r.stderr, "panic") {
		t.Fatalf("the warning does not name root-only.key:\n%s", r.stderr)
	}
	// stderr here is a pipe (a journal, a log file): no terminal escapes.
	if strings.ContainsAny(r.stderr, "\r\x1b") {
		t.Errorf("warnings on a pipe carry terminal escape sequences: %q", r.stderr)
	}
	if strings.Contains(r.stderr, "readable.txt") || strings.Contains(r.stderr, "also.txt") {
		t.Errorf("warnings name files that were readable:\n%s", r.stderr)
	}
	// Root refuses a repository another user owns: give it back first.
	if out, err := exec.Command("chown", "-R", "0:0", repo).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
	snaps := listSnapshots(t, repo)
	if len(snaps) != 1 {
		t.Fatalf("the partial snapshot was not committed: %v", snaps)
	}
	out := restore(t, repo, "latest")
	for _, f := range []string{"readable.txt", "sub/also.txt"} {
		assertSameFile(t, filepath.Join(src, f), filepath.Join(out, "data", f))
	}
	if _, err := os.Lstat(filepath.Join(out, "data", "root-only.key")); err == nil {
		if b, _ := os.ReadFile(filepath.Join(out, "data", "root-only.key")); string(b) != "secret\n" {
			t.Errorf("root-only.key restored with bytes %q it never had", b)
		}
	}
}

// TestSpecialFiles: a FIFO and a socket in a source are recorded or
// skipped with a warning, never a crash or a hang (reading a FIFO blocks).
func TestSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "plain.txt"), []byte("plain\n"), 0o644)
	if err := syscall.Mkfifo(filepath.Join(src, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: filepath.Join(src, "sock")}); err != nil {
		t.Fatal(err)
	}
	repo := initRepo(t, dir)
	r := citadel(t, "snapshot", "--repo", repo, "--source", "data="+src)
	if (r.code != 0 && r.code != 3) || strings.Contains(r.stderr, "panic") {
		t.Fatalf("snapshot of a tree with a FIFO and a socket: %s", r)
	}
	out := restore(t, repo, "latest")
	assertSameFile(t, filepath.Join(src, "plain.txt"), filepath.Join(out, "data", "plain.txt"))
	// A FIFO, if recorded, comes back as a FIFO.
	if fi, err := os.Lstat(filepath.Join(out, "data", "fifo")); err == nil && fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("fifo restored as %v", fi.Mode())
	}
}

// A backup disk mounted read-only: listing, restoring and checking still
// work (opened read-only, with a warning), and a snapshot fails with one
// line.
func TestReadOnlyRepository(t *testing.T) {
	testutil.NeedRoot(t, "for a read-only bind mount")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "a.yaml"), []byte("key: value\n"), 0o644)
	repo := initRepo(t, dir)
	takeSnapshot(t, repo, "--source", "c="+src)
	ro := filepath.Join(dir, "ro")
	os.MkdirAll(ro, 0o755)
	if r := runCmd(t, os.Environ(), "mount", "--bind", repo, ro); r.code != 0 {
		t.Skipf("bind mount: %s", r)
	}
	defer runCmd(t, os.Environ(), "umount", ro)
	if r := runCmd(t, os.Environ(), "mount", "-o", "remount,bind,ro", ro); r.code != 0 {
		t.Skipf("remount read-only: %s", r)
	}
	for _, args := range [][]string{{"snapshots"}, {"check", "--read-data"}, {"restore", "latest", filepath.Join(dir, "out")}} {
		r := citadel(t, append(args, "--repo", ro)...)
		if r.code != 0 || !strings.Contains(r.stderr, "opened it read-only") {
			t.Errorf("%s on a read-only repository: %s", args[0], r)
		}
	}
	diffTrees(t, src, filepath.Join(dir, "out", "c"))
	assertOneLineError(t, citadel(t, "snapshot", "--repo", ro, "--source", "c="+src), 1, "read-only file system")
}
