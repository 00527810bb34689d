package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"citadelfs/index"
	"citadelfs/monitor"
	"citadelfs/snapshot"
)

const defaultConfigPath = "/etc/citadelfs/config.yaml"

// config is the configuration file. Both our own keys and the seed's
// backup-config.yaml layout (backup_config.*) are accepted, so an operator
// can point --config at the file the old scripts used. Every key of the
// seed's file is read with a meaning or gives a named warning (docs/config.md
// lists them); an unknown key is an error with its file and line.
type config struct {
	// Repo is the repository directory, or s3://bucket/prefix.
	Repo string `yaml:"repo"`
	// S3 says how to reach an s3:// repository; CacheDir is where its
	// index is cached (docs/s3.md).
	S3       s3Config `yaml:"s3"`
	CacheDir string   `yaml:"cache_dir"`
	// BlobCacheSize bounds the on-disk cache of blobs reads fetched from
	// an s3:// repository ("2GiB"; "0" keeps none).
	BlobCacheSize string `yaml:"blob_cache_size"`
	// Encryption is what init makes without --encryption: aes-256-gcm
	// (the default) or none (docs/encryption.md). PasswordFile holds the
	// passphrase of an encrypted repository; the generated systemd units
	// load it as the credential citadelfs-password.
	Encryption   string `yaml:"encryption"`
	PasswordFile string `yaml:"password_file"`
	// Copy names the repository `citadelfs copy` copies to by default,
	// and when its systemd timer runs (docs/s3.md "Copy").
	Copy copyConfig `yaml:"copy"`
	// Sources maps a label to a directory, or to the long form with
	// paths, excludes and a retention of its own (config_sources.go).
	Sources map[string]sourceConfig `yaml:"sources"`
	// Mountpoint for `citadelfs mount` (default /mnt/citadel-snapshots).
	Mountpoint string `yaml:"mountpoint"`
	// Retention for forget/prune.
	Retention retentionConfig `yaml:"retention"`
	// Monitor configures collectors, alert rules and history.
	Monitor monitor.Config `yaml:"monitor"`
	// Alerting is where the running monitor (mount, monitor) sends its
	// alerts: Alertmanager and webhooks (docs/monitor.md).
	Alerting monitor.AlertingConfig `yaml:"alerting"`
	// OwnSchedule is backup_config.backup_schedule in our own layout:
	// label to a cron string or tag: cron pairs (docs/systemd.md).
	OwnSchedule map[string]cronSpec `yaml:"schedule"`
	// Timers are the cron times of the maintenance timers (docs/systemd.md;
	// empty: the defaults).
	Timers struct {
		Forget      string `yaml:"forget"`
		Check       string `yaml:"check"`
		TestRestore string `yaml:"test_restore"`
	} `yaml:"timers"`

	// BackupConfig is the seed's layout.
	BackupConfig seedConfig `yaml:"backup_config"`
	BackupRoot   string     `yaml:"backup_root"`

	// Filled by normalize from the seed's keys.
	Schedule     map[string][]scheduleEntry `yaml:"-"`
	VerifyAfter  bool                       `yaml:"-"`
	TestRestore  bool                       `yaml:"-"`
	ArchiveAfter string                     `yaml:"-"`
	TempDir      string                     `yaml:"-"` // where test-restore restores (storage.temp_dir)
	ParallelJobs int                        `yaml:"-"` // snapshot workers (compression.parallel_jobs; 0: the default, 2)
	Warnings     []configWarning            `yaml:"-"`
}

