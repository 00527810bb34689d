package tests

import (
	"encoding/json"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"citadelfs/internal/cephtest"
)

// tcpProxy stands between the binary and RGW so a test can take the
// store away mid-snapshot (every connection reset, nothing listening)
// and bring it back, without stopping the Ceph other tests share.
type tcpProxy struct {
	t      *testing.T
	addr   string
	target string
	// cutAfter, when > 0, cuts everything once that many bytes went up.
	cutAfter atomic.Int64
	sent     atomic.Int64

	mu    sync.Mutex
	ln    net.Listener
	conns []net.Conn
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{t: t, target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() {
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if _, werr := up.Write(buf[:n]); werr != nil {
							break
						}
						if lim := p.cutAfter.Load(); p.sent.Add(int64(n)) > lim && lim > 0 {
							p.cut()
							break
						}
					}
					if err != nil {
						break
					}
				}
				up.Close()
			}()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
}

// cut stops listening and resets every connection: RGW gone.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // RST, as a crashed server's host sends
		}
		c.Close()
	}
	p.conns = nil
}

// restore listens again on the same address: RGW back.
func (p *tcpProxy) restore() {
	p.t.Helper()
	p.cutAfter.Store(0)
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.serve(ln)
}

// RGW taken away in the middle of a snapshot's uploads: the snapshot
// fails with one line and exit 14 after its retries, no snapshot is
// committed, and once RGW is back the next snapshot succeeds, reuses
// what had been uploaded, passes check --read-data and restores
// identical. Also: the repository named only by the config file.
func TestS3StoreGoneMidSnapshot(t *testing.T) {
	t.Parallel() // RGW round trips overlap
	e := cephtest.Need(t)
	u, err := url.Parse(e.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	step := func(what string) { t.Logf("%v: %s", time.Since(start).Round(time.Millisecond), what) }
	proxy := startProxy(t, u.Host)
	r := newS3Repo(t)
	r.endpoint = "http://" + proxy.addr
	dir := t.TempDir()
	// Enough models for a few 32 MiB packs: the cut falls after the first.
	src := filepath.Join(dir, "src")
	corpus(t, "-out", src, "-models-mb", "96", "-logs-mb", "1", "-configs", "50")
	step("corpus")
	cache := filepath.Join(dir, "cache")
	r.must(t, cache, "init", "--encryption", "none", "--insecure-no-encryption")
	step("init")

	proxy.cutAfter.Store(proxy.sent.Load() + 40<<20) // 40 MiB into the uploads
	t0 := time.Now()
	res := r.run(t, cache, append([]string{"snapshot"}, sourceFlags(src)...)...)
	t.Logf("the failing snapshot took %v", time.Since(t0))
	if res.code != 14 || !oneLine(res.stderr) {
		t.Fatalf("snapshot with RGW gone: want exit 14 and one line, got %s", res)
	}
	proxy.restore()
	step("cut snapshot")
	if out := r.must(t, cache, "snapshots", "--json").stdout; strings.TrimSpace(out) != "[]" {
		t.Fatalf("a snapshot cut short was committed: %s", out)
	}
	step("snapshots")
	partial := r.bucketBytes(t)
	if partial == 0 {
		t.Fatal("set-up: nothing was uploaded before the cut")
	}

	// The config file alone names the repository this time, and RGW
	// directly (the proxy, a Go program, would add the 40 ms delayed
	// ACKs the client turns off on its own connections).
	cfg := filepath.Join(dir, "citadelfs.yaml")
	os.WriteFile(cfg, []byte("repo: "+r.url+"\ncache_dir: "+cache+"\ns3:\n  endpoint: "+e.Endpoint+"\n"), 0o600)
	t0 = time.Now()
	res = citadelEnv(t, r.env, append([]string{"snapshot", "--json", "--config", cfg}, sourceFlags(src)...)...)
	t.Logf("the second snapshot took %v", time.Since(t0))
	if res.code != 0 {
		t.Fatalf("snapshot once RGW is back: %s", res)
	}
	var s snapSummary
	json.Unmarshal([]byte(res.stdout), &s)
	if s.Stored >= r.bucketBytes(t) || s.Stored > r.bucketBytes(t)-partial+(1<<20) {
		t.Fatalf("the second snapshot stored %d bytes; %d of the bucket's %d were uploaded before the cut and should have been reused",
			s.Stored, partial, r.bucketBytes(t))
	}
	t0 = time.Now()
	defer func() { t.Logf("check, restore and compare took %v", time.Since(t0)) }()
	if res := citadelEnv(t, r.env, "check", "--read-data", "--config", cfg); res.code != 0 {
		t.Fatalf("check --read-data: %s", res)
	}
	out := filepath.Join(t.TempDir(), "restore")
	if res := citadelEnv(t, r.env, "restore", "--config", cfg, "latest", out); res.code != 0 {
		t.Fatalf("restore: %s", res)
	}
	for _, l := range labels {
		assertSameTree(t, filepath.Join(src, l), filepath.Join(out, l))
	}
}

// kill -9 of a snapshot in the middle of its uploads: check --read-data
// passes (no snapshot half there, no pack that lies), and the next
// snapshot succeeds and restores identical.
func TestS3Kill9DuringUploads(t *testing.T) {
	t.Parallel() // RGW round trips overlap
	e := cephtest.Need(t)
	u, _ := url.Parse(e.Endpoint)
	proxy := startProxy(t, u.Host)
	r := newS3Repo(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	corpus(t, "-out", src, "-models-mb", "96", "-logs-mb", "1", "-configs", "50")
	cache := filepath.Join(dir, "cache")
	r.must(t, cache, "init", "--encryption", "none", "--insecure-no-encryption")
	args := append([]string{"snapshot", "--repo", r.url, "--s3-endpoint", "http://" + proxy.addr, "--cache-dir", cache}, sourceFlags(src)...)
	cmd := exec.Command(citadelBin, args...)
	cmd.Env = append(testEnv(), r.env...)
	base := proxy.sent.Load()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	if !poll(exited, func() bool { return proxy.sent.Load()-base > 40<<20 }) {
		t.Fatal("the snapshot ended before 40 MiB were uploaded")
	}
	cmd.Process.Kill()
	<-exited
	if res := r.run(t, cache, "check", "--read-data"); res.code != 0 {
		t.Fatalf("check --read-data after kill -9: %s", res)
	}
	r.must(t, cache, append([]string{"snapshot"}, sourceFlags(src)...)...)
	out := filepath.Join(t.TempDir(), "restore")
	r.must(t, cache, "restore", "latest", out)
	for _, l := range labels {
		assertSameTree(t, filepath.Join(src, l), filepath.Join(out, l))
	}
}
