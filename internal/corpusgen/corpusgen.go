package corpusgen

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Options say what tree to write.
type Options struct {
	// Dir is the tree's root; it is created if missing. Required.
	Dir string
	// ModelsMB is the total size of the model weights in MiB. Default 1024.
	ModelsMB int
	// LogsMB is the total size of the logs in MiB. Default 64.
	LogsMB int
	// Configs is the number of ordinary config files, besides the edge
	// cases. Default 2000.
	Configs int
	// Seed picks the tree; the same seed gives the same bytes. Default 1.
	Seed uint64
	// ShardMB is the largest safetensors shard in MiB. Default 128.
	ShardMB int
}

func (o Options) withDefaults() Options {
	if o.ModelsMB == 0 {
		o.ModelsMB = 1024
	}
	if o.LogsMB == 0 {
		o.LogsMB = 64
	}
	if o.Configs == 0 {
		o.Configs = 2000
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.ShardMB == 0 {
		o.ShardMB = 128
	}
	return o
}

func (o Options) validate() error {
	switch {
	case o.Dir == "":
		return errors.New("corpusgen: no output directory")
	case o.ModelsMB < 0 || o.LogsMB < 0 || o.Configs < 0 || o.ShardMB < 0:
		return errors.New("corpusgen: sizes and counts must not be negative")
	}
	return nil
}

// Epoch is the base of every generated mtime and log timestamp, so that
// two trees of one seed are stat-identical too.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Generate writes a new tree under o.Dir.
func Generate(o Options) error {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return fmt.Errorf("corpusgen: %w", err)
	}
	g := &gen{o: o}
	for _, step := range []func() error{g.models, g.configs, g.logs} {
		if err := step(); err != nil {
			return err
		}
	}
	// Directories last: writing their entries moved their mtimes.
	return g.settleDirTimes()
}

// gen is one run: the options and where its random streams come from.
type gen struct {
	o Options
}

// rng returns a random stream for one named purpose: the same name and
// seed always give the same stream, and no two purposes share one.
func (g *gen) rng(name string, n ...uint64) *rand.Rand {
	h := fnv(name)
	for _, x := range n {
		h = (h ^ x) * 1099511628211
	}
	return rand.New(rand.NewPCG(h^g.o.Seed, g.o.Seed*0x9e3779b97f4a7c15+0x5eed))
}

func fnv(s string) uint64 {
	h := uint64(1469598103934665603)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// stamp sets path's mtime (and atime) to Epoch plus minutes, without
// following a symlink.
func stamp(path string, minutes int) error {
	t := Epoch.Add(time.Duration(minutes) * time.Minute)
	if err := lutimes(path, t); err != nil {
		return fmt.Errorf("corpusgen: %w", err)
	}
	return nil
}

// settleDirTimes gives every directory of the tree a fixed mtime, deepest
// first.
func (g *gen) settleDirTimes() error {
	var dirs []string
	err := filepath.WalkDir(g.o.Dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("corpusgen: %w", err)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
	for i, d := range dirs {
		if err := stamp(d, 60*24+i); err != nil {
			return err
		}
	}
	return nil
}

var syllables = []string{"ka", "lo", "mi", "ra", "te", "vo", "zu", "an", "el", "or", "sh", "qu", "ix", "ty", "ne", "po", "da", "gri", "fen", "sol"}

// word is a pronounceable nonsense word of 2-4 syllables.
func word(r *rand.Rand) string {
	n := 2 + r.IntN(3)
	var b strings.Builder
	for range n {
		b.WriteString(syllables[r.IntN(len(syllables))])
	}
	return b.String()
}
