package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"citadelfs/internal/testutil"
)

// packFiles counts committed packs and left-over .partial pack files.
func packFiles(t *testing.T, repo string) (committed, partial int) {
	t.Helper()
	c, _ := filepath.Glob(filepath.Join(repo, "packs", "*", "*.pack"))
	p, _ := filepath.Glob(filepath.Join(repo, "packs", "*.partial"))
	p2, _ := filepath.Glob(filepath.Join(repo, "packs", "*", "*.partial"))
	return len(c), len(p) + len(p2)
}

// killPoint says when to kill a running snapshot: wait blocks until the
// moment (it polls the repository) and returns false if it gave up.
type killPoint struct {
	name string
	sig  syscall.Signal
	wait func(t *testing.T, repo string, basePacks int, exited <-chan struct{}) bool
}

// poll calls cond every millisecond until it is true (true), the process
// exits or 30 s pass (false).
func poll(exited <-chan struct{}, cond func() bool) bool {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		select {
		case <-exited:
			return false
		case <-time.After(time.Millisecond):
		}
	}
	return false
}

func afterDelay(d time.Duration) func(*testing.T, string, int, <-chan struct{}) bool {
	return func(t *testing.T, repo string, base int, exited <-chan struct{}) bool {
		select {
		case <-exited:
			return false
		case <-time.After(d):
			return true
		}
	}
}

func whenPacks(n int, then time.Duration) func(*testing.T, string, int, <-chan struct{}) bool {
	return func(t *testing.T, repo string, base int, exited <-chan struct{}) bool {
		ok := poll(exited, func() bool { c, _ := packFiles(t, repo); return c >= base+n })
		if ok && then > 0 {
			return afterDelay(then)(t, repo, base, exited)
		}
		return ok
	}
}

func whenPartial(t *testing.T, repo string, base int, exited <-chan struct{}) bool {
	return poll(exited, func() bool { _, p := packFiles(t, repo); return p > 0 })
}

