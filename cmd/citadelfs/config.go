package main

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"citadelfs/monitor"
)

const defaultConfigPath = "/etc/citadelfs/config.yaml"

// config is the configuration file. Both our own keys and the seed's
// backup-config.yaml layout (backup_config.storage.*) are accepted, so an
// operator can point --config at the file the old scripts used.
type config struct {
	// Repo is the repository directory.
	Repo string `yaml:"repo"`
	// Sources maps a label to a directory to snapshot.
	Sources map[string]string `yaml:"sources"`
	// Mountpoint for `citadelfs mount` (default /mnt/citadel-snapshots).
	Mountpoint string `yaml:"mountpoint"`
	// Retention for forget/prune.
	Retention retentionConfig `yaml:"retention"`
	// Monitor configures collectors, alert rules and history.
	Monitor monitor.Config `yaml:"monitor"`

	// BackupConfig is the seed's layout.
	BackupConfig struct {
		Storage struct {
			BackupRoot       string  `yaml:"backup_root"`
			SourceModels     string  `yaml:"source_models"`
			SourceConfigs    string  `yaml:"source_configs"`
			SourceLogs       string  `yaml:"source_logs"`
			StorageThreshold float64 `yaml:"storage_threshold"`
		} `yaml:"storage"`
		Retention retentionConfig `yaml:"retention"`
	} `yaml:"backup_config"`
	BackupRoot string `yaml:"backup_root"`
}

type retentionConfig struct {
	Daily   int `yaml:"daily"`
	Weekly  int `yaml:"weekly"`
	Monthly int `yaml:"monthly"`
	Yearly  int `yaml:"yearly"`
	Last    int `yaml:"last"`
}

// loadConfig reads path. A missing file at the default path is not an error
// (flags and the environment may say everything); a missing file the user
// named explicitly is. Parse errors carry the file and line.
func loadConfig(path string, explicit bool) (*config, error) {
	c := &config{}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return c.normalize(), nil
	}
	if err != nil {
		return nil, usagef("config: %v", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		// A TypeError lists one problem per line ("unmarshal errors:\n  line
		// 2: ..."); errors are one line each, so join them.
		var te *yaml.TypeError
		if errors.As(err, &te) {
			msg = strings.Join(te.Errors, "; ")
		}
		return nil, usagef("config %s: %s", path, msg)
	}
	return c.normalize(), nil
}

func (c *config) normalize() *config {
	st := c.BackupConfig.Storage
	if c.Repo == "" {
		c.Repo = st.BackupRoot
	}
	if c.Repo == "" {
		c.Repo = c.BackupRoot
	}
	if c.Sources == nil {
		c.Sources = map[string]string{}
	}
	for label, p := range map[string]string{"models": st.SourceModels, "configs": st.SourceConfigs, "logs": st.SourceLogs} {
		if p != "" {
			if _, ok := c.Sources[label]; !ok {
				c.Sources[label] = p
			}
		}
	}
	if c.Retention == (retentionConfig{}) {
		c.Retention = c.BackupConfig.Retention
	}
	if c.Retention == (retentionConfig{}) {
		c.Retention = retentionConfig{Daily: 7, Weekly: 4, Monthly: 12}
	}
	if c.Mountpoint == "" {
		c.Mountpoint = "/mnt/citadel-snapshots"
	}
	if st.StorageThreshold > 0 && c.Monitor.BackupStorageThreshold == 0 {
		c.Monitor.BackupStorageThreshold = st.StorageThreshold
	}
	return c
}

// sourceLabels returns the configured labels in order.
func (c *config) sourceLabels() []string {
	ls := make([]string, 0, len(c.Sources))
	for l := range c.Sources {
		ls = append(ls, l)
	}
	sort.Strings(ls)
	return ls
}

// config loads the configuration named by --config once per command.
func (env *cmdEnv) config() (*config, error) {
	if env.cfg != nil {
		return env.cfg, nil
	}
	explicit := env.flags != nil && env.flags.Changed("config")
	c, err := loadConfig(env.global.configPath, explicit)
	if err != nil {
		return nil, err
	}
	env.cfg = c
	return c, nil
}

// repoPath resolves --repo, then $CITADELFS_REPO, then the config file.
func (env *cmdEnv) repoPath() (string, error) {
	if env.global.repo != "" {
		return env.global.repo, nil
	}
	if r := os.Getenv("CITADELFS_REPO"); r != "" {
		return r, nil
	}
	c, err := env.config()
	if err != nil {
		return "", err
	}
	if c.Repo == "" {
		return "", usagef("no repository given: use --repo DIR, $CITADELFS_REPO or backup_root in %s", env.global.configPath)
	}
	return c.Repo, nil
}
