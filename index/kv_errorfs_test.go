package index

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
	"github.com/cockroachdb/pebble/vfs/errorfs"
)

// Pebble on a vfs.FS that fills up (errorfs: ENOSPC on every write and
// sync of the write-ahead log, from a moment on), through Pebble itself
// rather than a simulated Fatalf: the synced Put that meets it fails with
// one line naming the cause, the process does not exit, Close returns,
// and what was committed before is there when the database is opened
// again on a healthy file system.
func TestPebbleENOSPCThroughErrorfs(t *testing.T) {
	var full atomic.Bool
	inj := errorfs.InjectorFunc(func(op errorfs.Op, path string) error {
		if full.Load() && strings.HasSuffix(path, ".log") &&
			(op == errorfs.OpFileWrite || op == errorfs.OpFileWriteAt || op == errorfs.OpFileSync) {
			return syscall.ENOSPC
		}
		return nil
	})
	dir := t.TempDir()
	var log logLines
	kv, err := OpenKV(dir, KVOptions{Logf: log.logf, tune: func(o *pebble.Options) { o.FS = errorfs.Wrap(vfs.Default, inj) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Put([]byte("a"), []byte("1"), true); err != nil {
		t.Fatal(err)
	}
	full.Store(true)
	err = kv.Put([]byte("b"), []byte("2"), true)
	if err == nil || !strings.Contains(err.Error(), "no space left on device") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("synced Put on a full disk: %v, want one line naming ENOSPC", err)
	}
	if !IsDiskFull(err) {
		t.Fatalf("the error is not recognised as a full disk: %v", err)
	}
	kv.Close()
	// The parked Pebble still holds its lock in this process (a real one
	// exits): the next process is played by a copy of the directory.
	next := t.TempDir()
	if out, err := exec.Command("cp", "-a", dir+"/.", next).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	os.Remove(filepath.Join(next, "LOCK"))
	kv2, err := OpenKV(next, KVOptions{})
	if err != nil {
		t.Fatalf("reopen on a healthy disk: %v", err)
	}
	defer kv2.Close()
	if v, err := kv2.Get([]byte("a")); err != nil || string(v) != "1" {
		t.Fatalf("a record committed before the disk filled: %q %v", v, err)
	}
	if v, err := kv2.Get([]byte("b")); err == nil && string(v) != "2" {
		t.Fatalf("the failed Put left a wrong value: %q", v)
	}
}
