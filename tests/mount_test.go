package tests

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"citadelfs/internal/testutil"
)

// End-to-end tests of `citadelfs mount`: the built binary serves a real
// FUSE mount, and the checks use cp, diff, rsync, setpriv and plain system
// calls from this process (never the daemon's own).

// readyTimeout bounds the wait for the mount's readiness line.
const readyTimeout = 30 * time.Second

// mountProc is one running `citadelfs mount`.
type mountProc struct {
	cmd    *exec.Cmd
	mp     string
	repo   string
	stderr *testutil.SyncBuffer
	exited chan struct{}
	err    error // Wait's result, valid after exited is closed
	// notify collects what the daemon sent to $NOTIFY_SOCKET (systemd).
	notify *testutil.SyncBuffer
}

// needMount skips a test that mounts unless it can (testutil.NeedFUSE).
func needMount(t *testing.T) { t.Helper(); testutil.NeedFUSE(t) }

// monitorConfig writes a configuration that keeps the daemon's monitor
// history inside the test's directory and returns its path.
// fastMonitorConfig is a config whose monitor samples every second and
// watches no models or paths: for tests that wait on an alert.
func fastMonitorConfig(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "config.yaml")
	cfg := fmt.Sprintf("monitor:\n  interval: 1s\n  history_dir: %s\n  models: {}\n  paths: []\n", filepath.Join(dir, "monitor-history"))
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func monitorConfig(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "config.yaml")
	cfg := fmt.Sprintf("monitor:\n  history_dir: %s\n", filepath.Join(dir, "monitor-history"))
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startMount runs `citadelfs mount` and returns once it printed its
// readiness line; the mount is stopped and cleared in t.Cleanup whatever
// happens.
func startMount(t *testing.T, repo, mp, config string, args ...string) *mountProc {
	t.Helper()
	return startMountEnv(t, nil, repo, mp, config, args...)
}

// startMountEnv is startMount with extraEnv (KEY=VALUE) added.
func startMountEnv(t *testing.T, extraEnv []string, repo, mp, config string, args ...string) *mountProc {
	t.Helper()
	argv := append([]string{"mount", "--repo", repo, "--config", config}, args...)
	argv = append(argv, mp)
	m := &mountProc{mp: mp, repo: repo, stderr: &testutil.SyncBuffer{}, exited: make(chan struct{}), notify: &testutil.SyncBuffer{}}
	m.cmd = exec.Command(citadelBin, argv...)
	// Stand in for systemd's notify socket.
	ns, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(t.TempDir(), "notify"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ns.Read(buf)
			if err != nil {
				return
			}
			m.notify.Write(append(buf[:n:n], '\n'))
		}
	}()
	m.cmd.Env = append(append(testEnv(), extraEnv...), "NOTIFY_SOCKET="+ns.LocalAddr().String())
	m.cmd.Stderr = m.stderr
	out, err := m.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	go func() {
		m.err = m.cmd.Wait()
		close(m.exited)
	}()
	t.Cleanup(func() { m.stop(t) })
	timeout := time.After(readyTimeout)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				<-m.exited
				t.Fatalf("mount exited before it was ready: %v\n%s", m.err, m.stderr)
			}
			if line == "citadelfs: mounted "+repo+" at "+mp {
				// sd_notify READY=1 comes right after the line.
				deadline := time.Now().Add(5 * time.Second)
				for !strings.Contains(m.notify.String(), "READY=1") && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				if !strings.Contains(m.notify.String(), "READY=1") {
					t.Errorf("no READY=1 on $NOTIFY_SOCKET (got %q)", m.notify.String())
				}
				return m
			}
			t.Logf("mount printed %q", line)
		case <-timeout:
			t.Fatalf("mount not ready within %s\n%s", readyTimeout, m.stderr)
		}
	}
}

