package tests

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"testing"
)

// copy between two buckets, the target reached through another endpoint
// URL than the source (a TCP proxy in front of the same RGW, as a second
// site would be): --to-s3-endpoint carries every byte of the target
// through it, the target restores identical through its own endpoint,
// and the config's copy.s3 does the same for the config's copy.to. The
// --to-s3-* flags are refused for a directory target (exit 2). Before,
// an s3:// target could only share the source's endpoint.
func TestCopyBetweenS3Endpoints(t *testing.T) {
	t.Parallel()
	a, b := newS3Repo(t), newS3Repo(t)
	dir := t.TempDir()
	src := smallCorpus(t, dir)
	cacheA, cacheB := filepath.Join(dir, "cache-a"), filepath.Join(dir, "cache-b")
	a.must(t, cacheA, "init", "--encryption", "none", "--insecure-no-encryption")
	a.must(t, cacheA, append([]string{"snapshot"}, sourceFlags(src)...)...)
	b.must(t, cacheB, "init", "--encryption", "none", "--insecure-no-encryption")
	u, err := url.Parse(b.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startProxy(t, u.Host)
	via := "http://" + proxy.addr
	toCache := filepath.Join(dir, "to-cache")

	up := parseCopy(t, a.must(t, cacheA, "copy", "--to", b.url, "--to-s3-endpoint", via, "--to-s3-region", "us-east-1",
		"--to-s3-path-style", "--to-cache-dir", toCache, "--json"))
	if len(up.Copied) != 1 || up.Blobs == 0 {
		t.Fatalf("copy to the second endpoint: %+v", up)
	}
	if sent := proxy.sent.Load(); sent < up.Bytes {
		t.Fatalf("%d bytes went through the target's endpoint, the copy stored %d: the target was not reached through --to-s3-endpoint", sent, up.Bytes)
	}
	var snaps []snapInfo
	if err := json.Unmarshal([]byte(b.must(t, cacheB, "snapshots", "--json").stdout), &snaps); err != nil || len(snaps) != 1 || snaps[0].ID != up.Copied[0] {
		t.Fatalf("snapshots in the target bucket: %v %+v", err, snaps)
	}
	out := filepath.Join(dir, "out")
	b.must(t, cacheB, "restore", up.Copied[0], out)
	for _, l := range labels {
		assertSameTree(t, filepath.Join(src, l), filepath.Join(out, l))
	}

	// The config's copy.s3, for its copy.to: the target's requests go
	// through the proxy again, and there is nothing left to copy.
	cfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfg, []byte("repo: "+a.url+"\ns3:\n  endpoint: "+a.endpoint+"\ncache_dir: "+cacheA+
		"\ncopy:\n  to: "+b.url+"\n  cache_dir: "+toCache+"\n  s3:\n    endpoint: "+via+"\n    path_style: true\n"), 0o600)
	before := proxy.sent.Load()
	again := parseCopy(t, mustCitadelEnv(t, a.env, "copy", "--config", cfg, "--json"))
	if len(again.Skipped) != 1 || again.Blobs != 0 {
		t.Fatalf("second copy: %+v", again)
	}
	if proxy.sent.Load() == before {
		t.Fatal("with copy.s3 in the config, the target was not reached through its endpoint")
	}

	if r := a.run(t, cacheA, "copy", "--to", filepath.Join(dir, "local"), "--to-s3-endpoint", via); r.code != 2 {
		t.Fatalf("--to-s3-endpoint with a directory target: %s, want exit 2", r)
	}
}