// TestCrashKill9 kills a real snapshot at several points of its life
// (walking, writing the first pack, just as a pack is renamed into place,
// a little later, when the second pack lands) and checks the crash-safety
// contract each time: no visible partial snapshot, check --read-data
// clean, no .partial left once the repository is opened again, and the
// next snapshot completes and reuses the packs that were indexed.
func TestCrashKill9(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	// ~150 MiB read, ~100 MiB stored: three 32 MiB packs and a tail, about
	// a second of work here, so every kill point lands mid-snapshot.
	corpus(t, "-out", src, "-models-mb", "160", "-logs-mb", "2", "-configs", "200")
	full := takeSnapshot(t, initRepo(t, filepath.Join(dir, "reference")), sourceFlags(src)...)
	const packSize = 32 << 20

	// A second snapshot while one runs is refused at once (exit 11) and
	// says who holds the repository; the running one is not disturbed.
	t.Run("second snapshot while one runs", func(t *testing.T) {
		repo := initRepo(t, filepath.Join(dir, "locked"))
		cmd := exec.Command(citadelBin, append([]string{"snapshot", "--repo", repo}, sourceFlags(src)...)...)
		cmd.Env = testEnv()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		if !whenPartial(t, repo, 0, exited) {
			t.Fatalf("the first snapshot ended before writing a pack: %s %s", cmd.ProcessState, stderr.String())
		}
		r := citadel(t, append([]string{"snapshot", "--repo", repo}, sourceFlags(src, "logs")...)...)
		<-exited
		assertOneLineError(t, r, 11, "lock", fmt.Sprintf("pid %d", cmd.Process.Pid))
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("the first snapshot failed (exit %d) after a second one was refused: %s", code, stderr.String())
		}
		if n := len(listSnapshots(t, repo)); n != 1 {
			t.Fatalf("%d snapshots, want the first one only", n)
		}
	})

	points := []killPoint{
		{"kill after 20ms", syscall.SIGKILL, afterDelay(20 * time.Millisecond)},
		{"kill while the first pack is written", syscall.SIGKILL, whenPartial},
		{"kill as the first pack is renamed into place", syscall.SIGKILL, whenPacks(1, 0)},
		{"kill 100ms after the first pack", syscall.SIGKILL, whenPacks(1, 100*time.Millisecond)},
		{"kill as the second pack lands", syscall.SIGKILL, whenPacks(2, 0)},
		{"SIGTERM after the first pack", syscall.SIGTERM, whenPacks(1, 50*time.Millisecond)},
	}
	ran, exercised := 0, 0
	var lastRepo string
	for i, kp := range points {
		t.Run(kp.name, func(t *testing.T) {
			ran++
			repo := initRepo(t, filepath.Join(dir, "p"+string(rune('a'+i))))
			lastRepo = repo
			base := takeSnapshot(t, repo, "--source", "logs="+filepath.Join(src, "logs"))
			basePacks, _ := packFiles(t, repo)

			cmd := exec.Command(citadelBin, append([]string{"snapshot", "--repo", repo, "--json"}, sourceFlags(src)...)...)
			cmd.Env = testEnv()
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			start := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { cmd.Wait(); close(exited) }()

			hit := kp.wait(t, repo, basePacks, exited)
			killedAt := time.Now()
			if hit {
				cmd.Process.Signal(kp.sig)
			}
			<-exited
			if !hit {
				t.Logf("snapshot finished (%s) before the kill point; not exercised", cmd.ProcessState)
				return
			}
			committed, partial := packFiles(t, repo)
			t.Logf("signalled after %s: %s; %d new packs committed, %d partial; stderr %q",
				killedAt.Sub(start).Round(time.Millisecond), cmd.ProcessState, committed-basePacks, partial, stderr.String())
			if kp.sig == syscall.SIGKILL {
				if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() {
					t.Logf("snapshot exited (%s) before SIGKILL landed; not exercised", cmd.ProcessState)
					return
				}
			} else {
				// SIGTERM: a clean, documented stop that commits nothing.
				if code := cmd.ProcessState.ExitCode(); code == 0 {
					t.Logf("snapshot finished before SIGTERM; not exercised")
					return
				} else if code != 130 {
					t.Errorf("SIGTERM: exit %d, want 130 (interrupted)\n%s", code, stderr.String())
				}
				if !oneLine(stderr.String()) {
					t.Errorf("SIGTERM: want one line on stderr, got %q", stderr.String())
				}
			}
			exercised++

			snaps := listSnapshots(t, repo)
			if len(snaps) != 1 || snaps[0].ID != base.ID {
				t.Fatalf("after the kill, snapshots lists %v; want only the base snapshot %s", snaps, base.ID)
			}
			if _, p := packFiles(t, repo); p != 0 {
				t.Errorf("%d .partial pack files left after the repository was opened again", p)
			}
			if r := citadel(t, "check", "--repo", repo, "--read-data"); r.code != 0 {
				t.Fatalf("check --read-data after the kill: %s", r)
			}
			next := takeSnapshot(t, repo, sourceFlags(src)...)
			t.Logf("next snapshot: new %d bytes; from scratch %d", next.NewBytes, full.NewBytes)
			if next.NewBytes > full.NewBytes {
				t.Errorf("next snapshot stored %d new bytes, more than a from-scratch snapshot's %d", next.NewBytes, full.NewBytes)
			}
			// A pack becomes reusable when its index batch commits, a few ms
			// (under I/O load, sometimes over 100 ms) after it is renamed into
			// place; that moment is not visible from outside. But packs are
			// finished in order, so when pack n is on disk, packs 1..n-1 are
			// indexed, each 32 MiB of compressed chunks (more in plain bytes)
			// that must not be stored again.
			if indexed := committed - basePacks - 1; indexed > 0 && next.NewBytes > full.NewBytes-int64(indexed)*packSize {
				t.Errorf("%d packs were on disk at the kill, so at least %d indexed, yet the next snapshot stored %d new bytes of %d",
					committed-basePacks, indexed, next.NewBytes, full.NewBytes)
			}
			if r := citadel(t, "check", "--repo", repo); r.code != 0 {
				t.Fatalf("check after the next snapshot: %s", r)
			}
		})
	}
	if ran == 0 {
		return // filtered out by -run
	}
	if ran == len(points) && exercised < 4 {
		t.Fatalf("only %d of %d kill points landed while the snapshot ran; the test proves too little", exercised, len(points))
	}
	// The snapshot that followed the crashes is whole.
	out := restore(t, lastRepo, "latest")
	for _, l := range labels {
		diffTrees(t, filepath.Join(src, l), filepath.Join(out, l))
	}
}

