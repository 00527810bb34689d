package tests

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"citadelfs/internal/testutil"
)

// loopExt4 mounts a fresh ext4 file system of sizeMiB on a loop device
// under dir and returns its mount point, or skips the test (not root, no
// loop devices, no mkfs.ext4).
func loopExt4(t *testing.T, dir string, sizeMiB int) string {
	t.Helper()
	testutil.NeedRoot(t, "to mount a loop device")
	img := filepath.Join(dir, "disk.img")
	mnt := filepath.Join(dir, "disk")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if f, err := os.Create(img); err != nil {
		t.Fatal(err)
	} else if err := f.Truncate(int64(sizeMiB) << 20); err != nil {
		t.Fatal(err)
	} else {
		f.Close()
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput(); err != nil {
		t.Skipf("mkfs.ext4 is not available here: %v %s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("loop devices are not available here (mount -o loop): %v %s", err, out)
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
	return mnt
}

// fillDisk takes every free block of the file system at mnt (root's
// reserved blocks too) with one file, as another program filling the disk
// would, and returns its path.
func fillDisk(t *testing.T, mnt string) string {
	t.Helper()
	path := filepath.Join(mnt, "filler")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for chunk := int64(1 << 30); chunk >= 4096; {
		fi, _ := f.Stat()
		if err := unix.Fallocate(int(f.Fd()), 0, fi.Size(), chunk); err != nil {
			chunk /= 2
		}
	}
	// The last few blocks fallocate's granularity left. (ext4 keeps
	// some clusters nobody can write, so statfs still counts them free.)
	for i := 0; ; i++ {
		err := os.WriteFile(filepath.Join(mnt, fmt.Sprintf("filler.%d", i)), make([]byte, 1024), 0o600)
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func emptyFiller(t *testing.T, mnt string) {
	t.Helper()
	fs, _ := filepath.Glob(filepath.Join(mnt, "filler*"))
	for _, f := range fs {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
}

// writeRandomTree writes mib MiB of incompressible files (4 KiB .. 1 MiB)
// under dir from a fast PRNG seeded with seed.
func writeRandomTree(t *testing.T, dir string, seed uint64, mib int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	buf := make([]byte, 1<<20)
	for i, left := 0, int64(mib)<<20; left > 0; i++ {
		n := min(int64(4096+r.IntN(1<<20-4096)), left)
		for j := 0; j+8 <= int(n); j += 8 {
			v := r.Uint64()
			buf[j], buf[j+1], buf[j+2], buf[j+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
			buf[j+4], buf[j+5], buf[j+6], buf[j+7] = byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d", i)), buf[:n], 0o644); err != nil {
			t.Fatal(err)
		}
		left -= n
	}
}

// TestFullDiskCampaign is the full-disk campaign of issue 14 on a real
// 200 MiB ext4: 20 rounds of snapshots that grow until they no longer fit,
// each followed by a disk filled to the last block by another program and
// `forget --keep-last 3 --prune` on it. That state (a snapshot's Pebble log
// still to replay, no free block) used to wedge the repository: every
// writer, prune included, failed at open with "running compaction during
// WAL replay: ... no space left on device". Now the reserve is given back
// and prune frees space; every failure is one line with exit 13, and the
// repository stays usable and checks clean.
func TestFullDiskCampaign(t *testing.T) {
	dir := t.TempDir()
	mnt := loopExt4(t, dir, 200)
	repo := filepath.Join(mnt, "repo")
	mustCitadel(t, "init", "--encryption", "none", "--repo", repo)
	if st := reserveState(t, repo); st.size <= 0 || !st.held {
		t.Fatalf("init made no held reserve: %+v", st)
	}
	src := filepath.Join(dir, "src")
	var failed, fitted, afterFail int
	lastFailed := false
	for round := 1; round <= 20; round++ {
		// The source is the last three rounds' directories; each round's
		// is bigger than the last, and at round 11 the source starts
		// small again, so the campaign both overflows the disk and comes
		// back.
		mib := 6 + 6*((round-1)%10)
		if round == 11 {
			os.RemoveAll(src)
		}
		writeRandomTree(t, filepath.Join(src, fmt.Sprintf("r%02d", round)), uint64(round), mib)
		os.RemoveAll(filepath.Join(src, fmt.Sprintf("r%02d", round-3)))

		r := citadel(t, "snapshot", "--repo", repo, "--quiet", "--source", "data="+src)
		switch r.code {
		case 0:
			fitted++
			if lastFailed {
				afterFail++
			}
			lastFailed = false
		case 13:
			failed++
			lastFailed = true
			assertOneLineError(t, r, 13, "no space left on device", "forget")
		default:
			t.Fatalf("round %d: snapshot exit %d, want 0 or 13 (disk full)\n%s", round, r.code, r)
		}
		// Another program fills the disk to the last block: forget and
		// prune must still free space.
		fillDisk(t, mnt)
		r = citadel(t, "forget", "--repo", repo, "--quiet", "--keep-last", "3", "--prune")
		if r.code != 0 {
			t.Fatalf("round %d: forget --prune on a full disk: exit %d\n%s", round, r.code, r)
		}
		emptyFiller(t, mnt)
		if round%5 == 0 {
			if r := citadel(t, "check", "--repo", repo, "--read-data"); r.code != 0 {
				t.Fatalf("round %d: check --read-data after forget --prune: exit %d\n%s", round, r.code, r)
			}
		}
	}
	t.Logf("%d snapshots fitted, %d failed with a full disk, %d fitted again after a failure", fitted, failed, afterFail)
	if failed < 3 || afterFail < 1 {
		t.Fatalf("%d snapshots failed and %d fitted after a failure: the campaign did not exercise a full disk and its recovery", failed, afterFail)
	}
	if st := reserveState(t, repo); !st.held {
		t.Fatalf("after the campaign the reserve is not held again: %+v", st)
	}
	// Usable: a snapshot that fits succeeds, check reads everything, and
	// the latest snapshot restores byte for byte.
	os.RemoveAll(src)
	writeRandomTree(t, filepath.Join(src, "small"), 99, 2)
	mustCitadel(t, "snapshot", "--repo", repo, "--quiet", "--source", "data="+src)
	mustCitadel(t, "forget", "--repo", repo, "--quiet", "--keep-last", "1", "--prune")
	mustCitadel(t, "check", "--repo", repo, "--read-data")
	out := restore(t, repo, "latest")
	diffTrees(t, src, filepath.Join(out, "data"))

	// The reserve was given back (as a writer does to open on a full
	// disk) and the disk filled up but for less room than the reserve.
	st := reserveState(t, repo)
	if err := os.Truncate(filepath.Join(repo, "reserve"), 0); err != nil {
		t.Fatal(err)
	}
	os.Truncate(filepath.Join(repo, "reserve"), st.size)
	filler := fillDisk(t, mnt)
	if fi, err := os.Stat(filler); err != nil || fi.Size() < st.size {
		t.Fatalf("filler: %v", err)
	} else if err := os.Truncate(filler, fi.Size()-st.size/2); err != nil {
		t.Fatal(err)
	}
	// A snapshot then refuses before writing anything, in one line,
	// instead of taking the room forget and prune need; they still run,
	// and hold the reserve again.
	before := len(listSnapshots(t, repo))
	r := citadel(t, "snapshot", "--repo", repo, "--quiet", "--source", "data="+src)
	assertOneLineError(t, r, 13, "reserve", "forget")
	if n := len(listSnapshots(t, repo)); n != before {
		t.Fatalf("a refused snapshot changed the snapshot count from %d to %d", before, n)
	}
	mustCitadel(t, "forget", "--repo", repo, "--quiet", "--keep-last", "1", "--prune")
	emptyFiller(t, mnt)
	mustCitadel(t, "prune", "--repo", repo, "--quiet")
	if st := reserveState(t, repo); !st.held {
		t.Fatalf("the reserve is not held again once space is back: %+v", st)
	}
	mustCitadel(t, "check", "--repo", repo, "--read-data")
}

type reserveInfo struct {
	size int64
	held bool
}

func reserveState(t *testing.T, repo string) reserveInfo {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(repo, "reserve"), &st); err != nil {
		t.Fatalf("reserve: %v", err)
	}
	return reserveInfo{st.Size, st.Size > 0 && st.Blocks*512 >= st.Size}
}

func freeBytes(mnt string) int64 {
	var st unix.Statfs_t
	unix.Statfs(mnt, &st)
	return int64(st.Bfree) * int64(st.Bsize)
}

// TestFullDiskMountDaemon fills the disk under a serving mount, whose
// daemon keeps the index open and runs the commands: the snapshot fails
// in one line (exit 13), and forget --prune through the daemon frees
// space. Its Pebble used to stop for good at the first write it could not
// make ("Pebble stopped: fatal commit error: … no space left on device"),
// and every command failed until the daemon was restarted on a disk
// someone had freed by hand.
func TestFullDiskMountDaemon(t *testing.T) {
	needMount(t)
	dir := t.TempDir()
	disk := loopExt4(t, dir, 96)
	repo := filepath.Join(disk, "repo")
	mustCitadel(t, "init", "--encryption", "none", "--repo", repo)
	src := filepath.Join(dir, "src")
	writeRandomTree(t, filepath.Join(src, "a"), 1, 24)
	takeSnapshot(t, repo, "--source", "data="+src)
	os.RemoveAll(filepath.Join(src, "a"))
	writeRandomTree(t, filepath.Join(src, "b"), 2, 24)
	takeSnapshot(t, repo, "--source", "data="+src)
	m := startMount(t, repo, filepath.Join(dir, "mnt"), monitorConfig(t, dir))

	fillDisk(t, disk)
	writeRandomTree(t, filepath.Join(src, "c"), 3, 8)
	r := citadel(t, "snapshot", "--repo", repo, "--quiet", "--source", "data="+src)
	assertOneLineError(t, r, 13, "no space left on device", "forget")
	r = citadel(t, "forget", "--repo", repo, "--quiet", "--keep-last", "1", "--prune")
	if r.code != 0 {
		t.Fatalf("forget --prune through the daemon on a full disk: %s", r)
	}
	if st := reserveState(t, repo); !st.held {
		t.Fatalf("the reserve is not held again after prune freed space: %+v", st)
	}
	mustCitadel(t, "check", "--repo", repo, "--read-data")
	emptyFiller(t, disk)
	// The daemon's index still works: a snapshot through it succeeds.
	mustCitadel(t, "snapshot", "--repo", repo, "--quiet", "--source", "data="+src)
	m.stop(t)
	if m.err != nil {
		t.Fatalf("mount exit after the full disk: %v\n%s", m.err, m.stderr)
	}
	mustCitadel(t, "check", "--repo", repo, "--read-data")
}
