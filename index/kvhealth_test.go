package index

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/sstable"
	"github.com/cockroachdb/pebble/vfs"
)

// logLines collects what a KV logs.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logf(s string) { l.mu.Lock(); l.lines = append(l.lines, s); l.mu.Unlock() }
func (l *logLines) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// waitFor polls cond until it holds; a generous bound turns a hang into
// a failure with a message, it asserts no speed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(60 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}

// Pebble's Fatalf (a WAL write that failed) used to os.Exit(1) from
// inside the library. Now the call waiting on Pebble and every later one
// fail with one line naming the cause, and Close returns it without
// waiting on the parked goroutine.
func TestPebbleFatalIsAnErrorNotAnExit(t *testing.T) {
	var log logLines
	kv, err := OpenKV(t.TempDir(), KVOptions{Logf: log.logf})
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Put([]byte("a"), []byte("1"), true); err != nil {
		t.Fatal(err)
	}
	parked := make(chan struct{})
	go func() {
		defer close(parked) // never runs: Fatalf does not return
		pebbleLogger{kv.h}.Fatalf("pebble: fatal commit error: write %s:\n%v", "index/000023.log", syscall.ENOSPC)
	}()
	<-kv.h.down
	kv.h.onFatal("again") // as a second goroutine would: the first cause stays
	for _, err := range []error{kv.Put([]byte("b"), nil, true), kv.Delete([]byte("a"), false), kv.Close()} {
		if err == nil || !strings.Contains(err.Error(), "no space left on device") || !strings.Contains(err.Error(), "Pebble stopped") || strings.Contains(err.Error(), "\n") {
			t.Errorf("after Pebble gave up: %v, want one line naming the cause", err)
		}
	}
	// Not logged: the command prints the error it gets, once.
	if l := log.get(); len(l) != 0 {
		t.Fatalf("logged %q, want nothing", l)
	}
	select {
	case <-parked:
		t.Fatal("Fatalf returned")
	default:
	}
}