// TestFullDisk puts the repository on a 16 MiB tmpfs and snapshots more
// than fits: the snapshot must fail with one line saying the disk is full,
// and the repository must stay consistent and usable.
func TestFullDisk(t *testing.T) {
	testutil.NeedRoot(t, "to mount a tmpfs")
	dir := t.TempDir()
	mnt := filepath.Join(dir, "tmpfs")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() {
		for i := 0; i < 50; i++ {
			if exec.Command("umount", mnt).Run() == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("could not unmount %s", mnt)
	})
	src := filepath.Join(dir, "src")
	// ~40 MiB stored for the models alone: far more than the tmpfs holds.
	corpus(t, "-out", src, "-models-mb", "32", "-logs-mb", "2", "-configs", "200")
	repo := initRepo(t, mnt)
	first := takeSnapshot(t, repo, sourceFlags(src, "configs")...)

	r := citadel(t, append([]string{"snapshot", "--repo", repo}, sourceFlags(src)...)...)
	if r.code == 0 || r.code == 3 {
		t.Fatalf("snapshot onto a full disk: exit %d, want a failure\n%s", r.code, r)
	}
	if !oneLine(r.stderr) || !strings.Contains(strings.ToLower(r.stderr), "no space") || strings.Contains(r.stderr, "panic") {
		t.Errorf("full disk: want one line on stderr that says there is no space, got %q", r.stderr)
	}
	if snaps := listSnapshots(t, repo); len(snaps) != 1 || snaps[0].ID != first.ID {
		t.Fatalf("after the failed snapshot, snapshots lists %v; want only %s", snaps, first.ID)
	}
	if _, p := packFiles(t, repo); p != 0 {
		t.Errorf("%d .partial packs left on the full disk", p)
	}
	if r := citadel(t, "check", "--repo", repo, "--read-data"); r.code != 0 {
		t.Fatalf("check after the full-disk failure: %s", r)
	}
	out := restore(t, repo, first.ID)
	assertSameTree(t, filepath.Join(src, "configs"), filepath.Join(out, "configs"))
	// Still usable: a snapshot that fits succeeds.
	if again := takeSnapshot(t, repo, sourceFlags(src, "configs")...); again.NewBytes != 0 {
		t.Errorf("unchanged configs stored %d new bytes", again.NewBytes)
	}
}