// stop sends SIGTERM and makes sure nothing stays mounted: a failed test
// must not leave a mount that hangs the next one.
func (m *mountProc) stop(t *testing.T) {
	select {
	case <-m.exited:
	default:
		m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.exited:
		case <-time.After(15 * time.Second):
			t.Errorf("mount did not stop on SIGTERM\n%s", m.stderr)
			m.cmd.Process.Kill()
			<-m.exited
		}
	}
	for i := 0; isMounted(m.mp); i++ {
		if i == 10 {
			unix.Unmount(m.mp, unix.MNT_DETACH)
			break
		}
		unix.Unmount(m.mp, 0)
		time.Sleep(100 * time.Millisecond)
	}
}

// isMounted reports whether a file system is mounted at mp.
func isMounted(mp string) bool {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[1] == mp {
			return true
		}
	}
	return false
}

// openFDs counts a process's open file descriptors.
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// fileFDs counts a process's descriptors of files and directories,
// leaving out pipes, sockets and /dev/null, which come and go with the
// monitor's systemctl runs.
func fileFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		tg, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		if strings.HasPrefix(tg, "/") && tg != "/dev/null" {
			n++
		}
	}
	return n
}

// mountFixture makes a corpus with edge cases, snapshots it and mounts the
// repository with --allow-other, in directories nobody can traverse (for
// the permission checks).
func mountFixture(t *testing.T) (src, repo, mp, config string, m *mountProc) {
	t.Helper()
	needMount(t)
	dir := testutil.NobodyDir(t)
	src = filepath.Join(dir, "src")
	corpus(t, "-out", src, "-models-mb", "8", "-logs-mb", "2", "-configs", "200")
	addEdgeCases(t, src)
	// A 0600 file that an ACL opens to nobody: the mount must enforce
	// the ACL as the source file system does.
	granted := filepath.Join(src, "configs", "acl-granted.env")
	if err := os.WriteFile(granted, []byte("TOKEN=acl\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if setfacl, err := exec.LookPath("setfacl"); err == nil {
		if r := runCmd(t, os.Environ(), setfacl, "-m", "u:65534:r", granted); r.code != 0 {
			t.Fatalf("setfacl: %s", r)
		}
	}
	repo = initRepo(t, dir)
	takeSnapshot(t, repo, sourceFlags(src)...)
	mp = filepath.Join(dir, "mnt")
	config = monitorConfig(t, dir)
	m = startMount(t, repo, mp, config, "--allow-other")
	return src, repo, mp, config, m
}

func TestMountCopyOutIsFaithful(t *testing.T) {
	src, _, mp, _, m := mountFixture(t)

	ents, err := os.ReadDir(mp)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	today := time.Now().UTC().Format("2006-01-02")
	if got, want := strings.Join(names, " "), today+" hosts latest snapshots status tags"; got != want {
		t.Errorf("mount root: %q, want %q", got, want)
	}

	out := filepath.Join(t.TempDir(), "out")
	copyOut := func(round int) {
		os.RemoveAll(out)
		os.Mkdir(out, 0o755)
		for _, l := range labels {
			r := runCmd(t, os.Environ(), "cp", "-a", filepath.Join(mp, "latest", l), filepath.Join(out, l))
			if r.code != 0 {
				t.Fatalf("round %d: cp -a latest/%s: %s", round, l, r)
			}
		}
	}
	copyOut(1)
	// The daemon's pack and index descriptors after one full copy are its
	// working set; two more copies must not add to it.
	settle := func() int {
		time.Sleep(300 * time.Millisecond) // the kernel releases files asynchronously
		return fileFDs(t, m.cmd.Process.Pid)
	}
	fdsBefore := settle()
	copyOut(2)
	copyOut(3)
	if after := settle(); after > fdsBefore {
		t.Errorf("daemon holds %d file descriptors after two more copies, %d before: a leak\n%s", after, fdsBefore, fdTargets(m.cmd.Process.Pid))
	}
	for _, l := range labels {
		assertSameTree(t, filepath.Join(src, l), filepath.Join(out, l))
		if rsync, err := exec.LookPath("rsync"); err == nil {
			r := runCmd(t, os.Environ(), rsync, "-aHX", "--checksum", "--dry-run", "--itemize-changes",
				filepath.Join(src, l)+"/", filepath.Join(out, l)+"/")
			if r.code != 0 || strings.TrimSpace(r.stdout) != "" {
				t.Errorf("rsync -aHX --checksum sees differences in %s after cp -a:\n%s", l, r)
			}
		} else {
			t.Log("rsync not installed; skipping the rsync comparison")
		}
	}

	// The hole stays a hole through the mount (SEEK_DATA/SEEK_HOLE) and cp.
	for _, p := range []string{filepath.Join(out, "configs", "sparse.img"), filepath.Join(mp, "latest", "configs", "sparse.img")} {
		b, err := lmeta(t, p)
		if err != nil {
			t.Fatal(err)
		}
		if b.size != 256<<20 || b.blocks*512 > 8<<20 {
			t.Errorf("%s: %d bytes, %d KiB allocated: holes were filled", p, b.size, b.blocks/2)
		}
	}
	sparse2 := filepath.Join(out, "sparse-auto.img")
	if r := runCmd(t, os.Environ(), "cp", "--sparse=auto", filepath.Join(mp, "latest/configs/sparse.img"), sparse2); r.code != 0 {
		t.Fatal(r)
	}
	if b, _ := lmeta(t, sparse2); b.blocks*512 > 8<<20 {
		t.Errorf("cp --sparse=auto filled holes: %d KiB", b.blocks/2)
	}

	// A model server can mmap weights straight from the mount.
	model := largestFile(t, filepath.Join(src, "models"))
	rel, _ := filepath.Rel(filepath.Join(src, "models"), model)
	want, _ := os.ReadFile(model)
	f, err := os.Open(filepath.Join(mp, "latest", "models", rel))
	if err != nil {
		t.Fatal(err)
	}
	mm, err := unix.Mmap(int(f.Fd()), 0, len(want), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatalf("mmap: %v", err)
	}
	if !bytes.Equal(mm, want) {
		t.Error("mmap of a model file differs from the source")
	}
	unix.Munmap(mm)
	f.Close()

	// The same snapshot under snapshots/<time>/ and the day folder.
	snaps, _ := os.ReadDir(filepath.Join(mp, "snapshots"))
	if len(snaps) != 1 {
		t.Fatalf("snapshots/: %d entries", len(snaps))
	}
	diffTrees(t, filepath.Join(src, "configs"), filepath.Join(mp, "snapshots", snaps[0].Name(), "configs"))
	diffTrees(t, filepath.Join(src, "logs"), filepath.Join(mp, today, "logs"))

	// Directories show the source's link count (stat -c %h), the source
	// root included; the adapter used to say 1 for every one.
	for _, l := range labels {
		var dirs []string
		filepath.WalkDir(filepath.Join(src, l), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				rel, _ := filepath.Rel(filepath.Join(src, l), p)
				dirs = append(dirs, rel)
			}
			return nil
		})
		statH := func(root string) []string {
			args := []string{"-c", "%h %n"}
			for _, d := range dirs {
				args = append(args, filepath.Join(root, d))
			}
			r := runCmd(t, os.Environ(), "stat", args...)
			if r.code != 0 {
				t.Fatalf("stat: %s", r)
			}
			return strings.Split(strings.ReplaceAll(r.stdout, root, "<"+l+">"), "\n")
		}
		want, got := statH(filepath.Join(src, l)), statH(filepath.Join(mp, "latest", l))
		if len(dirs) < 2 || strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("directory link counts (stat -c %%h) in the mount differ from the source:\n got %q\nwant %q", got, want)
		}
	}

	for _, name := range []string{"repo", "snapshots", "backup"} {
		data, err := os.ReadFile(filepath.Join(mp, "status", name))
		if err != nil || len(data) == 0 {
			t.Errorf("status/%s: %v (%d bytes)", name, err, len(data))
		}
	}

}

