package main

import (
	"fmt"
	"testing"

	"golang.org/x/sys/unix"

	"citadelfs/index"
)

// TestDiskFullExitCode: running out of space, whatever wraps it, is exit
// 13, and the table documents it.
func TestDiskFullExitCode(t *testing.T) {
	for _, err := range []error{
		fmt.Errorf("index: write pack: %w", unix.ENOSPC),
		fmt.Errorf("restore: %w", unix.EDQUOT),
		fmt.Errorf("snapshot: %w", index.ErrDiskFull),
	} {
		if c := exitCode(err); c != 13 {
			t.Errorf("exitCode(%v) = %d, want 13", err, c)
		}
	}
	found := false
	for _, e := range exitTable {
		found = found || e.code == 13
	}
	if !found {
		t.Error("exit 13 is not in the documented table")
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "4096": 4096, "16MiB": 16 << 20, "16M": 16 << 20, "512k": 512 << 10, "1GB": 1 << 30, " 2 MiB": 2 << 20} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "lots", "1.5M", "16X"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}