// TestCorruptPack flips one byte in the middle of the largest pack: check
// --read-data must name the damage and what it affects, and restore must
// fail with exit 4 and never write a file with wrong bytes.
func TestCorruptPack(t *testing.T) {
	dir := t.TempDir()
	src := smallCorpus(t, dir)
	repo := initRepo(t, dir)
	snap := takeSnapshot(t, repo, sourceFlags(src)...)
	mustCitadel(t, "check", "--repo", repo, "--read-data")

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
	if st := repoStatus(t, repo); st.corrupt != nil || st.lastCheck == nil || st.lastCheck.Result != "ok" || !st.lastCheck.ReadData {
		t.Fatalf("after a passing check: backup_corrupt %+v, last_check %+v", st.corrupt, st.lastCheck)
	}
	orig, err := os.ReadFile(largest)
	if err != nil {
		t.Fatal(err)
	}
	flipByte(t, largest, size/2)

	r := citadel(t, "check", "--repo", repo, "--read-data")
	if r.code != 4 {
		t.Fatalf("check --read-data on a flipped byte: exit %d, want 4\n%s", r.code, r)
	}
	// The check's finding is recorded in the repository: the monitor run
	// on its own raises backup_corrupt, naming the first error.
	st := repoStatus(t, repo)
	firstErr := regexp.MustCompile(`(?m)^error: (.*)$`).FindStringSubmatch(r.stdout)
	if st.corrupt == nil || st.corrupt.State != "firing" || firstErr == nil || !strings.Contains(st.corrupt.Message, firstErr[1]) {
		t.Fatalf("after a failing check: backup_corrupt %+v, want firing with %q\n%s", st.corrupt, firstErr, r)
	}
	if lc := st.lastCheck; lc == nil || lc.Result != "errors" || lc.Errors < 1 || lc.FirstError != firstErr[1] || !lc.ReadData {
		t.Fatalf("last_check after a failing check: %+v", lc)
	}
	// It says which snapshot and which files are affected.
	affected := regexp.MustCompile(`(models|configs|logs)/[^\s(]+`).FindAllString(r.stdout, -1)
	if !strings.Contains(r.stdout, snap.ID[:8]) || len(affected) == 0 {
		t.Fatalf("check names no affected snapshot %s or file:\n%s", snap.ID[:8], r)
	}
	for _, a := range affected {
		if _, err := os.Lstat(filepath.Join(src, a)); err != nil {
			t.Errorf("check reports %q affected, which is not a file of the source: %v", a, err)
		}
	}

	out := filepath.Join(t.TempDir(), "restore")
	r = citadel(t, "restore", "--repo", repo, "latest", out)
	if r.code != 4 {
		t.Fatalf("restore over a corrupt chunk: exit %d, want 4\n%s", r.code, r)
	}
	if strings.Contains(r.stderr, "panic") {
		t.Fatalf("restore panicked:\n%s", r.stderr)
	}
	// Whatever was written is right; the damaged files are absent.
	nfiles := assertPresentFilesMatch(t, src, out)
	for _, a := range affected {
		if _, err := os.Lstat(filepath.Join(out, a)); err == nil {
			t.Errorf("%s was restored although its data is corrupt", a)
		}
	}
	if nfiles < 200 {
		t.Errorf("only %d files restored; the undamaged files should all be there", nfiles)
	}
	// The damaged file on its own: exit 4 and no file, or at least no
	// wrong bytes.
	one := filepath.Join(t.TempDir(), "one")
	r = citadel(t, "restore", "--repo", repo, "latest:"+affected[0], one)
	if r.code != 4 {
		t.Errorf("restore of the damaged file alone: exit %d, want 4\n%s", r.code, r)
	}
	if _, err := os.Stat(filepath.Join(one, filepath.Base(affected[0]))); err == nil {
		t.Errorf("restore of the damaged file alone left %s", filepath.Join(one, filepath.Base(affected[0])))
	}

	// Repaired: the next check passes and the alert is gone.
	if err := os.WriteFile(largest, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	mustCitadel(t, "check", "--repo", repo, "--read-data", "--subset", "100%")
	if st := repoStatus(t, repo); st.corrupt != nil || st.lastCheck == nil || st.lastCheck.Result != "ok" || st.lastCheck.Errors != 0 {
		t.Fatalf("after repair and a passing check: backup_corrupt %+v, last_check %+v", st.corrupt, st.lastCheck)
	}
}

// repoState is what `monitor --once --json`, run outside any daemon, says
// about the repository's integrity.
type repoState struct {
	corrupt   *alertJSON
	lastCheck *struct {
		Result     string `json:"result"`
		Errors     int    `json:"errors"`
		FirstError string `json:"first_error"`
		ReadData   bool   `json:"read_data"`
	}
}

type alertJSON struct {
	Rule    string `json:"rule"`
	Subject string `json:"subject"`
	State   string `json:"state"`
	Message string `json:"message"`
}

func repoStatus(t *testing.T, repo string) repoState {
	t.Helper()
	r := citadel(t, "monitor", "--once", "--json", "--repo", repo)
	var doc struct {
		Alerts []alertJSON `json:"alerts"`
		Backup struct {
			LastCheck json.RawMessage `json:"last_check"`
		} `json:"backup"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("monitor --once --json: %v\n%s", err, r)
	}
	var st repoState
	for i, a := range doc.Alerts {
		if a.Rule == "backup_corrupt" {
			st.corrupt = &doc.Alerts[i]
		}
	}
	if len(doc.Backup.LastCheck) > 0 && string(doc.Backup.LastCheck) != "null" {
		if err := json.Unmarshal(doc.Backup.LastCheck, &st.lastCheck); err != nil {
			t.Fatalf("backup.last_check: %v\n%s", err, r)
		}
	}
	return st
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// assertPresentFilesMatch walks a whole-snapshot restore (target/<label>/...)
// and fails for any regular file whose bytes differ from the source's. It
// returns how many files it compared.
func assertPresentFilesMatch(t *testing.T, src, out string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(out, p)
		got, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		want, err := os.ReadFile(filepath.Join(src, rel))
		if err != nil {
			t.Errorf("restore made %s, which the source does not have", rel)
			return nil
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: restored with wrong bytes", rel)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
