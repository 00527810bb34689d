package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestConfigLongFormSource backs up the seed's system source as the example
// config writes it (paths and globs, exclude:, exclude_caches:) from the
// config file alone, then by its label alone, as the generated units run it.
func TestConfigLongFormSource(t *testing.T) {
	dir := t.TempDir()
	host := filepath.Join(dir, "host") // stands for "/"
	files := map[string]string{
		"etc/fstab":                          "UUID=1 / ext4 defaults 0 1\n",
		"etc/modprobe.d/nvidia.conf":         "options nvidia NVreg_PreserveVideoMemoryAllocations=1\n",
		"etc/netplan/01-netcfg.yaml":         "network: {version: 2}\n",
		"etc/netplan/01-netcfg.yaml.bak":     "old\n",
		"etc/systemd/system/citadel-a.timer": "[Timer]\n",
		"etc/systemd/system/other.service":   "[Service]\n",
		"root/.bashrc":                       "alias ll='ls -l'\n",
		"root/.cache/CACHEDIR.TAG":           "Signature: 8a477f597d28d172789f06886806bc55\n",
		"root/.cache/pip/wheel.whl":          "big\n",
		"root/.bashrc.swp":                   "swap\n",
		"models/m.bin":                       "weights\n",
	}
	for rel, c := range files {
		p := filepath.Join(host, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repo := initRepo(t, dir)
	cfg := filepath.Join(dir, "config.yaml")
	body := fmt.Sprintf(`repo: %[1]s
sources:
  models: %[2]s/models
  system:
    paths:
      - %[2]s/etc/fstab
      - %[2]s/etc/modprobe.d/nvidia.conf
      - %[2]s/etc/netplan/*
      - %[2]s/etc/systemd/system/citadel-*
      - %[2]s/root
    exclude: ["*.swp", "*.bak"]
    exclude_caches: true
`, repo, host)
	os.WriteFile(cfg, []byte(body), 0o644)

	s := takeSnapshot(t, "", "--config", cfg)
	if len(s.Sources) != 2 {
		t.Fatalf("sources %v", s.Sources)
	}
	want := map[string]bool{
		"system" + host + "/etc/fstab":                          true,
		"system" + host + "/etc/modprobe.d/nvidia.conf":         true,
		"system" + host + "/etc/netplan/01-netcfg.yaml":         true,
		"system" + host + "/etc/netplan/01-netcfg.yaml.bak":     false,
		"system" + host + "/etc/systemd/system/citadel-a.timer": true,
		"system" + host + "/etc/systemd/system/other.service":   false,
		"system" + host + "/root/.bashrc":                       true,
		"system" + host + "/root/.bashrc.swp":                   false,
		"system" + host + "/root/.cache/CACHEDIR.TAG":           true,
		"system" + host + "/root/.cache/pip/wheel.whl":          false,
		"models/m.bin": true,
	}
	check := func(out string) {
		t.Helper()
		for rel, present := range want {
			_, err := os.Stat(filepath.Join(out, rel))
			if present != (err == nil) {
				t.Errorf("restored %s: present=%v, want %v", rel, err == nil, present)
			}
		}
		if b, _ := os.ReadFile(filepath.Join(out, "system", host, "etc/fstab")); string(b) != files["etc/fstab"] {
			t.Errorf("fstab restored as %q", b)
		}
	}
	check(restore(t, repo, s.ID))

	// --source LABEL alone takes the configured source with its excludes.
	os.WriteFile(filepath.Join(host, "etc/fstab"), []byte("changed\n"), 0o644)
	s2 := takeSnapshot(t, "", "--config", cfg, "--source", "system")
	if len(s2.Sources) != 1 || s2.Sources["system"].Files == 0 {
		t.Fatalf("--source system: %+v", s2.Sources)
	}
	out := restore(t, repo, s2.ID)
	for rel, present := range want {
		if strings.HasPrefix(rel, "system") {
			if _, err := os.Stat(filepath.Join(out, rel)); present != (err == nil) {
				t.Errorf("--source system: restored %s: present=%v, want %v", rel, err == nil, present)
			}
		}
	}
	if b, _ := os.ReadFile(filepath.Join(out, "system", host, "etc/fstab")); string(b) != "changed\n" {
		t.Errorf("fstab restored as %q", b)
	}

	r := citadel(t, "snapshot", "--config", cfg, "--source", "nosuch")
	assertOneLineError(t, r, 2, `no source "nosuch"`)
	r = citadel(t, "snapshot", "--config", cfg, "--source", "system", "--source", "system="+host)
	assertOneLineError(t, r, 2, "configured source")
}

// TestForgetPerSourceRetention: retention under a source replaces the
// global one for that source's snapshots (the seed's every-15-minutes
// configs kept within a span), and hourly: is accepted (it was exit 2).
func TestForgetPerSourceRetention(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for _, d := range []string{"models", "configs"} {
		os.MkdirAll(filepath.Join(src, d), 0o755)
		os.WriteFile(filepath.Join(src, d, "f"), []byte(d), 0o644)
	}
	repo := initRepo(t, dir)
	cfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`repo: %[1]s
sources:
  models: %[2]s/models
  configs:
    path: %[2]s/configs
    retention: {within: 1d}
retention: {hourly: 24}
`, repo, src)), 0o644)
	ids := map[string]string{}
	for _, s := range []struct{ label, at string }{
		{"configs", "2026-11-01T00:00:00Z"}, {"configs", "2026-11-02T00:00:00Z"},
		{"configs", "2026-11-02T12:00:00Z"}, {"configs", "2026-11-03T00:00:00Z"},
		{"models", "2026-11-01T00:00:00Z"}, {"models", "2026-11-03T00:10:00Z"}, {"models", "2026-11-03T00:20:00Z"},
	} {
		ids[s.label+" "+s.at] = takeSnapshot(t, "", "--config", cfg, "--source", s.label, "--time", s.at).ID
	}
	r := mustCitadel(t, "forget", "--config", cfg)
	if !strings.Contains(r.stdout, "removed 2 snapshots") || !strings.Contains(r.stdout, "within 1d") || !strings.Contains(r.stdout, "hourly") {
		t.Fatalf("forget:\n%s", r)
	}
	left := map[string]bool{}
	for _, s := range listSnapshots(t, repo) {
		left[s.ID] = true
	}
	for k, id := range ids {
		gone := k == "configs 2026-11-01T00:00:00Z" || k == "models 2026-11-03T00:10:00Z"
		if left[id] == gone {
			t.Errorf("%s: kept=%v, want %v", k, left[id], !gone)
		}
	}
	// The same from the command line: --keep-within.
	r = mustCitadel(t, "forget", "--repo", repo, "--keep-within", "1h", "--dry-run")
	if !strings.Contains(r.stdout, "would remove 3 snapshots") {
		t.Fatalf("--keep-within 1h:\n%s", r)
	}
	assertOneLineError(t, citadel(t, "forget", "--repo", repo, "--keep-within", "30s"), 2, `unknown unit "s"`)
}