// seedConfig is the seed's backup-config.yaml, key for key.
type seedConfig struct {
	Version any `yaml:"version"`
	Storage struct {
		BackupRoot       string  `yaml:"backup_root"`
		SourceModels     string  `yaml:"source_models"`
		SourceConfigs    string  `yaml:"source_configs"`
		SourceLogs       string  `yaml:"source_logs"`
		TempDir          string  `yaml:"temp_dir"`
		StorageThreshold float64 `yaml:"storage_threshold"`
	} `yaml:"storage"`
	Retention       retentionConfig `yaml:"retention"`
	RetentionPolicy struct {
		DailyBackups     int    `yaml:"daily_backups"`
		WeeklyBackups    int    `yaml:"weekly_backups"`
		MonthlyBackups   int    `yaml:"monthly_backups"`
		ArchiveThreshold string `yaml:"archive_threshold"`
	} `yaml:"retention_policy"`
	ArchiveThreshold string `yaml:"archive_threshold"`
	// BackupSchedule maps a source label to one cron string, or to
	// tag: cron pairs (models: {daily: "0 2 * * *", weekly: ...}).
	BackupSchedule map[string]cronSpec `yaml:"backup_schedule"`
	Compression    struct {
		Algorithm    string `yaml:"algorithm"`
		Level        int    `yaml:"level"`
		ParallelJobs int    `yaml:"parallel_jobs"`
	} `yaml:"compression"`
	Validation struct {
		ChecksumAlgorithm  string `yaml:"checksum_algorithm"`
		VerifyAfterBackup  bool   `yaml:"verify_after_backup"`
		TestRestoreMonthly bool   `yaml:"test_restore_monthly"`
	} `yaml:"validation"`
	Alerts struct {
		BackupFailure    *bool `yaml:"backup_failure"`
		StorageThreshold *bool `yaml:"storage_threshold"`
		RetentionCleanup *bool `yaml:"retention_cleanup"`
	} `yaml:"alerts"`
}

// cronSpec is one cron string or a map of tag to cron string.
type cronSpec struct {
	entries []scheduleEntry
}

// scheduleEntry is one timer of a source: a cron string and the tag its
// snapshots get ("" for none).
type scheduleEntry struct {
	Tag  string `json:"tag,omitempty"`
	Cron string `json:"cron"`
}

func (c *cronSpec) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		c.entries = []scheduleEntry{{Cron: n.Value}}
		return nil
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: schedule %q must be a cron string like \"0 2 * * *\"", v.Line, k.Value)
			}
			c.entries = append(c.entries, scheduleEntry{Tag: k.Value, Cron: v.Value})
		}
		return nil
	}
	return fmt.Errorf("line %d: a schedule is a cron string or a map of tag: cron string", n.Line)
}

type retentionConfig struct {
	Last    int `yaml:"last" json:"last,omitempty"`
	Hourly  int `yaml:"hourly" json:"hourly,omitempty"`
	Daily   int `yaml:"daily" json:"daily,omitempty"`
	Weekly  int `yaml:"weekly" json:"weekly,omitempty"`
	Monthly int `yaml:"monthly" json:"monthly,omitempty"`
	Yearly  int `yaml:"yearly" json:"yearly,omitempty"`
	// Within keeps every snapshot newer than this span before the newest
	// one (30d, 2w, 12h, 1y6m): see snapshot.ParseWithin.
	Within string `yaml:"within" json:"within,omitempty"`
}

// describe is r for config check: "within 30d, hourly 24, daily 7".
func (r retentionConfig) describe() string {
	var parts []string
	if r.Within != "" {
		parts = append(parts, "within "+r.Within)
	}
	for _, f := range []struct {
		name string
		n    int
	}{{"last", r.Last}, {"hourly", r.Hourly}, {"daily", r.Daily}, {"weekly", r.Weekly}, {"monthly", r.Monthly}, {"yearly", r.Yearly}} {
		if f.n != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", f.name, f.n))
		}
	}
	if len(parts) == 0 {
		return "keep nothing by age"
	}
	return strings.Join(parts, ", ")
}

// policy is the snapshot.Policy of r, or why it is not one.
func (r retentionConfig) policy() (snapshot.Policy, error) {
	p := snapshot.Policy{Last: r.Last, Hourly: r.Hourly, Daily: r.Daily, Weekly: r.Weekly, Monthly: r.Monthly, Yearly: r.Yearly}
	if r.Within != "" {
		w, err := snapshot.ParseWithin(r.Within)
		if err != nil {
			return p, err
		}
		p.Within = w
	}
	return p, p.Validate()
}