func fdTargets(pid int) string {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	var out []string
	for _, e := range ents {
		tg, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		out = append(out, e.Name()+" -> "+tg)
	}
	return strings.Join(out, "\n")
}

func largestFile(t *testing.T, dir string) string {
	t.Helper()
	var best string
	var size int64 = -1
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil && fi.Size() > size {
				best, size = p, fi.Size()
			}
		}
		return nil
	})
	if best == "" {
		t.Fatalf("no files under %s", dir)
	}
	return best
}

func TestMountPermissionsAndReadOnly(t *testing.T) {
	src, _, mp, _, _ := mountFixture(t)
	setpriv := testutil.Setpriv(t)
	nobody := func(args ...string) result {
		return runCmd(t, testEnv(), setpriv, testutil.AsNobody(args[0], args[1:]...)...)
	}
	secret := filepath.Join(mp, "latest", "configs", "citadel-ai.env")
	if fi, err := os.Stat(secret); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("citadel-ai.env through the mount: %v %v", fi, err)
	}
	// allow_other lets nobody in; default_permissions keeps the 0600 file
	// its owner's alone.
	if r := nobody("cat", filepath.Join(mp, "latest", "configs", "empty.conf")); r.code != 0 {
		t.Errorf("nobody cannot read a 0644 file with --allow-other: %s", r)
	}
	if r := nobody("cat", secret); r.code == 0 || !strings.Contains(r.stderr, "Permission denied") {
		t.Errorf("nobody read the 0600 file: %s", r)
	}
	if _, err := exec.LookPath("setfacl"); err == nil {
		if r := nobody("cat", filepath.Join(mp, "latest", "configs", "acl-granted.env")); r.code != 0 || r.stdout != "TOKEN=acl\n" {
			t.Errorf("nobody is denied a file its ACL grants: %s", r)
		}
	} else {
		t.Log("setfacl not installed (package acl); skipping the ACL check")
	}
	if data, err := os.ReadFile(secret); err != nil {
		t.Errorf("root cannot read its own 0600 file: %v", err)
	} else if want, _ := os.ReadFile(filepath.Join(src, "configs", "citadel-ai.env")); !bytes.Equal(data, want) {
		t.Error("0600 file content differs")
	}

	file := filepath.Join(mp, "latest", "configs", "empty.conf")
	for name, err := range map[string]error{
		"write":       os.WriteFile(file, []byte("x"), 0o644),
		"create":      os.WriteFile(filepath.Join(mp, "latest", "configs", "new"), nil, 0o644),
		"mkdir":       os.Mkdir(filepath.Join(mp, "latest", "x"), 0o755),
		"remove":      os.Remove(file),
		"rename":      os.Rename(file, file+".bak"),
		"chmod":       os.Chmod(file, 0o600),
		"chown":       os.Chown(file, 1, 1),
		"setxattr":    unix.Setxattr(file, "user.x", []byte("1"), 0),
		"symlink":     os.Symlink("x", filepath.Join(mp, "latest", "configs", "l")),
		"truncate":    os.Truncate(file, 0),
		"utimes":      os.Chtimes(file, time.Now(), time.Now()),
		"status file": os.WriteFile(filepath.Join(mp, "status", "repo"), []byte("x"), 0o644),
	} {
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s: %v, want EROFS (read-only file system)", name, err)
		}
	}
}

