package index

import (
	"errors"
	"fmt"
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
