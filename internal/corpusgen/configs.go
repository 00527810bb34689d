package corpusgen

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// configExts are the formats an AI server's /opt/citadel/configs holds.
var configExts = []string{".yaml", ".json", ".ini", ".env", ".conf", ".toml"}

// configKeys are the settings real model-serving configs are made of.
var configKeys = []string{
	"host", "port", "workers", "model_path", "max_batch_size", "max_model_len", "gpu_memory_utilization",
	"tensor_parallel_size", "dtype", "log_level", "timeout_s", "retries", "cache_dir", "enabled",
	"api_base", "quantization", "swap_space", "seed", "trust_remote_code", "served_model_name",
	"health_interval", "prometheus_port", "cuda_visible_devices", "kv_cache_dtype", "rope_scaling",
}

func configValue(r *rand.Rand, key string) any {
	switch key {
	case "host":
		return []string{"0.0.0.0", "127.0.0.1", "10.0.3.17"}[r.IntN(3)]
	case "port", "prometheus_port":
		return 11400 + r.IntN(200)
	case "enabled", "trust_remote_code":
		return r.IntN(2) == 0
	case "gpu_memory_utilization":
		return math.Round((0.7+0.25*r.Float64())*100) / 100
	case "model_path", "cache_dir":
		return "/mnt/citadel-models/active/" + word(r)
	case "dtype", "kv_cache_dtype":
		return []string{"bfloat16", "float16", "auto", "fp8"}[r.IntN(4)]
	case "log_level":
		return []string{"info", "debug", "warning"}[r.IntN(3)]
	case "api_base":
		return fmt.Sprintf("http://127.0.0.1:%d/v1", 11400+r.IntN(200))
	case "served_model_name", "quantization", "rope_scaling":
		return word(r)
	}
	return r.IntN(100000)
}

// configSection is one named block of settings.
type configSection struct {
	name string
	keys []string
	vals []any
}

func configSections(r *rand.Rand, size int) []configSection {
	var out []configSection
	for n := 0; n < size; {
		s := configSection{name: word(r)}
		for k := 2 + r.IntN(8); k > 0; k-- {
			key := configKeys[r.IntN(len(configKeys))]
			if r.IntN(3) == 0 {
				key = word(r) + "_" + key
			}
			s.keys = append(s.keys, key)
			s.vals = append(s.vals, configValue(r, key))
			n += len(key) + 12
		}
		out = append(out, s)
	}
	return out
}

// configText renders about size bytes of settings in ext's format.
func configText(r *rand.Rand, ext string, size int) []byte {
	secs := configSections(r, size)
	var b strings.Builder
	switch ext {
	case ".json":
		doc := map[string]map[string]any{}
		for _, s := range secs {
			m := map[string]any{}
			for i, k := range s.keys {
				m[k] = s.vals[i]
			}
			doc[s.name] = m
		}
		j, _ := json.MarshalIndent(doc, "", "  ")
		b.Write(j)
		b.WriteByte('\n')
	case ".yaml":
		fmt.Fprintf(&b, "# managed by citadel-provision; %s\n", word(r))
		for _, s := range secs {
			fmt.Fprintf(&b, "%s:\n", s.name)
			for i, k := range s.keys {
				fmt.Fprintf(&b, "  %s: %v\n", k, s.vals[i])
			}
		}
	case ".ini", ".toml":
		for _, s := range secs {
			fmt.Fprintf(&b, "[%s]\n", s.name)
			for i, k := range s.keys {
				v := s.vals[i]
				if str, ok := v.(string); ok && ext == ".toml" {
					v = fmt.Sprintf("%q", str)
				}
				fmt.Fprintf(&b, "%s = %v\n", k, v)
			}
			b.WriteByte('\n')
		}
	case ".env":
		for _, s := range secs {
			for i, k := range s.keys {
				fmt.Fprintf(&b, "%s_%s=%v\n", strings.ToUpper(s.name), strings.ToUpper(k), s.vals[i])
			}
		}
	default: // .conf: nginx-like blocks
		for _, s := range secs {
			fmt.Fprintf(&b, "%s {\n", s.name)
			for i, k := range s.keys {
				fmt.Fprintf(&b, "    %s %v;\n", k, s.vals[i])
			}
			b.WriteString("}\n")
		}
	}
	return []byte(b.String())
}

// configSize is log-normal: most configs are a few hundred bytes, a few
// are tens of KiB.
func configSize(r *rand.Rand) int {
	return min(64<<10, 120+int(math.Exp(6.3+0.9*r.NormFloat64())))
}

// configPath is where ordinary config file i lives.
func configPath(root string, i int, name string) string {
	return filepath.Join(root, fmt.Sprintf("svc%02d", i%37), fmt.Sprintf("part%d", i%5), name)
}

func (g *gen) configs() error {
	root := filepath.Join(g.o.Dir, "configs")
	for i := range g.o.Configs {
		r := g.rng("config", uint64(i))
		ext := configExts[i%len(configExts)]
		p := configPath(root, i, fmt.Sprintf("%s-%04d%s", word(r), i, ext))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("corpusgen: %w", err)
		}
		mode := os.FileMode(0o644)
		if i%11 == 0 {
			mode = 0o640
		}
		if err := writeFile(p, configText(r, ext, configSize(r)), mode, i); err != nil {
			return err
		}
	}
	return g.configEdgeCases(root)
}

func writeFile(p string, data []byte, mode os.FileMode, minutes int) error {
	if err := os.WriteFile(p, data, mode); err != nil {
		return fmt.Errorf("corpusgen: %w", err)
	}
	// WriteFile's mode went through the umask.
	if err := os.Chmod(p, mode); err != nil {
		return fmt.Errorf("corpusgen: %w", err)
	}
	return stamp(p, minutes)
}

