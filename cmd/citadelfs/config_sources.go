package main

import (
	"fmt"
	"path/filepath"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"citadelfs/snapshot"
)

// sourceConfig is one entry of sources:. The short form is a path
// ("models: /opt/models"); the long form is a mapping with the same
// meaning the command line gives --source, --exclude, --exclude-caches and
// --one-file-system, plus a retention policy of the source's own:
//
//	system:
//	  paths: [/etc/fstab, /etc/netplan/*.yaml]
//	  exclude: ["*.swp"]
//	  exclude_caches: true
//	  one_file_system: true
//	  retention: {within: 30d}
type sourceConfig struct {
	// Path is a directory that becomes the source's root (the short form).
	Path string `yaml:"path"`
	// Paths are files, directories and globs kept under their absolute
	// paths (a source of paths).
	Paths         []string `yaml:"paths"`
	Exclude       []string `yaml:"exclude"`
	ExcludeCaches bool     `yaml:"exclude_caches"`
	OneFileSystem bool     `yaml:"one_file_system"`
	// Retention, when given, replaces the global retention for this
	// source's snapshots.
	Retention *retentionConfig `yaml:"retention"`
}

// sourceConfigFields is sourceConfig without its UnmarshalYAML, so the long
// form decodes field by field and checkKeys can check its keys.
type sourceConfigFields sourceConfig

func (s *sourceConfig) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*s = sourceConfig{Path: n.Value}
		return nil
	case yaml.MappingNode:
		var f sourceConfigFields
		if err := n.Decode(&f); err != nil {
			return err
		}
		*s = sourceConfig(f)
		return nil
	}
	return fmt.Errorf("line %d: a source is a directory path, or a mapping with paths:, exclude:, exclude_caches:, one_file_system:, retention:", n.Line)
}

// yamlKeys makes checkKeys check the long form's keys against the fields.
func (sourceConfig) yamlKeys() reflect.Type { return reflect.TypeOf(sourceConfigFields{}) }

// keyedUnmarshaler is a type with its own UnmarshalYAML whose mapping form
// still has a fixed set of keys, given by yamlKeys.
type keyedUnmarshaler interface{ yamlKeys() reflect.Type }

var keyedUnmarshalerType = reflect.TypeOf((*keyedUnmarshaler)(nil)).Elem()

// validate reports what is wrong with the entry of label, "" when nothing.
func (s sourceConfig) validate(label string) string {
	if s.Path == "" && len(s.Paths) == 0 {
		return "no path: give a directory, or paths: [...]"
	}
	if s.Path != "" && len(s.Paths) > 0 {
		return "give path: or paths:, not both"
	}
	for _, p := range append([]string{s.Path}, s.Paths...) {
		if p != "" && !filepath.IsAbs(p) {
			return fmt.Sprintf("path %q is not absolute", p)
		}
	}
	if err := s.spec(label).Validate(); err != nil {
		return strings.TrimPrefix(strings.TrimPrefix(err.Error(), "snapshot: "), "source "+label+": ")
	}
	if s.Retention != nil {
		if _, err := s.Retention.policy(); err != nil {
			return "retention: " + err.Error()
		}
	}
	return ""
}

// spec is the source as the snapshot command takes it: the same SourceSpec
// --source LABEL=PATH, --exclude and friends build.
func (s sourceConfig) spec(label string) snapshot.SourceSpec {
	sp := snapshot.SourceSpec{Label: label, Path: s.Path, Excludes: append([]string(nil), s.Exclude...),
		ExcludeCaches: s.ExcludeCaches, OneFileSystem: s.OneFileSystem}
	if len(s.Paths) > 0 {
		sp.Paths = append([]string(nil), s.Paths...)
	} else if strings.ContainsAny(s.Path, "*?[") {
		sp.Path, sp.Paths = "", []string{s.Path}
	}
	return sp
}

// String is the source's path, or its paths joined by ", ", for listings.
func (s sourceConfig) String() string {
	if len(s.Paths) > 0 {
		return strings.Join(s.Paths, ", ")
	}
	return s.Path
}

// jsonValue is the entry for config check --json: the short form as a
// string, the long form as an object, as they were written.
func (s sourceConfig) jsonValue() any {
	if len(s.Paths) == 0 && len(s.Exclude) == 0 && !s.ExcludeCaches && !s.OneFileSystem && s.Retention == nil {
		return s.Path
	}
	type long struct {
		Path          string           `json:"path,omitempty"`
		Paths         []string         `json:"paths,omitempty"`
		Exclude       []string         `json:"exclude,omitempty"`
		ExcludeCaches bool             `json:"exclude_caches,omitempty"`
		OneFileSystem bool             `json:"one_file_system,omitempty"`
		Retention     *retentionConfig `json:"retention,omitempty"`
	}
	return long{s.Path, s.Paths, s.Exclude, s.ExcludeCaches, s.OneFileSystem, s.Retention}
}

// watchDirs are the directories of the source the monitor watches for
// free space: the directory itself, or for each path the part before any
// glob character.
func (s sourceConfig) watchDirs() []string {
	if len(s.Paths) == 0 {
		return []string{s.Path}
	}
	var out []string
	for _, p := range s.Paths {
		if i := strings.IndexAny(p, "*?["); i >= 0 {
			p = filepath.Dir(p[:i] + "x")
		}
		out = append(out, p)
	}
	return out
}

// checkSources validates every entry of sources: with its line.
func checkSources(path string, root *yaml.Node, c *config) configErrors {
	var errs configErrors
	n := nodeAt(root, "sources")
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if msg := c.Sources[k.Value].validate(k.Value); msg != "" {
			errs = append(errs, fmt.Sprintf("%s:%d: source %s: %s", path, k.Line, k.Value, msg))
		}
	}
	return errs
}

// policies is the retention of each source label: the source's own
// retention: when it has one, else the global retention. A label no longer
// configured gets the global one.
func (c *config) policies() (func(label string) snapshot.Policy, error) {
	global, err := c.Retention.policy()
	if err != nil {
		return nil, err
	}
	own := map[string]snapshot.Policy{}
	for l, s := range c.Sources {
		if s.Retention == nil {
			continue
		}
		p, err := s.Retention.policy()
		if err != nil {
			return nil, fmt.Errorf("source %s: %v", l, err)
		}
		own[l] = p
	}
	return func(label string) snapshot.Policy {
		if p, ok := own[label]; ok {
			return p
		}
		return global
	}, nil
}
