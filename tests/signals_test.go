package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"citadelfs/internal/testutil"
)

// running is a citadelfs process a test signals.
type running struct {
	cmd    *exec.Cmd
	stderr *testutil.SyncBuffer
	stdout *testutil.SyncBuffer
	exited chan struct{}
}

func startCitadel(t *testing.T, env []string, args ...string) *running {
	t.Helper()
	return startCmd(t, env, exec.Command(citadelBin, args...))
}

// startCitadelNiced is startCitadel at nice 19 (nice(1) execs the binary
// under the same pid): the test's own poller (waitOpen) then wins the CPU
// from it on a loaded 2-core machine, so "it has opened a pack" is seen
// while the work goes on, not after a short command (prune) has passed
// its last cancellation point.
func startCitadelNiced(t *testing.T, env []string, args ...string) *running {
	t.Helper()
	return startCmd(t, env, exec.Command("nice", append([]string{"-n", "19", citadelBin}, args...)...))
}

func startCmd(t *testing.T, env []string, cmd *exec.Cmd) *running {
	t.Helper()
	p := &running{cmd: cmd, stderr: &testutil.SyncBuffer{}, stdout: &testutil.SyncBuffer{}, exited: make(chan struct{})}
	p.cmd.Env = append(testEnv(), env...)
	p.cmd.Stderr, p.cmd.Stdout = p.stderr, p.stdout
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Signal(syscall.SIGCONT)
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// waitOpen polls until the process has a file open whose path contains
// sub (it is reading packs, a source, writing a target: mid-work), and
// reports whether it did before it exited or 20 s passed.
func (p *running) waitOpen(sub string) bool {
	deadline := time.Now().Add(20 * time.Second)
	fdDir := fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return false
		default:
		}
		ents, _ := os.ReadDir(fdDir)
		for _, e := range ents {
			if l, err := os.Readlink(filepath.Join(fdDir, e.Name())); err == nil && strings.Contains(l, sub) {
				return true
			}
		}
		time.Sleep(500 * time.Microsecond)
	}
	return false
}

// interrupt freezes the process where it is (SIGSTOP), queues sig, lets
// it run again and returns how long it took to exit, and its exit code.
// Freezing first makes the signal land mid-work however fast the machine.
func (p *running) interrupt(t *testing.T, sig syscall.Signal, limit time.Duration) (time.Duration, int) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGSTOP)
	p.cmd.Process.Signal(sig)
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGCONT)
	select {
	case <-p.exited:
	case <-time.After(limit + 10*time.Second):
		t.Fatalf("%v: still running %s after %v\nstderr: %s", p.cmd.Args[1:], limit+10*time.Second, sig, p.stderr)
	}
	return time.Since(start), p.cmd.ProcessState.ExitCode()
}

