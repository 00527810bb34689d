package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSourcesOfPathsAndExcludes backs up files and globs under one label,
// as the seed's system source does, with excludes, and reads them back
// through restore and the mount at their absolute paths.
func TestSourcesOfPathsAndExcludes(t *testing.T) {
	needMount(t)
	dir := t.TempDir()
	host := filepath.Join(dir, "host") // stands for "/"
	files := map[string]string{
		"etc/fstab":                          "UUID=1 / ext4 defaults 0 1\n",
		"etc/modprobe.d/nvidia.conf":         "options nvidia NVreg_PreserveVideoMemoryAllocations=1\n",
		"etc/netplan/01-netcfg.yaml":         "network: {version: 2}\n",
		"etc/netplan/99-old.yaml.bak":        "stale\n",
		"etc/systemd/system/citadel-a.timer": "[Timer]\n",
		"etc/systemd/system/other.service":   "[Service]\n",
		"home/u/.bashrc":                     "alias ll='ls -l'\n",
		"home/u/.cache/CACHEDIR.TAG":         "Signature: 8a477f597d28d172789f06886806bc55\n",
		"home/u/.cache/pip/wheel.whl":        "big\n",
		"home/u/notes.swp":                   "swap\n",
	}
	for rel, c := range files {
		p := filepath.Join(host, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	exf := filepath.Join(dir, "excludes")
	os.WriteFile(exf, []byte("# editor swap files\n*.swp\n\n"), 0o644)
	repo := initRepo(t, dir)
	r := citadel(t, "snapshot", "--repo", repo,
		"--source", "system="+host+"/etc/fstab",
		"--source", "system="+host+"/etc/modprobe.d/nvidia.conf",
		"--source", "system="+host+"/etc/netplan/*.yaml",
		"--source", "system="+host+"/etc/systemd/system/citadel-*",
		"--source", "system="+host+"/etc/nothing-here-*",
		"--source", "home="+host+"/home/u",
		"--exclude-file", exf, "--exclude-caches")
	if r.code != 3 || !strings.Contains(r.stderr, "nothing-here-* matches nothing") {
		t.Fatalf("want exit 3 with a warning for the empty glob: %s", r)
	}
	out := restore(t, repo, "latest")
	want := map[string]bool{
		"system" + host + "/etc/fstab":                          true,
		"system" + host + "/etc/modprobe.d/nvidia.conf":         true,
		"system" + host + "/etc/netplan/01-netcfg.yaml":         true,
		"system" + host + "/etc/netplan/99-old.yaml.bak":        false,
		"system" + host + "/etc/systemd/system/citadel-a.timer": true,
		"system" + host + "/etc/systemd/system/other.service":   false,
		"home/.bashrc":              true,
		"home/.cache/CACHEDIR.TAG":  true,
		"home/.cache/pip/wheel.whl": false,
		"home/notes.swp":            false,
	}
	for rel, present := range want {
		_, err := os.Stat(filepath.Join(out, rel))
		if present != (err == nil) {
			t.Errorf("restored %s: present=%v, want %v", rel, err == nil, present)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(out, "system", host, "etc/fstab")); string(b) != files["etc/fstab"] {
		t.Fatalf("fstab restored as %q", b)
	}
	// Restoring the one label puts it at target/system/<absolute path>.
	one := restore(t, repo, "latest:system")
	if _, err := os.Stat(filepath.Join(one, "system", host, "etc/netplan/01-netcfg.yaml")); err != nil {
		t.Fatal(err)
	}

	mp := filepath.Join(dir, "mnt")
	m := startMount(t, repo, mp, fastMonitorConfig(t, dir))
	defer m.stop(t)
	b, err := os.ReadFile(filepath.Join(mp, "latest", "system", host, "etc/modprobe.d/nvidia.conf"))
	if err != nil || string(b) != files["etc/modprobe.d/nvidia.conf"] {
		t.Fatalf("through the mount: %q %v", b, err)
	}
	ents, err := os.ReadDir(filepath.Join(mp, "latest", "system", host, "etc"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "fstab,modprobe.d,netplan,systemd" {
		t.Fatalf("mount shows etc/ as %v", names)
	}
}

func TestSnapshotBadExcludeIsUsageError(t *testing.T) {
	dir := t.TempDir()
	repo := initRepo(t, dir)
	r := citadel(t, "snapshot", "--repo", repo, "--source", "d="+dir, "--exclude", "[oops")
	assertOneLineError(t, r, 2, "[oops")
	r = citadel(t, "snapshot", "--repo", repo, "--source", "d="+dir, "--exclude-file", filepath.Join(dir, "missing"))
	assertOneLineError(t, r, 2, "missing")
}