// TestSnapshotRecordsSystem: the manifest records what the host ran, and
// snapshots --json shows it.
func TestSnapshotRecordsSystem(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644)
	repo := initRepo(t, dir)
	takeSnapshot(t, repo, "--source", "d="+filepath.Join(dir, "f"))
	r := mustCitadel(t, "snapshots", "--repo", repo, "--json")
	var list []struct {
		Host   string `json:"host"`
		System *struct {
			Kernel       string `json:"kernel"`
			OSRelease    string `json:"os_release"`
			NVIDIADriver string `json:"nvidia_driver"`
			CUDA         string `json:"cuda"`
		} `json:"system"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 {
		t.Fatalf("%v\n%s", err, r)
	}
	var u unix.Utsname
	unix.Uname(&u)
	host, _ := os.Hostname()
	s := list[0]
	if s.Host != host || s.System == nil || s.System.Kernel != unix.ByteSliceToString(u.Release[:]) {
		t.Fatalf("snapshots --json: %s", r.stdout)
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil && strings.Contains(string(b), "PRETTY_NAME") && s.System.OSRelease == "" {
		t.Errorf("no os_release: %s", r.stdout)
	}
	// The driver as the kernel module reports it, where there is one.
	if b, err := os.ReadFile("/proc/driver/nvidia/version"); err == nil {
		if s.System.NVIDIADriver == "" || !strings.Contains(string(b), s.System.NVIDIADriver) {
			t.Errorf("driver %q, /proc says %s", s.System.NVIDIADriver, b)
		}
	} else if s.System.NVIDIADriver != "" {
		t.Errorf("a driver without /proc/driver/nvidia: %s", r.stdout)
	}
	t.Logf("recorded: %+v", *s.System)
}

// TestForgetTagsArchive: forget gives the snapshots it keeps that are older
// than archive_threshold the tag "archive" (a new manifest, same data),
// and leaves newer ones alone.
func TestForgetTagsArchive(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "f"), []byte("weights"), 0o644)
	repo := initRepo(t, dir)
	cfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("repo: %s\nsources:\n  models: %s\nretention: {last: 10}\nbackup_config:\n  retention_policy:\n    archive_threshold: 30d\n", repo, src)), 0o644)
	now := time.Now().UTC()
	old := takeSnapshot(t, "", "--config", cfg, "--time", now.AddDate(0, -2, 0).Format(time.RFC3339), "--tag", "monthly")
	recent := takeSnapshot(t, "", "--config", cfg, "--time", now.AddDate(0, 0, -1).Format(time.RFC3339))

	r := mustCitadel(t, "forget", "--config", cfg, "--dry-run")
	if !strings.Contains(r.stdout, `would remove 0 snapshots and tag 1 older than archive_threshold 30d "archive"`) {
		t.Fatalf("dry run:\n%s", r)
	}
	if s := listSnapshots(t, repo); len(s) != 2 || len(s[0].Tags)+len(s[1].Tags) != 1 {
		t.Fatalf("a dry run changed the snapshots: %+v", s)
	}
	r = mustCitadel(t, "forget", "--config", cfg)
	if !strings.Contains(r.stdout, "tagged archive "+old.ID[:8]) {
		t.Fatalf("forget:\n%s", r)
	}
	byTime := map[bool]snapInfo{}
	for _, s := range listSnapshots(t, repo) {
		byTime[s.ID == recent.ID] = s
	}
	a, ok := byTime[false]
	if !ok || a.ID == old.ID || strings.Join(a.Tags, ",") != "monthly,archive" || len(byTime[true].Tags) != 0 {
		t.Fatalf("after forget: %+v", byTime)
	}
	out := restore(t, repo, a.ID)
	if b, _ := os.ReadFile(filepath.Join(out, "models", "f")); string(b) != "weights" {
		t.Fatalf("the archived snapshot restores %q", b)
	}
	// Once tagged, nothing more to do.
	if r := mustCitadel(t, "forget", "--config", cfg); strings.Contains(r.stdout, "tagged") {
		t.Fatalf("second forget tagged again:\n%s", r)
	}
	mustCitadel(t, "check", "--repo", repo, "--read-data")
}
