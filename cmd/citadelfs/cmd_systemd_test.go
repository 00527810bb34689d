package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The generated units must call commands the way this CLI parses them
// (flags after the command name) and give every source its own timer.
func TestSystemdUnitsParse(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("repo: "+dir+"/repo\nsources:\n  configs: /opt/citadel/configs\n  models: /mnt/m\n"), 0o600)
	var out, errb bytes.Buffer
	if code := runMain(t.Context(), []string{"systemd", "--config", cfg, "--install", "--dir", dir, "--bin", "/usr/local/bin/citadelfs"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, n := range []string{"citadelfs-mount.service", "citadelfs-snapshot-configs.timer", "citadelfs-snapshot-models.service", "citadelfs-forget.timer", "citadelfs-check.service"} {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatalf("%s not written: %v", n, err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			exec, ok := strings.CutPrefix(line, "ExecStart=/usr/local/bin/citadelfs ")
			if !ok {
				continue
			}
			args := strings.Fields(exec)
			c, ok := commands[args[0]]
			if !ok {
				t.Fatalf("%s: unknown command in %q", n, line)
			}
			fs := newFlagSet(c, &globalFlags{})
			if err := fs.Parse(args[1:]); err != nil {
				t.Fatalf("%s: %q does not parse: %v", n, line, err)
			}
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "citadelfs-snapshot-configs.timer"))
	if !strings.Contains(string(b), "OnCalendar=*:0/15") {
		t.Fatalf("configs timer is not every 15 minutes:\n%s", b)
	}
}
