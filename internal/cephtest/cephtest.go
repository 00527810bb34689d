// Package cephtest gives tests a real Ceph RADOS Gateway to talk S3 to.
//
// A test calls Need: it gets the endpoint and credentials of the RGW that
// CITADELFS_S3_ENDPOINT names (with AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY; .ci/run starts one cluster for the whole run), or
// else of a single-node cluster that this package starts on first use with
// scripts/ceph.sh in a temp dir and Main stops when the package's tests
// are done. Ceph binds fixed ports (the mon 3300, RGW 7480), so packages
// take turns: the one starting a cluster holds an flock on
// /tmp/citadelfs-ceph-test.lock until it has stopped it.
//
// Where Ceph is not installed the test is skipped with a message saying
// how to install it; a cluster that is installed but does not start fails
// the test.
package cephtest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Env is how to reach the RGW.
type Env struct {
	Endpoint  string // http://127.0.0.1:7480
	AccessKey string
	SecretKey string
}

// The credentials scripts/ceph.sh gives its S3 user by default.
const (
	defaultAccessKey = "CITADELFSTESTKEY0001"
	defaultSecretKey = "citadelfstestsecret00000000000000000001"
	rgwAddr          = "127.0.0.1:7480"
)

var (
	once     sync.Once
	env      Env
	startErr error
	skipWhy  string
	started  string // CEPH_DIR of the cluster this process started
	lockFile *os.File
)

// Main runs the package's tests and stops the cluster if one was started.
func Main(m *testing.M) int {
	code := m.Run()
	Stop()
	return code
}

// Need returns the RGW to use, or skips the test where Ceph is not
// installed.
func Need(t testing.TB) Env {
	t.Helper()
	once.Do(setup)
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
	if startErr != nil {
		t.Fatalf("Ceph is installed but did not start: %v", startErr)
	}
	return env
}

// Bucket returns a fresh bucket name for one test. When the test passes,
// the bucket is removed with everything in it (radosgw-admin, which also
// removes Object Lock tests' versions, that S3 calls may not touch), so a
// whole run fits the cluster's small OSD; a failed test's bucket stays
// for a look.
func Bucket(t testing.TB) string {
	var b [6]byte
	rand.Read(b[:])
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	bucket := strings.Trim("t-"+name+"-"+hex.EncodeToString(b[:]), "-")
	t.Cleanup(func() {
		if !t.Failed() {
			removeBucket(bucket)
		}
	})
	return bucket
}

// removeBucket purges bucket where the cluster's config is known: the
// cluster this process started, or $CITADELFS_CEPH_CONF (scripts/ceph.sh
// env sets it). Errors are ignored: the bucket may never have been made.
func removeBucket(bucket string) {
	conf := os.Getenv("CITADELFS_CEPH_CONF")
	if started != "" {
		conf = filepath.Join(started, "ceph.conf")
	}
	if conf == "" {
		return
	}
	cmd := exec.Command("radosgw-admin", "-c", conf, "bucket", "rm", "--bucket="+bucket, "--purge-objects", "--bypass-gc")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "cephtest: remove bucket %s: %v: %s\n", bucket, err, out)
	}
}

func setup() {
	if ep := os.Getenv("CITADELFS_S3_ENDPOINT"); ep != "" {
		env = Env{Endpoint: ep, AccessKey: os.Getenv("AWS_ACCESS_KEY_ID"), SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY")}
		return
	}
	for _, bin := range []string{"ceph-mon", "ceph-osd", "ceph-mgr", "radosgw", "radosgw-admin", "ceph"} {
		if _, err := exec.LookPath(bin); err != nil {
			skipWhy = fmt.Sprintf("Ceph is not installed (%s not found): apt-get install ceph-mon ceph-mgr ceph-osd radosgw ceph-common, or set CITADELFS_S3_ENDPOINT", bin)
			return
		}
	}
	if os.Geteuid() != 0 {
		skipWhy = "starting Ceph needs root; run as root or set CITADELFS_S3_ENDPOINT"
		return
	}
	env = Env{Endpoint: "http://" + rgwAddr, AccessKey: defaultAccessKey, SecretKey: defaultSecretKey}
	f, err := os.OpenFile("/tmp/citadelfs-ceph-test.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		startErr = err
		return
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		startErr = err
		return
	}
	lockFile = f
	// Holding the lock, a listening RGW is not another package's (that
	// one would hold the lock): a cluster started by hand with
	// scripts/ceph.sh and its default keys.
	if c, err := net.DialTimeout("tcp", rgwAddr, time.Second); err == nil {
		c.Close()
		return
	}
	script, err := findScript()
	if err != nil {
		startErr = err
		return
	}
	dir, err := os.MkdirTemp("", "citadelfs-ceph-")
	if err != nil {
		startErr = err
		return
	}
	cmd := exec.Command("bash", script, "start")
	cmd.Env = append(os.Environ(), "CEPH_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		startErr = fmt.Errorf("%s start: %v\n%s", script, err, out)
		return
	}
	started = dir
}

// Stop stops the cluster this process started, if any.
func Stop() {
	if started != "" {
		if script, err := findScript(); err == nil {
			cmd := exec.Command("bash", script, "stop")
			cmd.Env = append(os.Environ(), "CEPH_DIR="+started, "PURGE=1")
			if out, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "cephtest: stop: %v\n%s", err, out)
			}
		}
		os.RemoveAll(started)
		started = ""
	}
	if lockFile != nil {
		lockFile.Close()
		lockFile = nil
	}
}

// findScript finds scripts/ceph.sh above the working directory.
func findScript() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(d, "scripts", "ceph.sh")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		if d == filepath.Dir(d) {
			return "", errors.New("cephtest: scripts/ceph.sh not found above the working directory")
		}
		d = filepath.Dir(d)
	}
}
