package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Mistakes in mount's arguments are usage errors (exit 2), found before
// anything is mounted.
func TestMountArgumentErrors(t *testing.T) {
	for _, bad := range []string{"999.1.1.1:99999", "127.0.0.1", "127.0.0.1:http", "127.0.0.1:70000", "bad host:9464", "999.1.1.1:9464"} {
		var ue usageError
		if err := checkListen(bad); !errors.As(err, &ue) {
			t.Errorf("--metrics-listen %q: %v, want a usage error", bad, err)
		}
	}
	for _, good := range []string{"", "127.0.0.1:9464", ":9464", "[::1]:9464", "localhost:9464", "metrics.example.org:0"} {
		if err := checkListen(good); err != nil {
			t.Errorf("--metrics-listen %q: %v", good, err)
		}
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	var ue usageError
	if err := checkMountpoint(file, filepath.Join(dir, "repo")); !errors.As(err, &ue) {
		t.Errorf("a regular file as mountpoint: %v, want a usage error", err)
	}
	if err := checkMountpoint(filepath.Join(dir, "new"), filepath.Join(dir, "repo")); err != nil {
		t.Errorf("a mountpoint still to be made: %v", err)
	}
}