// configWarning is a key that is read but has no effect here, or a value
// adjusted. Name is stable and documented in docs/config.md.
type configWarning struct {
	Name    string `json:"name"`
	Key     string `json:"key"`
	Line    int    `json:"line,omitempty"`
	Message string `json:"message"`
}

// configErrors are all the problems of one file, each "FILE:LINE: ...".
type configErrors []string

func (e configErrors) Error() string {
	if len(e) == 1 {
		return e[0]
	}
	return fmt.Sprintf("%s (and %d more: run citadelfs config check)", e[0], len(e)-1)
}

// loadConfig reads path. A missing file at the default path is not an error
// (flags and the environment may say everything); a missing file the user
// named explicitly is. Parse errors carry the file and line.
func loadConfig(path string, explicit bool) (*config, error) {
	c := &config{}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return c.normalize(nil), nil
	}
	if err != nil {
		return nil, usagef("config: %v", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
			return nil, usageError{configErrors{fmt.Sprintf("%s:%s: %s", path, m[1], m[2])}.Error()}
		}
		return nil, usagef("%s: %s", path, msg)
	}
	var errs configErrors
	if len(root.Content) > 0 {
		checkKeys(path, root.Content[0], reflect.TypeOf(*c), "", &errs)
	}
	if len(errs) == 0 && len(root.Content) > 0 {
		if err := root.Decode(c); err != nil {
			var te *yaml.TypeError
			if errors.As(err, &te) {
				for _, m := range te.Errors {
					errs = append(errs, friendlyTypeError(path, m))
				}
			} else {
				errs = append(errs, friendlyTypeError(path, err.Error()))
			}
		}
	}
	if len(errs) == 0 {
		errs = checkLabels(path, &root)
	}
	if len(errs) == 0 {
		errs = checkSources(path, &root, c)
	}
	if n := nodeAt(&root, "backup_config.compression.parallel_jobs"); len(errs) == 0 && n != nil && (c.BackupConfig.Compression.ParallelJobs < 1 || c.BackupConfig.Compression.ParallelJobs > 256) {
		errs = append(errs, fmt.Sprintf("%s:%d: compression.parallel_jobs %d: want 1 to 256", path, n.Line, c.BackupConfig.Compression.ParallelJobs))
	}
	for _, key := range []string{"backup_config.archive_threshold", "backup_config.retention_policy.archive_threshold"} {
		if n := nodeAt(&root, key); len(errs) == 0 && n != nil {
			if _, err := snapshot.ParseWithin(n.Value); err != nil {
				errs = append(errs, fmt.Sprintf("%s:%d: archive_threshold: %v", path, n.Line, err))
			}
		}
	}
	if n := nodeAt(&root, "encryption"); len(errs) == 0 && n != nil && c.Encryption != index.EncryptionAESGCM && c.Encryption != index.EncryptionNone {
		errs = append(errs, fmt.Sprintf("%s:%d: encryption %q: want %s or %s", path, n.Line, c.Encryption, index.EncryptionAESGCM, index.EncryptionNone))
	}
	if n := nodeAt(&root, "password_file"); len(errs) == 0 && n != nil && !filepath.IsAbs(c.PasswordFile) {
		errs = append(errs, fmt.Sprintf("%s:%d: password_file %q: want an absolute path (the systemd units load it)", path, n.Line, c.PasswordFile))
	}
	if len(errs) == 0 {
		if _, err := c.Retention.policy(); err != nil {
			errs = append(errs, fmt.Sprintf("%s:%d: retention: %v", path, keyLine(&root, "retention"), err))
		}
	}
	if len(errs) == 0 {
		if err := c.Alerting.Validate(); err != nil {
			// The line of the key the error names, else of alerting:.
			line := keyLine(&root, "alerting")
			key, _, _ := strings.Cut(err.Error(), "[")
			key, _, _ = strings.Cut(key, " ")
			if l := keyLine(&root, "alerting."+key); l > 0 {
				line = l
			}
			errs = append(errs, fmt.Sprintf("%s:%d: alerting: %v", path, line, err))
		}
	}
	if len(errs) > 0 {
		return nil, usageError{errs.Error()}.withList(errs)
	}
	return c.normalize(&root), nil
}