// TestSignalsStopEveryCommand drives each long command, signals it with
// SIGTERM and with SIGINT in the middle of its work, and checks that it
// exits 130 (the mount, monitor and status --watch, which run until
// stopped, exit 0) within the bound with one line, and that the
// repository is whole afterwards: check passes and the command runs again
// to the end.
func TestSignalsStopEveryCommand(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	// Many packs and files, so every command has work to be stopped in.
	writeRandomTree(t, filepath.Join(src, "a"), 1, 48)
	writeRandomTree(t, filepath.Join(src, "b"), 2, 48)
	repo := initRepo(t, dir)
	takeSnapshot(t, repo, "--source", "data="+src)
	// Half the data changes: forgetting the first snapshot leaves
	// packs for prune to delete and rewrite.
	os.RemoveAll(filepath.Join(src, "b"))
	writeRandomTree(t, filepath.Join(src, "b"), 3, 48)
	takeSnapshot(t, repo, "--source", "data="+src)
	stateEnv := []string{"CITADELFS_STATE_DIR=" + filepath.Join(dir, "state")}
	cfg := monitorConfig(t, dir)

	const bound = 5*time.Second + 2*time.Second // stopGrace and slack for a loaded machine
	type tc struct {
		name string
		args func(i int) []string
		// busy is what the process opens once it is mid-work ("" for a
		// loop: it is signalled after a short wait).
		busy string
		want int
		// after checks the command's own outcome, beyond a clean repository.
		after func(t *testing.T, i int)
	}
	restoreDir := func(i int) string { return filepath.Join(dir, fmt.Sprintf("restore%d", i)) }
	forgotten := false
	cases := []tc{
		{name: "snapshot", busy: src, want: 130,
			args: func(int) []string {
				return []string{"snapshot", "--repo", repo, "--read-all", "--source", "data=" + src}
			},
			after: func(t *testing.T, _ int) {
				if n := len(listSnapshots(t, repo)); n != 2 {
					t.Fatalf("%d snapshots after an interrupted snapshot, want 2", n)
				}
			}},
		{name: "restore", busy: "/packs/", want: 130,
			args: func(i int) []string { return []string{"restore", "--repo", repo, "latest", restoreDir(i)} }},
		{name: "check --read-data", busy: "/packs/", want: 130,
			args: func(int) []string { return []string{"check", "--repo", repo, "--read-data"} }},
		{name: "repair index", busy: "/packs/", want: 130,
			args: func(int) []string { return []string{"repair", "index", "--repo", repo} }},
		{name: "prune", busy: "/packs/", want: 130,
			args: func(int) []string {
				if !forgotten {
					mustCitadel(t, "forget", "--repo", repo, "--keep-last", "1")
					forgotten = true
				}
				return []string{"prune", "--repo", repo}
			}},
		{name: "forget --prune", busy: "/packs/", want: 130,
			args: func(int) []string { return []string{"forget", "--repo", repo, "--keep-last", "1", "--prune"} }},
		{name: "monitor", want: 0,
			args: func(int) []string { return []string{"monitor", "--repo", repo, "--config", cfg} }},
		{name: "status --watch", want: 0,
			args: func(int) []string {
				return []string{"status", "--repo", repo, "--config", cfg, "--watch", "--interval", "500ms"}
			}},
	}
	for _, c := range cases {
		for i, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
			t.Run(c.name+" "+sigLabel(sig), func(t *testing.T) {
				p := startCitadelNiced(t, stateEnv, c.args(i)...)
				if c.busy == "" {
					select {
					case <-p.exited:
						t.Fatalf("%s ended by itself (exit %d) before it was signalled\n%s", c.name, p.cmd.ProcessState.ExitCode(), p.stderr)
					case <-time.After(700 * time.Millisecond):
					}
				} else if !p.waitOpen(c.busy) {
					<-p.exited
					t.Fatalf("%s ended (exit %d) before it opened %s: the test proves nothing\n%s", c.name, p.cmd.ProcessState.ExitCode(), c.busy, p.stderr)
				}
				took, code := p.interrupt(t, sig, bound)
				if code != c.want || took > bound {
					t.Fatalf("%s after %s: exit %d in %s, want %d within %s\nstderr: %s", c.name, sigLabel(sig), code, took.Round(time.Millisecond), c.want, bound, p.stderr)
				}
				if c.want == 130 && !oneLine(p.stderr.String()) {
					t.Errorf("%s after %s: want one line on stderr, got %q", c.name, sigLabel(sig), p.stderr)
				}
				t.Logf("%s: exit %d %s after %s", c.name, code, took.Round(time.Millisecond), sigLabel(sig))
				if r := citadel(t, "check", "--repo", repo); r.code != 0 {
					t.Fatalf("check after an interrupted %s: %s", c.name, r)
				}
				if c.after != nil {
					c.after(t, i)
				}
			})
		}
	}
	// Everything interrupted runs to the end now, and all data reads.
	mustCitadel(t, "snapshot", "--repo", repo, "--read-all", "--source", "data="+src)
	mustCitadel(t, "forget", "--repo", repo, "--keep-last", "1", "--prune")
	mustCitadel(t, "check", "--repo", repo, "--read-data")
	diffTrees(t, src, filepath.Join(restore(t, repo, "latest"), "data"))
}

func sigLabel(sig syscall.Signal) string {
	if sig == syscall.SIGINT {
		return "SIGINT"
	}
	return "SIGTERM"
}

// TestSignalsRepairPacks interrupts `repair packs` while it salvages a
// damaged pack: exit 130 within the bound, and the next run does the
// whole repair.
func TestSignalsRepairPacks(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeRandomTree(t, src, 7, 64)
	repo := initRepo(t, dir)
	takeSnapshot(t, repo, "--source", "data="+src)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		// A fresh copy each time: an interrupted repair may still finish
		// the pack it was on (each pack's repair commits whole).
		r2 := filepath.Join(dir, "repo-"+sigLabel(sig))
		if out, err := exec.Command("cp", "-a", repo, r2).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
		pack, size := largestPack(t, r2)
		flip4(t, pack, size)
		if r := citadel(t, "check", "--repo", r2, "--read-data"); r.code != 4 {
			t.Fatalf("check --read-data of a damaged pack: %s", r)
		}
		p := startCitadel(t, nil, "repair", "packs", "--repo", r2)
		if !p.waitOpen(filepath.Base(pack)) {
			<-p.exited
			t.Fatalf("repair packs ended (exit %d) before it opened the damaged pack\n%s", p.cmd.ProcessState.ExitCode(), p.stderr)
		}
		took, code := p.interrupt(t, sig, 7*time.Second)
		if code != 130 || took > 7*time.Second || !oneLine(p.stderr.String()) {
			t.Fatalf("repair packs after %s: exit %d in %s, want 130 within 7s in one line\nstderr: %q", sigLabel(sig), code, took, p.stderr)
		}
		// The repair then runs to its end: the damaged pack is dropped
		// (exit 4 names the blob it could not save).
		if r := citadel(t, "repair", "packs", "--repo", r2); r.code != 0 && r.code != 4 || strings.Contains(r.stderr, "panic") {
			t.Fatalf("repair packs after the interrupted one: %s", r)
		}
		if _, err := os.Stat(pack); err == nil {
			t.Fatalf("the damaged pack is still there after the repair")
		}
	}
}

