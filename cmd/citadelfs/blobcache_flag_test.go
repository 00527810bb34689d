package main

import (
	"io"
	"strings"
	"testing"
)

// --blob-cache-size over the config's blob_cache_size over the 2 GiB
// default; a size that does not parse is a usage error naming it, before
// anything is opened.
func TestBlobCacheSizeFlag(t *testing.T) {
	for _, c := range []struct {
		flag, conf string
		want       int64
	}{
		{"", "", 2 << 30},
		{"", "512MiB", 512 << 20},
		{"8G", "512MiB", 8 << 30},
		{"0", "512MiB", 0},
	} {
		env := &cmdEnv{stdout: io.Discard, stderr: io.Discard, global: &globalFlags{blobCacheSize: c.flag}}
		env.cfg = &config{BlobCacheSize: c.conf}
		if got, err := env.blobCacheSize(); err != nil || got != c.want {
			t.Errorf("flag %q config %q: %d %v, want %d", c.flag, c.conf, got, err, c.want)
		}
	}
	code, _, stderr := runCLI(t, "snapshots", "--repo", "s3://bucket/p", "--s3-endpoint", "http://127.0.0.1:1", "--blob-cache-size", "lots")
	if code != exitUsage || !strings.Contains(stderr, "--blob-cache-size") || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
		t.Fatalf("bad --blob-cache-size: exit %d, %q", code, stderr)
	}
}
