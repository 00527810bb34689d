package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// make install into a DESTDIR puts the binary, the example config (also as
// the config, once) and the units generated from it in place, the units
// naming the installed paths and not the staging tree; make uninstall
// removes what install wrote and keeps the config and hand-written units.
func TestMakeInstallUninstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	dest := t.TempDir()
	mk := func(target string) string {
		t.Helper()
		c := exec.Command("make", "-s", target, "DESTDIR="+dest, "PREFIX=/usr", "BIN="+citadelBin)
		c.Dir = ".."
		c.Env = append(testEnv(), "CGO_CFLAGS=-Wno-deprecated-declarations")
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("make %s: %v\n%s", target, err, out)
		}
		return string(out)
	}
	mk("install")
	bin := filepath.Join(dest, "usr/bin/citadelfs")
	if fi, err := os.Stat(bin); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("binary: %v %v", fi, err)
	}
	if r := runCmd(t, testEnv(), bin, "version"); r.code != 0 {
		t.Fatalf("installed binary: %s", r)
	}
	example, _ := os.ReadFile("../examples/config.yaml")
	for _, p := range []string{"etc/citadelfs/config.yaml.example", "etc/citadelfs/config.yaml"} {
		if b, err := os.ReadFile(filepath.Join(dest, p)); err != nil || string(b) != string(example) {
			t.Errorf("%s: %v", p, err)
		}
	}
	units := filepath.Join(dest, "etc/systemd/system")
	mount, err := os.ReadFile(filepath.Join(units, "citadelfs-mount.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mount), `ExecStart="/usr/bin/citadelfs" "mount" "--config" "/etc/citadelfs/config.yaml"`) || strings.Contains(string(mount), dest) {
		t.Errorf("mount unit names the wrong paths:\n%s", mount)
	}
	if _, err := os.Stat(filepath.Join(units, "citadelfs-snapshot-models-weekly.timer")); err != nil {
		t.Errorf("example's models schedule: %v", err)
	}

	// The operator's config survives a reinstall, and its units follow it.
	cfg := filepath.Join(dest, "etc/citadelfs/config.yaml")
	mine := "repo: /srv/backup\nsources:\n  data: /srv/data\n"
	os.WriteFile(cfg, []byte(mine), 0o644)
	mk("install")
	if b, _ := os.ReadFile(cfg); string(b) != mine {
		t.Fatalf("install overwrote the config:\n%s", b)
	}
	if _, err := os.Stat(filepath.Join(units, "citadelfs-snapshot-models-weekly.timer")); err == nil {
		t.Error("units of the example's sources kept after the reinstall")
	}
	if _, err := os.Stat(filepath.Join(units, "citadelfs-snapshot-data-daily.service")); err != nil {
		t.Errorf("units of the new config: %v", err)
	}

	own := filepath.Join(units, "citadelfs-local.service")
	os.WriteFile(own, []byte("[Service]\nExecStart=/bin/true\n"), 0o644)
	wants := filepath.Join(units, "timers.target.wants")
	os.MkdirAll(wants, 0o755)
	os.Symlink("../citadelfs-snapshot-data-daily.timer", filepath.Join(wants, "citadelfs-snapshot-data-daily.timer"))
	mk("uninstall")
	left, _ := filepath.Glob(filepath.Join(units, "citadelfs-*"))
	if len(left) != 1 || left[0] != own {
		t.Errorf("after uninstall: %v", left)
	}
	if _, err := os.Lstat(filepath.Join(wants, "citadelfs-snapshot-data-daily.timer")); err == nil {
		t.Error("enablement link kept")
	}
	for _, p := range []string{"usr/bin/citadelfs", "etc/citadelfs/config.yaml.example"} {
		if _, err := os.Stat(filepath.Join(dest, p)); err == nil {
			t.Errorf("%s kept", p)
		}
	}
	if b, _ := os.ReadFile(cfg); string(b) != mine {
		t.Error("uninstall touched the config")
	}
}
