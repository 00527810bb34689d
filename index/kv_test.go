package index

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Calls after Close, as from a command that outlived the daemon's
// shutdown, fail with ErrClosed; Close waits for a scan in progress, whose
// callback may itself call the KV.
func TestKVClosedFence(t *testing.T) {
	kv, err := OpenKV(t.TempDir(), KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		kv.Put([]byte{'k', byte(i)}, []byte("v"), false)
	}
	inScan, closed := make(chan struct{}), make(chan error)
	go func() {
		n := 0
		err := kv.Scan([]byte{'k'}, []byte{'l'}, func(k, v []byte) error {
			if n == 0 {
				close(inScan)
				time.Sleep(50 * time.Millisecond) // Close is waiting now
			}
			n++
			_, err := kv.Get(k) // nested: must not deadlock
			if err != nil && !errors.Is(err, ErrClosed) {
				return err
			}
			return nil
		})
		if err == nil && n != 100 {
			err = fmt.Errorf("scan saw %d keys", n)
		}
		closed <- err
	}()
	<-inScan
	if err := kv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("scan during Close: %v", err)
	}
	if _, err := kv.Get([]byte("k")); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
	if err := kv.Put([]byte("k"), nil, true); !errors.Is(err, ErrClosed) {
		t.Errorf("Put after Close: %v", err)
	}
	b := kv.NewBatch()
	b.Put([]byte("k"), nil)
	if err := b.Commit(true); !errors.Is(err, ErrClosed) {
		t.Errorf("batch Commit after Close: %v", err)
	}
	if err := kv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// Pebble's fatal error ends the process with one line and exit 1.
func TestPebbleFatalIsOneLineExit1(t *testing.T) {
	if os.Getenv("CITADELFS_TEST_FATAL") == "1" {
		quietLogger{}.Fatalf("pebble: fatal commit error: write %s:\n%v", "index/000023.log", "no space left on device")
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPebbleFatalIsOneLineExit1$")
	cmd.Env = append(os.Environ(), "CITADELFS_TEST_FATAL=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want code 1", err)
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "no space left on device") {
		t.Fatalf("stderr %q: want one line naming the cause", stderr.String())
	}
}
