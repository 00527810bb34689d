package monitor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shirou/gopsutil/v4/disk"
)

func TestHostSystem(t *testing.T) {
	dir := t.TempDir()
	src, err := NewHostSystem(HostSystemOptions{Paths: []string{dir, filepath.Join(dir, "missing")}, RateWindow: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	st, err := src.System(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Errors) != 0 {
		t.Errorf("errors on this machine: %v", st.Errors)
	}
	c := st.CPU
	if c == nil || c.Cores < 1 || len(c.PerCore) != c.Cores || len(c.Seconds) != c.Cores || c.TotalPercent < 0 || c.TotalPercent > 100 {
		t.Fatalf("cpu %+v", c)
	}
	if st.RateSeconds < 0.04 || st.RateSeconds > 5 {
		t.Errorf("rate window %v s, want about the 50ms the first call waits", st.RateSeconds)
	}
	if st.Memory == nil || st.Memory.Total == 0 || st.Memory.UsedPercent <= 0 || st.Memory.UsedPercent > 100 {
		t.Errorf("memory %+v", st.Memory)
	}
	if st.Load == nil || st.Swap == nil {
		t.Errorf("load %v swap %v", st.Load, st.Swap)
	}
	if len(st.Paths) != 2 {
		t.Fatalf("paths %+v", st.Paths)
	}
	if p := st.Paths[0]; p.Usage == nil || p.Usage.Total == 0 || p.Absent || p.Mountpoint == "" {
		t.Errorf("temp dir %+v", p)
	}
	if p := st.Paths[1]; !p.Absent || p.Usage != nil || p.Error != "" {
		t.Errorf("missing path %+v, want absent without error", p)
	}
	for _, m := range st.Mounts {
		if strings.HasPrefix(m.Mountpoint, "/proc") || strings.HasPrefix(m.Mountpoint, "/sys") || m.FSType == "overlay" {
			t.Errorf("pseudo mount listed: %+v", m)
		}
	}
	for _, n := range st.Network {
		if n.Interface == "lo" {
			t.Errorf("loopback listed")
		}
		if n.RxBytesRate == nil {
			t.Errorf("%s: no rate after the first call's window", n.Interface)
		}
	}
	for _, d := range st.Disks {
		if strings.HasPrefix(d.Device, "loop") {
			t.Errorf("loop device listed")
		}
	}

	// The second call measures since the first, without waiting.
	start := time.Now()
	if st, err = src.System(context.Background()); err != nil || st.CPU == nil {
		t.Fatalf("second call: %v %+v", err, st)
	}
	if time.Since(start) > 40*time.Millisecond && st.RateSeconds < 0.04 {
		t.Errorf("second call waited again")
	}
}

func TestMountOf(t *testing.T) {
	parts := []disk.PartitionStat{{Mountpoint: "/"}, {Mountpoint: "/mnt/citadel-backup"}, {Mountpoint: "/mnt/citadel"}, {Mountpoint: "/opt"}}
	for path, want := range map[string]string{
		"/opt/citadel":               "/opt",
		"/mnt/citadel-backup/repo":   "/mnt/citadel-backup",
		"/mnt/citadel-backupx":       "/", // a name prefix is not a parent
		"/mnt/citadel":               "/mnt/citadel",
		"/mnt/citadel/models/active": "/mnt/citadel",
		"/":                          "/",
		"/var/lib":                   "/",
	} {
		if got := mountOf(path, parts); got != want {
			t.Errorf("mountOf(%s) = %s, want %s", path, got, want)
		}
	}
}

// statfs on a hung mount blocks in the kernel; the monitor gives up after
// its timeout and does not call it again while the first call is stuck.
func TestStatfsOnHungMount(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	s := newStatfser(30 * time.Millisecond)
	s.statfs = func(path string) (*disk.UsageStat, error) {
		calls.Add(1)
		<-release
		return &disk.UsageStat{Total: 100, Used: 50, Free: 50, UsedPercent: 50}, nil
	}
	if _, err := s.usage("/mnt/nfs"); err == nil || !strings.Contains(err.Error(), "no answer within") {
		t.Fatalf("hung statfs: %v", err)
	}
	if _, err := s.usage("/mnt/nfs"); err == nil || !strings.Contains(err.Error(), "still blocked") {
		t.Fatalf("second try while stuck: %v", err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d statfs calls on a hung mount, want 1", n)
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		u, err := s.usage("/mnt/nfs")
		if err == nil {
			if u.UsedPercent != 50 {
				t.Fatalf("usage %+v", u)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mount never came back: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStatfsErrors(t *testing.T) {
	s := newStatfser(time.Second)
	if _, err := s.usage("/nonexistent/citadel"); err != errAbsent {
		t.Fatalf("missing path: %v", err)
	}
	f := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.usage(f + "/below-a-file"); err == nil || err == errAbsent || !strings.HasPrefix(err.Error(), "monitor: statfs") {
		t.Fatalf("ENOTDIR: %v", err)
	}
}