// configEdgeCases writes what a faithful backup and restore must keep;
// the tests name some of these paths.
func (g *gen) configEdgeCases(root string) error {
	r := g.rng("config-edge")
	t := g.o.Configs
	files := []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{"citadel-ai.env", []byte("HF_TOKEN=hf_not_a_real_token_" + word(r) + "\nAPI_KEY=0123456789abcdef\n"), 0o600},
		{"empty.conf", nil, 0o644},
		{"backup-hook.sh", []byte("#!/bin/sh\n# runs before each backup\nsync\necho hook\n"), 0o755},
		{"hardlink-a.yaml", []byte("shared: inode\n"), 0o644},
		{filepath.Join("odd names", "ünïcødé – spaces & 'quotes'.yaml"), []byte("ok: true\n"), 0o644},
		{filepath.Join("odd names", "-leading-dash.conf"), []byte("dash on;\n"), 0o644},
		{filepath.Join("odd names", "dollar $HOME `tick`.env"), []byte("ODD=1\n"), 0o644},
		{filepath.Join("odd names", "long-"+strings.Repeat("x", 240)+".ini"), []byte("[long]\nname = 250 bytes\n"), 0o644},
	}
	deep := "deep"
	for l := range 24 {
		deep = filepath.Join(deep, fmt.Sprintf("d%02d", l))
	}
	files = append(files, struct {
		path string
		data []byte
		mode os.FileMode
	}{filepath.Join(deep, "leaf.yaml"), []byte("depth: 24\n"), 0o644})
	for i, f := range files {
		p := filepath.Join(root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("corpusgen: %w", err)
		}
		if err := writeFile(p, f.data, f.mode, t+i); err != nil {
			return err
		}
	}
	if err := os.Link(filepath.Join(root, "hardlink-a.yaml"), filepath.Join(root, "hardlink-b.yaml")); err != nil {
		return fmt.Errorf("corpusgen: %w", err)
	}
	if err := os.Mkdir(filepath.Join(root, "empty-dir"), 0o750); err != nil {
		return fmt.Errorf("corpusgen: %w", err)
	}
	if err := os.Chmod(filepath.Join(root, "empty-dir"), 0o750); err != nil {
		return fmt.Errorf("corpusgen: %w", err)
	}
	for name, target := range map[string]string{"current": "svc00/part0", "dangling-link": "/nonexistent/target"} {
		p := filepath.Join(root, name)
		if err := os.Symlink(target, p); err != nil {
			return fmt.Errorf("corpusgen: %w", err)
		}
		if err := stamp(p, t+100); err != nil {
			return err
		}
	}
	// Extended attributes on a file and on a directory (neither is one
	// the tests add their own to).
	if g.o.Configs > 3 {
		dir := filepath.Join(root, "svc02", "part2")
		ents, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("corpusgen: %w", err)
		}
		if err := setXattr(filepath.Join(dir, ents[0].Name()), "user.citadel.origin", []byte("provisioned by ansible")); err != nil {
			return fmt.Errorf("corpusgen: %w", err)
		}
		if err := setXattr(filepath.Join(root, "svc03"), "user.citadel.owner", []byte{'m', 'l', 0, 0xff, 'p'}); err != nil {
			return fmt.Errorf("corpusgen: %w", err)
		}
	}
	return g.sparseImage(filepath.Join(root, "sparse.img"), r)
}

// sparseImage writes a 256 MiB disk image that holds data only in its
// first 64 KiB (a partition table and boot code) and its last MiB.
func (g *gen) sparseImage(p string, r *rand.Rand) error {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("corpusgen: %w", err)
	}
	head := make([]byte, 64<<10)
	for i := range head {
		head[i] = byte(r.IntN(256))
	}
	_, err = f.WriteAt(head, 0)
	if err == nil {
		_, err = f.WriteAt(configText(r, ".conf", 1<<20)[:1<<20], 255<<20)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("corpusgen: %w", err)
	}
	return stamp(p, g.o.Configs+200)
}

// ordinaryConfigs lists the svcNN/partK files, sorted: the ones
// configs-touch edits.
func ordinaryConfigs(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "configs", "svc*", "part*", "*"))
	sort.Strings(files)
	return files, err
}

// configsTouch appends one setting to about 1% of the config files (at
// least one), in each file's own format.
func (g *gen) configsTouch() ([]string, error) {
	files, err := ordinaryConfigs(g.o.Dir)
	if err != nil {
		return nil, fmt.Errorf("corpusgen: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("corpusgen: no config files under %s", filepath.Join(g.o.Dir, "configs"))
	}
	r := g.rng("configs-touch")
	var report []string
	for n := len(files)/100 + 1; n > 0; n-- {
		p := files[r.IntN(len(files))]
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("corpusgen: %w", err)
		}
		key, val := fmt.Sprintf("changed_%d", g.o.Seed), r.IntN(1000)
		switch filepath.Ext(p) {
		case ".json":
			if i := strings.LastIndexByte(string(data), '}'); i > 0 {
				data = []byte(fmt.Sprintf("%s,\n  %q: %d\n}\n", strings.TrimRight(string(data[:i]), "\n "), key, val))
			}
		case ".env":
			data = fmt.Appendf(data, "%s=%d\n", strings.ToUpper(key), val)
		case ".ini", ".toml":
			data = fmt.Appendf(data, "%s = %d\n", key, val)
		case ".conf":
			data = fmt.Appendf(data, "%s %d;\n", key, val)
		default:
			data = fmt.Appendf(data, "%s: %d\n", key, val)
		}
		if err := os.WriteFile(p, data, 0); err != nil {
			return nil, fmt.Errorf("corpusgen: %w", err)
		}
		report = append(report, "configs-touch: "+p)
	}
	return report, nil
}
