package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"citadelfs/snapshot"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The long form of a source feeds the same SourceSpec the command line
// builds; the short form stays a directory source.
func TestConfigSourceLongForm(t *testing.T) {
	p := writeConfig(t, `sources:
  models: /opt/models
  glob: /etc/netplan/*.yaml
  system:
    paths: [/etc/fstab, "/etc/netplan/*.yaml"]
    exclude: ["*.swp", /etc/skip]
    exclude_caches: true
    one_file_system: true
    retention: {within: 30d, hourly: 24}
retention: {hourly: 24, daily: 3}
`)
	c, err := loadConfig(p, true)
	if err != nil {
		t.Fatal(err)
	}
	got := c.Sources["system"].spec("system")
	want := snapshot.SourceSpec{Label: "system", Paths: []string{"/etc/fstab", "/etc/netplan/*.yaml"},
		Excludes: []string{"*.swp", "/etc/skip"}, ExcludeCaches: true, OneFileSystem: true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("system spec %+v, want %+v", got, want)
	}
	if got := c.Sources["models"].spec("models"); !reflect.DeepEqual(got, snapshot.SourceSpec{Label: "models", Path: "/opt/models"}) {
		t.Errorf("models spec %+v", got)
	}
	if got := c.Sources["glob"].spec("glob"); got.Path != "" || len(got.Paths) != 1 {
		t.Errorf("a glob in the short form is a source of paths: %+v", got)
	}
	if c.Retention != (retentionConfig{Hourly: 24, Daily: 3}) {
		t.Errorf("retention %+v", c.Retention)
	}
	pol, err := c.policies()
	if err != nil {
		t.Fatal(err)
	}
	if p := pol("system"); p.Hourly != 24 || p.Daily != 0 || p.Within != (snapshot.Span{Days: 30}) {
		t.Errorf("system's own policy: %+v", p)
	}
	if p := pol("models"); p.Hourly != 24 || p.Daily != 3 || !p.Within.IsZero() {
		t.Errorf("models gets the global policy: %+v", p)
	}
	if p := pol("gone"); p.Daily != 3 {
		t.Errorf("a label no longer configured gets the global policy: %+v", p)
	}
}

func TestConfigSourceErrors(t *testing.T) {
	cases := []struct{ name, body, want string }{
		{"unknown key in a source", "sources:\n  system:\n    paths: [/etc/fstab]\n    excludes: [x]\n", `^F:4: unknown key "excludes" in sources.system \(did you mean "exclude"\?\)$`},
		{"no path", "sources:\n  system:\n    exclude: [x]\n", `^F:2: source system: no path`},
		{"both", "sources:\n  s:\n    path: /a\n    paths: [/b]\n", `^F:2: source s: give path: or paths:, not both$`},
		{"relative", "sources:\n  s: opt/models\n", `^F:2: source s: path "opt/models" is not absolute$`},
		{"bad glob", "sources:\n  s:\n    paths: [\"/etc/[x\"]\n", `^F:2: source s: path "/etc/\[x": syntax error in pattern$`},
		{"bad exclude", "sources:\n  s:\n    path: /a\n    exclude: [\"[x\"]\n", `^F:2: source s: .*\[x`},
		{"paths not a list", "sources:\n  s:\n    paths: 7\n", `^F:3: "7" is not a list$`},
		{"bad within", "retention: {within: 30 days}\n", `^F:1: retention: within "30 days"`},
		{"bad archive_threshold", "backup_config:\n  retention_policy:\n    archive_threshold: 90 days\n", `^F:3: archive_threshold: within "90 days"`},
		{"parallel_jobs 0", "backup_config:\n  compression:\n    parallel_jobs: 0\n", `^F:3: compression.parallel_jobs 0: want 1 to 256$`},
		{"bad unit", "retention: {within: 30s}\n", `^F:1: retention: within "30s": unknown unit "s"`},
		{"negative hourly in a source", "sources:\n  s:\n    path: /a\n    retention: {hourly: -1}\n", `^F:2: source s: retention: keep hourly -1`},
		{"retention typo in a source", "sources:\n  s:\n    path: /a\n    retention: {hourley: 1}\n", `^F:4: unknown key "hourley" in sources.s.retention \(did you mean "hourly"\?\)$`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := writeConfig(t, tc.body)
			_, err := loadConfig(p, true)
			if err == nil {
				t.Fatal("accepted")
			}
			if exitCode(err) != exitUsage {
				t.Errorf("exit %d", exitCode(err))
			}
			msg := strings.ReplaceAll(err.Error(), p, "F")
			if !regexp.MustCompile(tc.want).MatchString(msg) {
				t.Errorf("error %q, want %s", msg, tc.want)
			}
			if goTypeWords.MatchString(msg) {
				t.Errorf("error names Go types: %q", msg)
			}
		})
	}
}

// The example config (installed as /etc/citadelfs/config.yaml) passes and
// ships the seed's system source.
func TestExampleConfig(t *testing.T) {
	c, err := loadConfig("../../examples/config.yaml", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %+v", c.Warnings)
	}
	sys := c.Sources["system"]
	for _, p := range []string{"/etc/fstab", "/etc/modprobe.d/nvidia.conf", "/etc/netplan/*.yaml", "/etc/systemd/system/citadel-*", "/root/.bashrc"} {
		found := false
		for _, q := range sys.Paths {
			found = found || q == p
		}
		if !found {
			t.Errorf("system source lacks %s: %v", p, sys.Paths)
		}
	}
	pol, err := c.policies()
	if err != nil {
		t.Fatal(err)
	}
	// The seed kept every 15-minute config copy for 30 days.
	if p := pol("configs"); p.Within != (snapshot.Span{Days: 30}) {
		t.Errorf("configs retention %+v", p)
	}
	if len(c.Schedule["system"]) != 1 {
		t.Errorf("system has no schedule: %v", c.Schedule)
	}
}