// flipIndexBlocks flips a byte inside the index block of every table in
// dir: the table can no longer be opened, so a compaction over it fails.
// (A flipped data block does not fail it: Pebble 1.1's compaction drops
// that block's keys without an error, which is why check reads every
// block itself.)
func flipIndexBlocks(t *testing.T, dir string) int {
	t.Helper()
	ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	for _, p := range ssts {
		f, err := vfs.Default.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		readable, err := sstable.NewSimpleReadable(f)
		if err != nil {
			t.Fatal(err)
		}
		r, err := sstable.NewReader(readable, sstable.ReaderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		l, err := r.Layout()
		r.Close()
		if err != nil || len(l.Index) == 0 {
			t.Fatalf("%s: layout %v", p, err)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		data[l.Index[0].Offset+2] ^= 0xff
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return len(ssts)
}

// A table block that rotted made every compaction over it fail in the
// background, unseen, while L0 grew. Now the failure is recorded and
// logged once, writes fail with ErrCorrupt and the remedy, the record is
// stored for the monitor (it survives the process), and Verify names the
// table.
func TestBackgroundCorruptionIsSurfaced(t *testing.T) {
	dir := t.TempDir()
	kv, err := OpenKV(dir, KVOptions{tune: func(o *pebble.Options) { o.DisableAutomaticCompactions = true }})
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 2; round++ {
		for i := 0; i < 500; i++ {
			if err := kv.Put([]byte(fmt.Sprintf("a/some/file/%04d", i)), []byte(fmt.Sprintf("node %d %d", round, i)), false); err != nil {
				t.Fatal(err)
			}
		}
		if err := kv.db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := kv.Close(); err != nil {
		t.Fatal(err)
	}
	if n := flipIndexBlocks(t, dir); n < 2 {
		ents, _ := os.ReadDir(dir)
		t.Fatalf("want two tables, have %d: %v", n, ents)
	}

	var log logLines
	kv, err = OpenKV(dir, KVOptions{Logf: log.logf, tune: func(o *pebble.Options) { o.L0CompactionThreshold = 1 }})
	if err != nil {
		t.Fatal(err)
	}
	// The next flush schedules a compaction of the L0 tables, which
	// reads the damaged blocks. On a loaded machine the compaction the
	// open itself scheduled may have failed already, and then this write
	// is refused the same way.
	if err := kv.Put([]byte("a/some/file/0001"), []byte("new"), false); err == nil {
		kv.db.Flush()
	} else if !errors.Is(err, ErrCorrupt) {
		t.Fatal(err)
	}
	waitFor(t, "the background compaction to fail", func() bool { p, _ := kv.Problem(); return p != nil })
	p, err := kv.Problem()
	if err != nil || !p.Corrupt || !strings.Contains(p.Error, "checksum") {
		t.Fatalf("problem %+v, %v", p, err)
	}
	err = kv.Put([]byte("x"), nil, true)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "repair index") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("a write after the index was found damaged: %v", err)
	}
	waitFor(t, "the problem record", func() bool {
		kv.h.mu.Lock()
		defer kv.h.mu.Unlock()
		return kv.h.stored
	})
	if _, err := kv.Verify(context.Background()); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), ".sst") {
		t.Fatalf("Verify: %v, want ErrCorrupt naming a table", err)
	}
	if l := log.get(); len(l) != 0 {
		t.Fatalf("logged %q, want nothing: the writes return it", l)
	}
	if err := kv.Close(); err != nil {
		t.Fatal(err)
	}
	// Another process (the monitor) sees the stored record.
	ro, err := OpenKV(dir, KVOptions{ReadOnly: true, MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if p, err := ro.Problem(); err != nil || p == nil || !p.Corrupt || p.Time.IsZero() {
		t.Fatalf("stored problem %+v, %v", p, err)
	}
}

// sstFailFS fails the creation of tables while fail is set: every flush
// fails, so memtables pile up until Pebble stalls writes.
type sstFailFS struct {
	vfs.FS
	fail *atomic.Bool
}

func (fs sstFailFS) Create(name string) (vfs.File, error) {
	if fs.fail.Load() && strings.HasSuffix(name, ".sst") {
		return nil, &os.PathError{Op: "create", Path: name, Err: syscall.EIO}
	}
	return fs.FS.Create(name)
}

// stalledKV opens a KV whose flushes fail, and fills it until writes
// stall; it returns the KV and the write that was stalled (its result).
func stalledKV(t *testing.T, o KVOptions) (*KV, <-chan error) {
	t.Helper()
	fail := &atomic.Bool{}
	o.tune = func(po *pebble.Options) {
		po.FS = sstFailFS{vfs.Default, fail}
		po.MemTableSize = 256 << 10
		po.MemTableStopWritesThreshold = 2
	}
	kv, err := OpenKV(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	res := make(chan error, 1)
	go func() {
		v := make([]byte, 32<<10)
		for i := 0; ; i++ {
			if err := kv.Put([]byte(fmt.Sprintf("k%06d", i)), v, false); err != nil {
				res <- err
				return
			}
		}
	}()
	return kv, res
}

// Writes into a stalled Pebble used to wait forever (a snapshot that
// filled the memtable hung, ignoring SIGTERM). Now a write gives up after
// the stall timeout with an error naming the stall and the background
// error behind it, later writes fail at once, and Close does not wait
// for the abandoned write.
func TestWriteStallIsBounded(t *testing.T) {
	var log logLines
	kv, res := stalledKV(t, KVOptions{StallTimeout: 300 * time.Millisecond, Logf: log.logf})
	err := <-res
	if err == nil || !strings.Contains(err.Error(), "write stall") || !strings.Contains(err.Error(), "input/output error") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("stalled write: %v, want one line naming the stall and the background error", err)
	}
	if err2 := kv.Put([]byte("later"), nil, true); err2 == nil || err2.Error() != err.Error() {
		t.Fatalf("a later write: %v, want the same error", err2)
	}
	if err := kv.Close(); err == nil {
		t.Fatal("Close after an abandoned write: nil, want the error")
	}
	if p, _ := kv.Problem(); p == nil || p.Corrupt {
		t.Fatalf("problem %+v, want the failed flush, not damage", p)
	}
}

// A signal reaches a write waiting in the stall: it returns at once with
// context.Canceled, however long the stall timeout.
func TestWriteStallAnswersInterrupt(t *testing.T) {
	interrupt := make(chan struct{})
	kv, res := stalledKV(t, KVOptions{StallTimeout: time.Hour, Logf: func(string) {}})
	kv.SetInterrupt(interrupt)
	waitFor(t, "the write stall", func() bool {
		kv.h.mu.Lock()
		defer kv.h.mu.Unlock()
		return !kv.h.stallSince.IsZero()
	})
	close(interrupt)
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted write: %v, want context.Canceled", err)
	}
	kv.Close()
}

// walWithRecords closes a KV whose writes are only in its WAL and returns
// the WAL's path and size.
func walWithRecords(t *testing.T, dir string) (string, int64) {
	t.Helper()
	kv, err := OpenKV(dir, KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		if err := kv.Put([]byte(fmt.Sprintf("s%04d", i)), []byte(strings.Repeat("manifest ", 20)), true); err != nil {
			t.Fatal(err)
		}
	}
	if err := kv.Close(); err != nil {
		t.Fatal(err)
	}
	wals, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	var path string
	var size int64
	for _, w := range wals {
		if fi, err := os.Stat(w); err == nil && fi.Size() > size {
			path, size = w, fi.Size()
		}
	}
	if size < 20000 {
		t.Fatalf("WAL %s is %d bytes", path, size)
	}
	return path, size
}

// A flipped bit in the middle of the WAL used to end Pebble's replay there
// silently: every later record was dropped (in the campaign, the whole
// second snapshot) and check passed. Now the open fails with ErrCorrupt
// and the remedy, read-only or not, and the WAL is left as it was.
func TestWALRotIsDetected(t *testing.T) {
	dir := t.TempDir()
	wal, size := walWithRecords(t, dir)
	data, _ := os.ReadFile(wal)
	data[size/2] ^= 0x01
	os.WriteFile(wal, data, 0o600)
	for _, ro := range []bool{false, true} {
		// The writer's attempt leaves Pebble's LOCK with its parked
		// goroutine (a process ends after such an error); the reader,
		// as under the repository's shared lock, does not take it.
		kv, err := OpenKV(dir, KVOptions{ReadOnly: ro, SkipPebbleLock: ro, MustExist: true})
		if err == nil {
			kv.Close()
		}
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(wal)) || !strings.Contains(err.Error(), "repair index") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("open (read-only %v) over a flipped WAL byte: %v, want one line, ErrCorrupt, naming the WAL", ro, err)
		}
	}
	if after, _ := os.ReadFile(wal); !bytes.Equal(after, data) {
		t.Fatal("the damaged WAL was changed")
	}
}

// A torn tail, as a crash leaves it (the last record cut short), is no
// damage: the open succeeds with every record before it.
func TestWALTornTailOpens(t *testing.T) {
	dir := t.TempDir()
	wal, size := walWithRecords(t, dir)
	if err := os.Truncate(wal, size-50); err != nil {
		t.Fatal(err)
	}
	kv, err := OpenKV(dir, KVOptions{MustExist: true})
	if err != nil {
		t.Fatalf("open over a torn WAL tail: %v", err)
	}
	defer kv.Close()
	if _, err := kv.Get([]byte("s0198")); err != nil {
		t.Fatalf("a record before the torn one: %v", err)
	}
}

// After the interrupt, a write that Pebble takes as usual still succeeds:
// what a command records on its way out after SIGTERM is kept.
func TestWriteAfterInterruptStillLands(t *testing.T) {
	interrupt := make(chan struct{})
	close(interrupt)
	kv, err := OpenKV(t.TempDir(), KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	kv.SetInterrupt(interrupt)
	for i := 0; i < 20; i++ {
		if err := kv.Put([]byte(fmt.Sprintf("r%d", i)), []byte("interrupted"), true); err != nil {
			t.Fatalf("write %d after the interrupt: %v", i, err)
		}
	}
}
