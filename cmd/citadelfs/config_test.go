package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const seedFixture = "testdata/backup-config.yaml"

// The seed's file (reconstructed, see its header) is read key for key: the
// sources, retention and schedule get its values, and the keys without a
// meaning here each give their named warning.
func TestConfigSeedFile(t *testing.T) {
	c, err := loadConfig(seedFixture, true)
	if err != nil {
		t.Fatal(err)
	}
	if c.Repo != "/mnt/backup/citadel" || c.Sources["models"].Path != "/opt/models" || c.Sources["configs"].Path != "/etc/citadel" || c.Sources["logs"].Path != "/var/log/citadel" {
		t.Errorf("storage: repo %q sources %v", c.Repo, c.Sources)
	}
	if c.Retention != (retentionConfig{Daily: 7, Weekly: 4, Monthly: 12}) {
		t.Errorf("retention_policy: %+v", c.Retention)
	}
	want := map[string][]scheduleEntry{
		"models":  {{"daily", "0 2 * * *"}, {"weekly", "0 3 * * 0"}, {"monthly", "0 4 1 * *"}},
		"configs": {{"", "*/15 * * * *"}},
		"logs":    {{"", "0 * * * *"}},
	}
	for l, w := range want {
		got := c.Schedule[l]
		if len(got) != len(w) {
			t.Errorf("schedule %s: %v", l, got)
			continue
		}
		for i := range w {
			if got[i] != w[i] {
				t.Errorf("schedule %s[%d]: %v, want %v", l, i, got[i], w[i])
			}
		}
	}
	if !c.VerifyAfter || !c.TestRestore {
		t.Errorf("validation: verify %v test restore %v", c.VerifyAfter, c.TestRestore)
	}
	if c.ArchiveAfter != "90d" || c.Monitor.BackupStorageThreshold != 85 {
		t.Errorf("archive %q threshold %v", c.ArchiveAfter, c.Monitor.BackupStorageThreshold)
	}
	var names []string
	for _, w := range c.Warnings {
		if w.Line == 0 {
			t.Errorf("warning %s has no line", w.Name)
		}
		names = append(names, w.Name)
	}
	if got := strings.Join(names, " "); got != "compression_fixed compression_level_unused checksum_fixed retention_cleanup_no_alert" {
		t.Errorf("warnings: %s", got)
	}
	// Every warning name is documented.
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if !strings.Contains(string(doc), "`"+n+"`") {
			t.Errorf("warning %s not in docs/config.md", n)
		}
	}
}

// alerts: false turns the matching monitor rule off.
func TestConfigSeedAlertsOff(t *testing.T) {
	data, _ := os.ReadFile(seedFixture)
	s := strings.Replace(string(data), "backup_failure: true", "backup_failure: false", 1)
	s = strings.Replace(s, "    storage_threshold: true", "    storage_threshold: false", 1)
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte(s), 0o600)
	c, err := loadConfig(p, true)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Monitor.Thresholds.BackupFailed.Disabled || !c.Monitor.Thresholds.BackupStorage.Disabled {
		t.Errorf("rules not disabled: %+v %+v", c.Monitor.Thresholds.BackupFailed, c.Monitor.Thresholds.BackupStorage)
	}
}

var goTypeWords = regexp.MustCompile(`struct|map\[|\bint\b|float64|main\.|yaml\.|!!`)

func TestConfigErrors(t *testing.T) {
	seed, _ := os.ReadFile(seedFixture)
	cases := []struct {
		name, body, want string
	}{
		{"top-level typo", "retension:\n  daily: 3\n", `^F:1: unknown key "retension" \(did you mean "retention"\?\)$`},
		{"nested typo", "retention:\n  dialy: 3\n", `^F:2: unknown key "dialy" in retention \(did you mean "daily"\?\)$`},
		{"monitor typo", "monitor:\n  thresholds:\n    cpu:\n      treshold: 3\n", `^F:4: unknown key "treshold" in monitor.thresholds.cpu \(did you mean "threshold"\?\)$`},
		{"seed typo", strings.Replace(string(seed), "verify_after_backup", "verify_after_bakup", 1), `^F:31: unknown key "verify_after_bakup" in backup_config.validation \(did you mean "verify_after_backup"\?\)$`},
		{"no suggestion", "zzzzzz: 1\n", `^F:1: unknown key "zzzzzz"$`},
		{"wrong type", "retention:\n  daily: many\n", `^F:2: "many" is not a whole number$`},
		{"wrong bool", strings.Replace(string(seed), "verify_after_backup: true", "verify_after_backup: often", 1), `^F:31: "often" is not true or false$`},
		{"alerting typo", "alerting:\n  alertmanagers: [http://127.0.0.1:9093]\n", `^F:2: unknown key "alertmanagers" in alerting \(did you mean "alertmanager"\?\)$`},
		{"alerting bad url", "alerting:\n  webhook:\n    - http://ok.example/hook\n  alertmanager: [127.0.0.1:9093]\n", `^F:4: alerting: alertmanager\[0\] "127.0.0.1:9093" is not an http:// or https:// URL$`},
		{"alerting not under monitor", "monitor:\n  alerting:\n    webhook: [http://x/]\n", `^F:2: unknown key "alerting" in monitor`},
		{"bad schedule", "backup_config:\n  backup_schedule:\n    models:\n      daily: [1]\n", `^F:4: schedule "daily" must be a cron string`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			os.WriteFile(p, []byte(tc.body), 0o600)
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

func TestConfigCheckCommand(t *testing.T) {
	code, out, errOut := runCLI(t, "config", "check", "--config", seedFixture, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var e effectiveConfig
	if err := json.Unmarshal([]byte(out), &e); err != nil {
		t.Fatal(err)
	}
	if e.Repo != "/mnt/backup/citadel" || len(e.Schedule["models"]) != 3 || len(e.Warnings) != 4 || e.ParallelJobs != 4 || e.TempDir != "/tmp/citadel-backup" || !e.VerifyAfterBackup {
		t.Errorf("effective config: %+v", e)
	}
	code, out, _ = runCLI(t, "config", "check", "--config", seedFixture)
	if code != 0 || !strings.Contains(out, "schedule weekly   0 3 * * 0") || !strings.Contains(out, "warning compression_fixed:") {
		t.Errorf("text output (exit %d):\n%s", code, out)
	}

	am := filepath.Join(t.TempDir(), "alerting.yaml")
	os.WriteFile(am, []byte("alerting:\n  alertmanager: [http://127.0.0.1:9093]\n"), 0o600)
	code, out, _ = runCLI(t, "config", "check", "--config", am)
	if code != 0 || !strings.Contains(out, "alerting:    alertmanager http://127.0.0.1:9093; webhook none; resend every 1m0s") {
		t.Errorf("alerting in the text output (exit %d):\n%s", code, out)
	}

	p := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(p, []byte("retension:\n  daily: 3\nmountpiont: /x\n"), 0o600)
	code, out, errOut = runCLI(t, "config", "check", "--config", p)
	if code != exitUsage {
		t.Errorf("exit %d, want 2", code)
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if len(lines) != 2 || lines[0] != p+`:1: unknown key "retension" (did you mean "retention"?)` || lines[1] != p+`:3: unknown key "mountpiont" (did you mean "mountpoint"?)` {
		t.Errorf("stderr:\n%s", errOut)
	}
	if out != "" {
		t.Errorf("stdout on error: %q", out)
	}
	if code, _, _ := runCLI(t, "config", "check", "--config", filepath.Join(t.TempDir(), "none.yaml")); code != exitUsage {
		t.Errorf("missing file: exit %d", code)
	}
}