// configUsageError is a usage error (exit 2) that keeps every line for
// config check.
type configUsageError struct {
	usageError
	list configErrors
}

func (e usageError) withList(l configErrors) error { return configUsageError{e, l} }

func (e configUsageError) Unwrap() error { return e.usageError }

var (
	yamlLineRe = regexp.MustCompile(`^line (\d+): (.*)$`)
	typeErrRe  = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+) `(.*)` into (.+)$")
)

// friendlyTypeError turns yaml.v3's "line 3: cannot unmarshal !!str `x`
// into int" into "FILE:3: "x" is not a whole number", without Go types.
func friendlyTypeError(path, msg string) string {
	msg = strings.TrimPrefix(msg, "yaml: ")
	if m := typeErrRe.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("%s:%s: %q is not %s", path, m[1], m[3], kindWords(m[4]))
	}
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("%s:%s: %s", path, m[1], m[2])
	}
	return path + ": " + msg
}

func kindWords(goType string) string {
	switch {
	case goType == "time.Duration":
		return "a duration like 30s or 5m"
	case strings.HasPrefix(goType, "int") || strings.HasPrefix(goType, "uint"):
		return "a whole number"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "bool" || goType == "*bool":
		return "true or false"
	case goType == "string":
		return "a string"
	case strings.HasPrefix(goType, "map") || strings.HasPrefix(goType, "struct") || strings.Contains(goType, "."):
		return "a mapping of keys"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	}
	return "of the expected kind"
}

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

// checkKeys walks n against t's yaml tags and records every key t has no
// field for, with its line and the nearest known key.
func checkKeys(path string, n *yaml.Node, t reflect.Type, prefix string, errs *configErrors) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if reflect.PointerTo(t).Implements(keyedUnmarshalerType) {
		if n.Kind != yaml.MappingNode {
			return
		}
		t = reflect.New(t).Interface().(keyedUnmarshaler).yamlKeys()
	} else if reflect.PointerTo(t).Implements(unmarshalerType) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode || t == reflect.TypeOf(time.Time{}) {
			return
		}
		fields := map[string]reflect.Type{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			fields[name] = f.Type
			names = append(names, name)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				msg := fmt.Sprintf("%s:%d: unknown key %q", path, k.Line, k.Value)
				if prefix != "" {
					msg = fmt.Sprintf("%s:%d: unknown key %q in %s", path, k.Line, k.Value, prefix)
				}
				if s := nearest(k.Value, names); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				*errs = append(*errs, msg)
				continue
			}
			checkKeys(path, v, ft, joinKey(prefix, k.Value), errs)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			checkKeys(path, n.Content[i+1], t.Elem(), joinKey(prefix, n.Content[i].Value), errs)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for _, e := range n.Content {
			checkKeys(path, e, t.Elem(), prefix, errs)
		}
	}
}