// A snapshot started while the daemon owns the repository is run by the
// daemon (progress and exit code reach the caller) and shows up in the
// mount at once.
func TestMountSnapshotWhileMounted(t *testing.T) {
	src, repo, mp, _, m := mountFixture(t)
	if err := os.WriteFile(filepath.Join(src, "configs", "added-while-mounted.yaml"), []byte("fresh: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The kernel caches what this walks (latest/configs, for a second).
	if _, err := os.ReadDir(filepath.Join(mp, "latest", "configs")); err != nil {
		t.Fatal(err)
	}
	s := takeSnapshot(t, repo, sourceFlags(src, "configs")...)
	// The daemon logs it before the exit code goes back, but its stderr
	// reaches m.stderr through a pipe, a moment later.
	waitFor(t, "the daemon's log of the snapshot it ran", func() bool { return strings.Contains(m.stderr.String(), "ran a command for a client") })
	// At once: the daemon has the kernel forget latest/configs before the
	// snapshot command returns.
	data, err := os.ReadFile(filepath.Join(mp, "latest", "configs", "added-while-mounted.yaml"))
	if string(data) != "fresh: true\n" {
		t.Fatalf("new snapshot %s not under latest/ when the command returned: %v", s.ID, err)
	}
	if snaps, _ := os.ReadDir(filepath.Join(mp, "snapshots")); len(snaps) != 2 {
		t.Errorf("snapshots/ has %d entries, want 2", len(snaps))
	}
	// Forgetting it puts latest/configs back on the first snapshot, also
	// at once, and its folder under snapshots/ goes.
	mustCitadel(t, "forget", "--repo", repo, s.ID)
	if _, err := os.Stat(filepath.Join(mp, "latest", "configs", "added-while-mounted.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("latest/configs still shows the forgotten snapshot: %v", err)
	}
	if snaps, _ := os.ReadDir(filepath.Join(mp, "snapshots")); len(snaps) != 1 {
		t.Errorf("snapshots/ has %d entries after forget, want 1", len(snaps))
	}
	// latest/models still comes from the first snapshot.
	if _, err := os.Stat(filepath.Join(mp, "latest", "models")); err != nil {
		t.Error(err)
	}

	// Two at once: both complete, or one says clearly why not; either
	// way each client gets its own result and the repository checks.
	var wg sync.WaitGroup
	res := make([]result, 2)
	for i := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = citadel(t, append([]string{"snapshot", "--repo", repo}, sourceFlags(src, "logs")...)...)
		}()
	}
	wg.Wait()
	for i, r := range res {
		if r.code != 0 && !oneLine(r.stderr) {
			t.Errorf("concurrent snapshot %d: %s", i, r)
		}
		if r.code == 0 && !strings.Contains(r.stdout, "saved") {
			t.Errorf("concurrent snapshot %d printed no summary: %s", i, r)
		}
	}
	mustCitadel(t, "check", "--repo", repo)
	// Relative paths are the client's: run from src with a relative source.
	r := runCmdIn(t, src, citadelBin, "snapshot", "--repo", repo, "--json", "--source", "configs=configs")
	if r.code != 0 {
		t.Errorf("snapshot with a relative source path through the daemon: %s", r)
	}
}

// runCmdIn runs a command in dir.
func runCmdIn(t *testing.T, dir, name string, args ...string) result {
	t.Helper()
	c := exec.Command(name, args...)
	c.Dir, c.Env = dir, testEnv()
	var o, e bytes.Buffer
	c.Stdout, c.Stderr = &o, &e
	err := c.Run()
	r := result{stdout: o.String(), stderr: e.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// kill -9 leaves a dead mount (ENOTCONN) and a stale socket; the next
// start clears both, and SIGTERM then unmounts and exits 0.
func TestMountKill9ThenRestartThenSIGTERM(t *testing.T) {
	_, repo, mp, config, m := mountFixture(t)
	m.cmd.Process.Kill()
	<-m.exited
	// statfs always reaches the (dead) file system; a stat might be
	// answered from the kernel's attribute cache.
	var sfs unix.Statfs_t
	if err := unix.Statfs(mp, &sfs); !errors.Is(err, unix.ENOTCONN) {
		t.Errorf("after kill -9, statfs of the mountpoint: %v, want ENOTCONN", err)
	}
	// Commands work without the daemon: the stale socket is refused and
	// the repository opened directly. The socket stays for the next
	// daemon to replace under the repository's lock (a client removing
	// it could remove a new daemon's).
	if snaps := listSnapshots(t, repo); len(snaps) != 1 {
		t.Errorf("%d snapshots after kill -9", len(snaps))
	}

	m2 := startMount(t, repo, mp, config)
	if !strings.Contains(m2.stderr.String(), "stale mount") {
		t.Logf("restart log:\n%s", m2.stderr)
	}
	if _, err := os.ReadDir(filepath.Join(mp, "latest", "models")); err != nil {
		t.Fatalf("mountpoint not recovered: %v", err)
	}
	fi, err := os.Stat(filepath.Join(repo, "daemon.sock"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket: %v %v", fi, err)
	}

	m2.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m2.exited:
	case <-time.After(15 * time.Second):
		t.Fatalf("no exit 15s after SIGTERM\n%s", m2.stderr)
	}
	if m2.err != nil {
		t.Errorf("exit after SIGTERM: %v, want 0\n%s", m2.err, m2.stderr)
	}
	if isMounted(mp) {
		t.Error("still mounted after SIGTERM")
	}
	if !strings.Contains(m2.notify.String(), "STOPPING=1") {
		t.Errorf("no STOPPING=1 on $NOTIFY_SOCKET at SIGTERM (got %q)", m2.notify.String())
	}
	if _, err := os.Lstat(filepath.Join(repo, "daemon.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Error("socket left after SIGTERM")
	}
	// And the repository is free again.
	mustCitadel(t, "check", "--repo", repo)
}

func TestMountRefusesMountpointInRepository(t *testing.T) {
	needMount(t)
	dir := t.TempDir()
	repo := initRepo(t, dir)
	for _, mp := range []string{filepath.Join(repo, "mnt"), repo, dir} {
		r := citadel(t, "mount", "--repo", repo, "--config", monitorConfig(t, dir), mp)
		if r.code != 2 || !oneLine(r.stderr) || !strings.Contains(r.stderr, "overlap") {
			t.Errorf("mount at %s: %s", mp, r)
		}
		if isMounted(mp) {
			unix.Unmount(mp, unix.MNT_DETACH)
			t.Fatalf("mounted at %s", mp)
		}
	}
}

// The test process's own descriptors must not leak into the mount: a
// forgotten open file would keep the kernel from unmounting.
func TestMountNoLeakedTestFDs(t *testing.T) {
	_, _, mp, _, _ := mountFixture(t)
	before := openFDs(t, os.Getpid())
	for range 20 {
		f, err := os.Open(filepath.Join(mp, "latest", "configs", "empty.conf"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, f)
		f.Close()
	}
	if after := openFDs(t, os.Getpid()); after != before {
		t.Errorf("test process has %d descriptors, %d before", after, before)
	}
}

// SIGTERM while a process holds a file open in the mount: the daemon
// detaches the mountpoint, gives the process a moment, then cuts the FUSE
// connection before it closes the repository. It exits 0 promptly, the
// mountpoint is free, and the process's next read fails with ENOTCONN
// instead of reaching a closed repository.
func TestMountSIGTERMWhileBusy(t *testing.T) {
	src, _, mp, _, m := mountFixture(t)
	var big string
	filepath.WalkDir(filepath.Join(mp, "latest", "models"), func(p string, d iofs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && big == "" && strings.HasSuffix(p, ".safetensors") {
			big = p
		}
		return nil
	})
	if big == "" {
		t.Fatal("no model file in the mount")
	}
	f, err := os.Open(big)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Read(make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("daemon still running 30s after SIGTERM with a busy mount\n%s", m.stderr)
	}
	if m.err != nil {
		t.Fatalf("daemon exit after SIGTERM with a busy mount: %v\n%s", m.err, m.stderr)
	}
	t.Logf("stopped in %s", time.Since(start).Round(100*time.Millisecond))
	if !strings.Contains(m.stderr.String(), "aborting its connection") {
		t.Errorf("daemon log does not say it cut the connection:\n%s", m.stderr)
	}
	// The tail, far from what was read: not in the kernel's cache.
	fi, err := f.Stat()
	if err != nil && !errors.Is(err, syscall.ENOTCONN) {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(filepath.Join(mp, "latest"), big)
	want, err := os.ReadFile(filepath.Join(src, rel))
	if err != nil {
		t.Fatal(err)
	}
	off := int64(len(want)) - 4096
	got := make([]byte, 4096)
	n, err := f.ReadAt(got, off)
	switch {
	case errors.Is(err, syscall.ENOTCONN):
	case err == nil && bytes.Equal(got[:n], want[off:]):
		t.Logf("the tail came from the kernel's cache (%v)", fi)
	default:
		t.Errorf("read from a file held open across the daemon's stop: %d bytes, %v; want ENOTCONN", n, err)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(mp, &sfs); err != nil || sfs.Type == 0x65735546 { // FUSE_SUPER_MAGIC
		t.Errorf("mountpoint after stop: statfs type %#x, %v; want the plain directory", sfs.Type, err)
	}
}
