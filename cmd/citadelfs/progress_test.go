package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"citadelfs/internal/testutil"
	"citadelfs/snapshot"
)

// /dev/null is a character device but no terminal: progress escapes went
// there (a unit's StandardError=null, 2>/dev/null in cron).
func TestDevNullIsNoTerminal(t *testing.T) {
	f, err := os.OpenFile("/dev/null", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("isTerminal(/dev/null) = true")
	}
}

func TestFitLine(t *testing.T) {
	p := &snapshot.Progress{Start: time.Now().Add(-10 * time.Second)}
	p.Bytes.Store(3 << 30)
	p.TotalBytes.Store(80 << 30)
	p.Files.Store(123456)
	p.TotalFiles.Store(654321)
	p.ScanDone.Store(true)
	line := snapshotProgress(p, "snapshot")()
	if utf8.RuneCountInString(line) <= 50 {
		t.Fatalf("the test needs a line wider than 50 columns: %q", line)
	}
	for _, w := range []int{50, 80, 2, 1, 0} {
		got := fitLine(line, w)
		if n := utf8.RuneCountInString(got); w > 1 && n != min(w-1, utf8.RuneCountInString(line)) || w <= 1 && got != "" || !strings.HasPrefix(line, got) {
			t.Errorf("fitLine(%q, %d) = %q (%d runes)", line, w, got, n)
		}
	}
	if got := fitLine("héllo wörld", 6); got != "héllo" {
		t.Errorf("fitLine cuts runes, not bytes: %q", got)
	}
}

// openPTY opens a pseudo-terminal pair (posix_openpt, unlockpt, ptsname).
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Skipf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("open pts: %v", err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

// On a real terminal 50 columns wide, every redraw of a long progress line
// fits in 49 columns, so \r\033[K clears it: it wrapped, and each redraw
// left a line behind.
func TestProgressFitsA50ColumnTerminal(t *testing.T) {
	master, tty := openPTY(t)
	if err := unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 50}); err != nil {
		t.Fatal(err)
	}
	if !isTerminal(tty) || termColumns(tty) != 50 {
		t.Fatalf("pty: isTerminal %v, columns %d", isTerminal(tty), termColumns(tty))
	}
	env := &cmdEnv{stderr: tty, global: &globalFlags{}, isTerminal: true, columns: 80}
	var frames atomic.Int32
	long := strings.Repeat("snapshot 12.3 GiB / 80.0 GiB (15%), ", 4)
	p := startProgress(env, func() string { frames.Add(1); return long })
	var out bytes.Buffer
	buf := make([]byte, 4096)
	master.SetReadDeadline(time.Now().Add(30 * time.Second))
	for strings.Count(out.String(), "\r\033[K") < 3 {
		n, err := master.Read(buf)
		if err != nil {
			t.Fatalf("reading the pty: %v after %q", err, out.String())
		}
		out.Write(buf[:n])
	}
	p.Stop()
	for _, seg := range strings.Split(out.String(), "\r\033[K") {
		if utf8.RuneCountInString(seg) > 49 || strings.ContainsAny(seg, "\n") {
			t.Errorf("a redraw does not fit 50 columns: %q", seg)
		}
		if seg != "" && seg != long[:49] {
			t.Errorf("redraw %q, want the line cut at 49 columns", seg)
		}
	}
}

// The work's goroutines set the counts while the progress line's goroutine
// renders them (check, test-restore and copy used plain ints for this, a
// data race that -race reports); the line shows the last counts set.
func TestProgressCountsAcrossGoroutines(t *testing.T) {
	var out testutil.SyncBuffer
	env := &cmdEnv{stderr: &out, global: &globalFlags{}, isTerminal: true, columns: 80}
	var c counts
	p := startProgress(env, func() string { done, total := c.get(); return fmt.Sprintf("check: read %d/%d packs", done, total) })
	for i := 1; i <= 2000; i++ {
		c.setInts(i, 2000)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "read 2000/2000 packs") {
		if time.Now().After(deadline) {
			t.Fatalf("no redraw with the last counts: %q", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.Stop()
}