func joinKey(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

// nearest is the known key closest to k by edit distance, when it is close
// enough to be a typo (a third of the length, at least 2), or a key one of
// them is a prefix of ("retention" for "retention_policy" is not offered).
func nearest(k string, names []string) string {
	best, bestD := "", -1
	for _, n := range names {
		d := levenshtein(strings.ToLower(k), n)
		if bestD < 0 || d < bestD || (d == bestD && n < best) {
			best, bestD = n, d
		}
	}
	limit := len(k) / 3
	if limit < 2 {
		limit = 2
	}
	if bestD >= 0 && bestD <= limit {
		return best
	}
	return ""
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// checkLabels applies snapshot.ValidLabel to every label the file names:
// the keys of sources:, schedule: and backup_config.backup_schedule:, and
// the schedule tags below them (they name units and become --tag), and
// checks each schedule's cron string converts to OnCalendar.
func checkLabels(path string, root *yaml.Node) configErrors {
	var errs configErrors
	if n := nodeAt(root, "timers"); n != nil && n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if v := n.Content[i+1]; v.Kind == yaml.ScalarNode && v.Value != "" {
				if _, err := cronToOnCalendar(v.Value); err != nil {
					errs = append(errs, fmt.Sprintf("%s:%d: timers.%s: %v", path, v.Line, n.Content[i].Value, err))
				}
			}
		}
	}
	if v := nodeAt(root, "copy.schedule"); v != nil && v.Kind == yaml.ScalarNode && v.Value != "" {
		if _, err := cronToOnCalendar(v.Value); err != nil {
			errs = append(errs, fmt.Sprintf("%s:%d: copy.schedule: %v", path, v.Line, err))
		}
	}
	for _, key := range []string{"sources", "schedule", "backup_config.backup_schedule"} {
		n := nodeAt(root, key)
		if n == nil || n.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if err := snapshot.ValidLabel(k.Value); err != nil {
				errs = append(errs, fmt.Sprintf("%s:%d: %s: %v", path, k.Line, key, err))
			}
			if key == "sources" {
				continue
			}
			if v.Kind == yaml.ScalarNode {
				if _, err := cronToOnCalendar(v.Value); err != nil {
					errs = append(errs, fmt.Sprintf("%s:%d: %s.%s: %v", path, v.Line, key, k.Value, err))
				}
				continue
			}
			if v.Kind != yaml.MappingNode {
				continue
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				tk, tv := v.Content[j], v.Content[j+1]
				if err := snapshot.ValidLabel(tk.Value); err != nil {
					errs = append(errs, fmt.Sprintf("%s:%d: %s.%s: %v", path, tk.Line, key, k.Value, strings.Replace(err.Error(), "source label", "schedule tag", 1)))
				}
				if _, err := cronToOnCalendar(tv.Value); err != nil {
					errs = append(errs, fmt.Sprintf("%s:%d: %s.%s.%s: %v", path, tv.Line, key, k.Value, tk.Value, err))
				}
			}
		}
	}
	return errs
}