// TestSignalsMount stops a serving mount with SIGTERM and with SIGINT:
// unmounted and exited 0 well within its grace.
func TestSignalsMount(t *testing.T) {
	needMount(t)
	dir := t.TempDir()
	repo, _ := tinyRepo(t, nil)
	cfg := monitorConfig(t, dir)
	for i, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		mp := filepath.Join(dir, fmt.Sprintf("mnt%d", i))
		m := startMount(t, repo, mp, cfg)
		start := time.Now()
		m.cmd.Process.Signal(sig)
		select {
		case <-m.exited:
		case <-time.After(60 * time.Second):
			t.Fatalf("mount still running 60s after %s\n%s", sigLabel(sig), m.stderr)
		}
		if m.err != nil || time.Since(start) > 20*time.Second || isMounted(mp) {
			t.Fatalf("mount after %s: %v in %s, mounted %v\n%s", sigLabel(sig), m.err, time.Since(start), isMounted(mp), m.stderr)
		}
	}
	mustCitadel(t, "check", "--repo", repo)
}

// TestSignalsStalledSource interrupts a snapshot whose source read is
// stuck in the kernel: the source is a FUSE mount (citadelfs's own, of
// another repository) whose server is frozen. Cancelling cannot reach a
// read(2) that never returns; the grace's hard exit does: exit 130 in one
// line within the bound, and the repository is whole (its lock is an
// flock the kernel drops). It used to hang until the FUSE server woke.
func TestSignalsStalledSource(t *testing.T) {
	needMount(t)
	dir := t.TempDir()
	other := filepath.Join(dir, "other")
	writeRandomTree(t, filepath.Join(other, "src"), 11, 8)
	otherRepo := initRepo(t, other)
	takeSnapshot(t, otherRepo, "--source", "data="+filepath.Join(other, "src"))
	mp := filepath.Join(dir, "mnt")
	m := startMount(t, otherRepo, mp, monitorConfig(t, dir))
	src := filepath.Join(mp, "latest", "data")

	repo := initRepo(t, dir)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		// A fresh snapshot each time reads the files (none is in the
		// file-change cache: nothing was committed).
		p := startCitadel(t, nil, "snapshot", "--repo", repo, "--source", "data="+src)
		if !p.waitOpen(mp) {
			<-p.exited
			t.Fatalf("snapshot ended (exit %d) before it opened a file of the source\n%s", p.cmd.ProcessState.ExitCode(), p.stderr)
		}
		m.cmd.Process.Signal(syscall.SIGSTOP)
		time.Sleep(300 * time.Millisecond) // the reads now wait on the frozen server
		start := time.Now()
		p.cmd.Process.Signal(sig)
		// The hard exit is announced within the bound. (The process
		// may then still wait on the frozen server: closing a FUSE file
		// sends it a FLUSH that the kernel waits for, even in exit.)
		for !strings.Contains(p.stderr.String(), "interrupted") && time.Since(start) < 20*time.Second {
			time.Sleep(5 * time.Millisecond)
		}
		took := time.Since(start)
		m.cmd.Process.Signal(syscall.SIGCONT)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			t.Fatalf("snapshot of a stalled source still running 10s after the stall ended (%s)\n%s", sigLabel(sig), p.stderr)
		}
		code := p.cmd.ProcessState.ExitCode()
		if code != 130 || took > 7*time.Second || !oneLine(p.stderr.String()) {
			t.Fatalf("snapshot of a stalled source after %s: exit %d, stopped in %s, want 130 within 7s in one line\nstderr: %q", sigLabel(sig), code, took, p.stderr)
		}
		t.Logf("stalled snapshot: exit %d %s after %s: %s", code, took.Round(time.Millisecond), sigLabel(sig), strings.TrimSpace(p.stderr.String()))
		if n := len(listSnapshots(t, repo)); n != 0 {
			t.Fatalf("an interrupted snapshot committed: %d snapshots", n)
		}
		mustCitadel(t, "check", "--repo", repo)
	}
	// Whole: with the server running, the same snapshot completes and
	// checks clean.
	takeSnapshot(t, repo, "--source", "data="+src)
	mustCitadel(t, "check", "--repo", repo, "--read-data")
}
