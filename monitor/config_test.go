package monitor

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// decode reads a config file the way cmd/citadelfs does: strict keys.
func decode(t *testing.T, text string) (Config, error) {
	t.Helper()
	var file struct {
		Monitor Config `yaml:"monitor"`
	}
	dec := yaml.NewDecoder(bytes.NewReader([]byte(text)))
	dec.KnownFields(true)
	err := dec.Decode(&file)
	return file.Monitor, err
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.WithDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Interval != time.Minute || c.HistoryDir != "/var/lib/citadelfs/monitor" || c.MetricsRetention != 30*24*time.Hour ||
		c.AlertRetention != 7*24*time.Hour || c.BackupStorageThreshold != 85 || c.HTTPTimeout != 5*time.Second {
		t.Fatalf("defaults %+v", c)
	}
	if len(c.Models) != 7 || c.Models["mixtral"] != 11400 || c.Models["vision"] != 11500 || c.Models["coder"] != 11405 {
		t.Fatalf("models %v", c.Models)
	}
	th := c.Thresholds
	for _, x := range []struct {
		name      string
		r         Rule
		threshold float64
		severity  string
	}{
		{"cpu", th.CPU, 90, SeverityWarning}, {"memory", th.Memory, 85, SeverityWarning}, {"storage", th.Storage, 85, SeverityWarning},
		{"gpu_memory", th.GPUMemory, 90, SeverityWarning}, {"gpu_temperature", th.GPUTemperature, 80, SeverityCritical},
		{"backup_storage", th.BackupStorage, 85, SeverityWarning}, {"model_unhealthy", th.ModelUnhealthy, 0, SeverityCritical},
		{"unit_failed", th.UnitFailed, 0, SeverityCritical}, {"backup_failed", th.BackupFailed, 0, SeverityCritical},
		{"backup_stale", th.BackupStale, 0, SeverityWarning},
	} {
		if x.r.Threshold != x.threshold || x.r.Severity != x.severity || x.r.For == nil || x.r.Clear > x.r.Threshold {
			t.Errorf("%s: %+v", x.name, x.r)
		}
	}
}

func TestConfigFromYAML(t *testing.T) {
	c, err := decode(t, `
monitor:
  interval: 30s
  backup_storage_threshold: 90
  models: {mixtral: 12400, phi3: 12403}
  paths: [/srv/models]
  systemd_units: [citadelfs-mount.service]
  thresholds:
    cpu: {threshold: 95, for: 10m}
    storage: {threshold: 80, clear: 70}
    model_unhealthy: {for: 0s}
    gpu_memory: {disabled: true}
    memory: {severity: critical}
`)
	if err != nil {
		t.Fatal(err)
	}
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	th := c.Thresholds
	switch {
	case c.Interval != 30*time.Second || len(c.Models) != 2 || c.Models["phi3"] != 12403 || len(c.Paths) != 1:
		t.Fatalf("config %+v", c)
	case th.CPU.Threshold != 95 || th.CPU.Clear != 90 || *th.CPU.For != 10*time.Minute:
		t.Fatalf("cpu %+v (clear keeps the default distance below a new threshold)", th.CPU)
	case th.Storage.Clear != 70 || *th.Storage.For != 0:
		t.Fatalf("storage %+v", th.Storage)
	case *th.ModelUnhealthy.For != 0:
		t.Fatalf("model_unhealthy for: 0s must mean at once, not the default")
	case th.BackupStorage.Threshold != 90:
		t.Fatalf("backup_storage_threshold not applied: %+v", th.BackupStorage)
	case th.Memory.Severity != SeverityCritical || th.Memory.Threshold != 85:
		t.Fatalf("memory %+v", th.Memory)
	}
	for _, r := range buildRules(c) {
		if r.name == RuleGPUMemoryHigh {
			t.Fatalf("disabled rule still evaluated")
		}
	}

	// An empty map or list means none, not the defaults.
	c, err = decode(t, "monitor:\n  models: {}\n  paths: []\n")
	if err != nil {
		t.Fatal(err)
	}
	if c = c.WithDefaults(); len(c.Models) != 0 || len(c.Paths) != 0 {
		t.Fatalf("models %v paths %v, want none", c.Models, c.Paths)
	}
}

func TestConfigMistakes(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"monitor:\n  thresholds:\n    cpu: {treshold: 95}\n", "field treshold not found"},
		{"monitor:\n  intervall: 5s\n", "field intervall not found"},
		{"monitor:\n  interval: 100ms\n", "interval 100ms is below 1s"},
		{"monitor:\n  models: {mixtral: 70000}\n", "port 70000 out of range"},
		{"monitor:\n  models: {\"a b\": 1}\n", "model name"},
		{"monitor:\n  paths: [relative/dir]\n", "not absolute"},
		{"monitor:\n  systemd_units: [\"--now\"]\n", "not a unit name"},
		{"monitor:\n  thresholds:\n    cpu: {threshold: 80, clear: 85}\n", "thresholds.cpu: clear 85 is above threshold 80"},
		{"monitor:\n  thresholds:\n    memory: {severity: page}\n", "thresholds.memory: severity"},
		{"monitor:\n  thresholds:\n    cpu: {for: -1m}\n", "negative duration"},
		{"monitor:\n  interval: soon\n", "cannot unmarshal"},
	} {
		cfg, err := decode(t, c.yaml)
		if err == nil {
			err = cfg.WithDefaults().Validate()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.yaml, err, c.want)
		}
	}
	if _, err := New(Options{Config: Config{Interval: time.Millisecond}}); err == nil || !strings.HasPrefix(err.Error(), "monitor: config:") {
		t.Errorf("New with a bad config: %v", err)
	}
}