func nodeAt(root *yaml.Node, dotted string) *yaml.Node {
	if root == nil || len(root.Content) == 0 {
		return nil
	}
	n := root.Content[0]
	for _, part := range strings.Split(dotted, ".") {
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == part {
				next = n.Content[i+1]
				break
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}

// keyLine finds the line of a dotted key in the document, 0 if absent.
func keyLine(root *yaml.Node, dotted string) int {
	if root == nil || len(root.Content) == 0 {
		return 0
	}
	n := root.Content[0]
	line := 0
	for _, part := range strings.Split(dotted, ".") {
		if n.Kind != yaml.MappingNode {
			return 0
		}
		found := false
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == part {
				line = n.Content[i].Line
				n = n.Content[i+1]
				found = true
				break
			}
		}
		if !found {
			return 0
		}
	}
	return line
}

func (c *config) warn(root *yaml.Node, name, key, format string, args ...any) {
	c.Warnings = append(c.Warnings, configWarning{Name: name, Key: key, Line: keyLine(root, key), Message: fmt.Sprintf(format, args...)})
}

func (c *config) normalize(root *yaml.Node) *config {
	bc := &c.BackupConfig
	st := bc.Storage
	if c.Repo == "" {
		c.Repo = st.BackupRoot
	}
	if c.Repo == "" {
		c.Repo = c.BackupRoot
	}
	if c.Sources == nil {
		c.Sources = map[string]sourceConfig{}
	}
	for label, p := range map[string]string{"models": st.SourceModels, "configs": st.SourceConfigs, "logs": st.SourceLogs} {
		if p != "" {
			if _, ok := c.Sources[label]; !ok {
				c.Sources[label] = sourceConfig{Path: p}
			}
		}
	}
	if v := bc.Version; v != nil {
		if s := fmt.Sprint(v); s != "1" && s != "1.0" {
			c.warn(root, "version_unknown", "backup_config.version", "version %q is not 1.0, the only layout known; keys are read as 1.0", s)
		}
	}
	// Snapshots stage nothing (packs are written inside the repository and
	// renamed into place); test-restore restores its sample here.
	c.TempDir = st.TempDir
	rp := bc.RetentionPolicy
	if c.Retention == (retentionConfig{}) {
		c.Retention = bc.Retention
	}
	if c.Retention == (retentionConfig{}) && (rp.DailyBackups|rp.WeeklyBackups|rp.MonthlyBackups) != 0 {
		c.Retention = retentionConfig{Daily: rp.DailyBackups, Weekly: rp.WeeklyBackups, Monthly: rp.MonthlyBackups}
	}
	if c.Retention == (retentionConfig{}) {
		c.Retention = retentionConfig{Daily: 7, Weekly: 4, Monthly: 12}
	}
	// archive_threshold: forget tags kept snapshots older than it
	// "archive" (checked in loadConfig).
	for _, v := range []string{bc.ArchiveThreshold, rp.ArchiveThreshold} {
		if v != "" {
			c.ArchiveAfter = v
		}
	}
	if len(bc.BackupSchedule) > 0 || len(c.OwnSchedule) > 0 {
		c.Schedule = map[string][]scheduleEntry{}
		for label, spec := range bc.BackupSchedule {
			c.Schedule[label] = spec.entries
		}
		for label, spec := range c.OwnSchedule { // schedule: wins
			c.Schedule[label] = spec.entries
		}
	}
	comp := bc.Compression
	if comp.Algorithm != "" && !strings.EqualFold(comp.Algorithm, "auto") {
		c.warn(root, "compression_fixed", "backup_config.compression.algorithm", "%q is not selectable: each chunk is stored raw, with the float-aware codec, or with zstd, whichever is smaller (the choice is per chunk)", comp.Algorithm)
	}
	if comp.Level != 0 {
		c.warn(root, "compression_level_unused", "backup_config.compression.level", "level %d ignored: the codec's level is chosen per chunk", comp.Level)
	}
	// parallel_jobs: how many files a snapshot reads and how many chunks
	// it compresses at once (snapshot.Request.Workers).
	c.ParallelJobs = comp.ParallelJobs
	val := bc.Validation
	if a := val.ChecksumAlgorithm; a != "" && !strings.EqualFold(a, "blake3") {
		c.warn(root, "checksum_fixed", "backup_config.validation.checksum_algorithm", "%q not used: every blob and pack is addressed and verified by BLAKE3-256, fixed in citadel.json", a)
	}
	c.VerifyAfter = val.VerifyAfterBackup
	c.TestRestore = val.TestRestoreMonthly
	al := bc.Alerts
	if al.BackupFailure != nil && !*al.BackupFailure {
		c.Monitor.Thresholds.BackupFailed.Disabled = true
	}
	if al.StorageThreshold != nil && !*al.StorageThreshold {
		c.Monitor.Thresholds.BackupStorage.Disabled = true
	}
	if al.RetentionCleanup != nil {
		c.warn(root, "retention_cleanup_no_alert", "backup_config.alerts.retention_cleanup", "no alert is raised for retention cleanup: forget and prune print what they removed and exit non-zero on failure, which the unit_failed rule reports")
	}
	if c.Mountpoint == "" {
		c.Mountpoint = "/mnt/citadel-snapshots"
	}
	if st.StorageThreshold > 0 && c.Monitor.BackupStorageThreshold == 0 {
		c.Monitor.BackupStorageThreshold = st.StorageThreshold
	}
	sort.Slice(c.Warnings, func(i, j int) bool { return c.Warnings[i].Line < c.Warnings[j].Line })
	return c
}

// sourcePaths are the paths of the configured source label.
func (c *config) sourcePaths(label string) []string {
	s, ok := c.Sources[label]
	switch {
	case !ok:
		return nil
	case len(s.Paths) > 0:
		return append([]string(nil), s.Paths...)
	}
	return []string{s.Path}
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
