package corpusgen

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Mutations are the changes Mutate knows, in the order of the package doc.
var Mutations = []string{"day", "logs-append", "configs-touch", "finetune", "new-model", "insert-shift"}

// ErrUnknownMutation is returned for a Mutation.Kind not in Mutations.
var ErrUnknownMutation = errors.New("corpusgen: unknown mutation")

// Mutation is one change to an existing tree.
type Mutation struct {
	// Kind is one of Mutations.
	Kind string
	// Model, if set, is the model finetune and insert-shift change, or
	// the one new-model copies from; otherwise the seed picks it.
	Model string
}

// Mutate applies m to the tree o.Dir (o.Seed picks what changes) and
// returns one line per change, saying what changed.
func Mutate(o Options, m Mutation) ([]string, error) {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(o.Dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("corpusgen: no tree at %s to mutate", o.Dir)
	}
	g := &gen{o: o}
	switch m.Kind {
	case "day":
		a, err := g.logsAppend()
		if err != nil {
			return nil, err
		}
		b, err := g.configsTouch()
		return append(a, b...), err
	case "logs-append":
		return g.logsAppend()
	case "configs-touch":
		return g.configsTouch()
	case "finetune":
		return g.finetune(m.Model)
	case "new-model":
		return g.newModel(m.Model)
	case "insert-shift":
		return g.insertShift(m.Model)
	}
	return nil, fmt.Errorf("%w %q (want one of %s)", ErrUnknownMutation, m.Kind, strings.Join(Mutations, ", "))
}

// shardFiles lists the safetensors files of model (every model if "").
func (g *gen) shardFiles(model string) ([]string, error) {
	pat := filepath.Join(g.o.Dir, "models", "*", "*.safetensors")
	if model != "" {
		pat = filepath.Join(g.o.Dir, "models", model, "*.safetensors")
	}
	ss, err := filepath.Glob(pat)
	if err != nil {
		return nil, fmt.Errorf("corpusgen: %w", err)
	}
	if len(ss) == 0 {
		return nil, fmt.Errorf("corpusgen: no safetensors files match %s", pat)
	}
	sort.Strings(ss)
	return ss, nil
}

// finetune updates consecutive whole tensors, 5% of one shard's bytes,
// in place by a small delta: what merging a fine-tune into a checkpoint
// does to a file.
func (g *gen) finetune(model string) ([]string, error) {
	ss, err := g.shardFiles(model)
	if err != nil {
		return nil, err
	}
	r := g.rng("finetune")
	p := ss[r.IntN(len(ss))]
	sh, err := ReadShard(p)
	if err != nil {
		return nil, err
	}
	size := sh.Tensors[len(sh.Tensors)-1].End
	want := size / 20
	first := r.IntN(len(sh.Tensors))
	last := first
	for sh.Tensors[last].End-sh.Tensors[first].Begin < want {
		switch {
		case last+1 < len(sh.Tensors):
			last++
		case first > 0:
			first--
		default:
			want = 0 // the whole shard is under 5%: take it all
		}
	}
	off := sh.Tensors[first].Begin
	buf := make([]byte, sh.Tensors[last].End-off)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("corpusgen: %w", err)
	}
	defer f.Close()
	if _, err := f.ReadAt(buf, off); err != nil {
		return nil, fmt.Errorf("corpusgen: read %s: %w", p, err)
	}
	d := g.rng("finetune-delta")
	for i := 0; i+1 < len(buf); i += 2 {
		putBF16(buf[i:], bf16At(buf[i:])+float32(0.001*d.NormFloat64()))
	}
	if _, err := f.WriteAt(buf, off); err != nil {
		return nil, fmt.Errorf("corpusgen: write %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("corpusgen: %w", err)
	}
	return []string{fmt.Sprintf("finetune: rewrote %d bytes of %s at %d (%s .. %s)", len(buf), p, off,
		sh.Tensors[first].Name, sh.Tensors[last].Name)}, nil
}

// insertShift grows one shard's JSON header by a metadata note, so every
// tensor byte after it moves by the growth.
func (g *gen) insertShift(model string) ([]string, error) {
	ss, err := g.shardFiles(model)
	if err != nil {
		return nil, err
	}
	r := g.rng("insert-shift")
	p := ss[r.IntN(len(ss))]
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("corpusgen: %w", err)
	}
	sh, err := ReadShard(p)
	if err != nil {
		return nil, err
	}
	var h map[string]any
	if err := json.Unmarshal(data[8:sh.DataStart()], &h); err != nil {
		return nil, fmt.Errorf("corpusgen: %s: %w", p, err)
	}
	meta := map[string]string{"format": "pt"}
	for k, v := range sh.Metadata {
		meta[k] = v
	}
	meta["finetuned_from"] = "citadel/" + word(r)
	meta["note_"+strconv.FormatUint(g.o.Seed, 10)] = strings.Repeat(word(r)+" ", 50+r.IntN(200))
	h["__metadata__"] = meta
	hb, err := encodeHeader(h)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 8, 8+len(hb)+len(data))
	binary.LittleEndian.PutUint64(out, uint64(len(hb)))
	out = append(append(out, hb...), data[sh.DataStart():]...)
	if err := os.WriteFile(p, out, 0); err != nil {
		return nil, fmt.Errorf("corpusgen: %w", err)
	}
	return []string{fmt.Sprintf("insert-shift: %s header %d -> %d bytes", p, sh.HeaderLen, len(hb))}, nil
}

// newModel adds models/merged-<seed>: its embeddings and attention
// tensors are copied byte for byte from an existing model's files, its
// MLP and norms are new, and the tensors are in another order and cut
// into other shards, as a merge tool writes them.
func (g *gen) newModel(from string) ([]string, error) {
	r := g.rng("new-model")
	if from == "" {
		var have []string
		for _, m := range fleet[:3] {
			if _, err := os.Stat(filepath.Join(g.o.Dir, "models", m.name)); err == nil {
				have = append(have, m.name)
			}
		}
		if len(have) == 0 {
			return nil, fmt.Errorf("corpusgen: no model under %s to merge from", filepath.Join(g.o.Dir, "models"))
		}
		from = have[r.IntN(len(have))]
	}
	ss, err := g.shardFiles(from)
	if err != nil {
		return nil, err
	}
	type src struct {
		file string
		info TensorInfo
	}
	copied := map[string]src{}
	var specs []tensorSpec
	layers := 1
	for _, p := range ss {
		sh, err := ReadShard(p)
		if err != nil {
			return nil, err
		}
		for _, t := range sh.Tensors {
			spec := tensorSpec{Name: t.Name, Shape: t.Shape, kind: kindFromName(t.Name), depth: 0.5}
			if l, ok := layerOf(t.Name); ok {
				layers = max(layers, l+1)
			}
			if spec.kind == kindEmbed || strings.Contains(t.Name, "self_attn.") {
				copied[t.Name] = src{p, t}
			}
			specs = append(specs, spec)
		}
	}
	for i := range specs {
		if l, ok := layerOf(specs[i].Name); ok {
			specs[i].depth = float64(l) / float64(layers)
		}
	}
	r.Shuffle(len(specs), func(i, j int) { specs[i], specs[j] = specs[j], specs[i] })

	name := fmt.Sprintf("merged-%d", g.o.Seed)
	dir := filepath.Join(g.o.Dir, "models", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("corpusgen: %w", err)
	}
	// Shards of about half the source's: another cut than the source's.
	limit := int64(g.o.ShardMB) << 19
	shards := shardPlan(specs, limit)
	weightMap := map[string]string{}
	var report []string
	for i, ts := range shards {
		file := shardName(i, len(shards))
		data := map[string][]byte{}
		var jobs []fillJob
		for _, t := range ts {
			b := make([]byte, t.bytes())
			data[t.Name] = b
			weightMap[t.Name] = file
			if s, ok := copied[t.Name]; ok {
				if err := readAt(s.file, b, s.info.Begin); err != nil {
					return nil, err
				}
				continue
			}
			jobs = append(jobs, segments(name+"/"+t.Name, t, b)...)
		}
		g.fillAll(jobs)
		p := filepath.Join(dir, file)
		if err := writeSafetensors(p, ts, data, map[string]string{"format": "pt", "merged_from": "citadel/" + from}); err != nil {
			return nil, err
		}
		report = append(report, fmt.Sprintf("new-model: %s (attention and embeddings from %s)", p, from))
	}
	if len(shards) > 1 {
		idx := map[string]any{"metadata": map[string]any{}, "weight_map": weightMap}
		if err := writeJSON(filepath.Join(dir, "model.safetensors.index.json"), idx, 0); err != nil {
			return nil, err
		}
	}
	for _, f := range []string{"config.json", "generation_config.json", "tokenizer_config.json", "tokenizer.json"} {
		b, err := os.ReadFile(filepath.Join(g.o.Dir, "models", from, f))
		if err != nil {
			continue // a hand-made source model may lack them
		}
		if f == "config.json" {
			b = []byte(strings.Replace(string(b), `"citadel/`+from+`"`, `"citadel/`+name+`"`, 1))
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return nil, fmt.Errorf("corpusgen: %w", err)
		}
	}
	return report, nil
}

func readAt(path string, b []byte, off int64) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("corpusgen: %w", err)
	}
	defer f.Close()
	if _, err := f.ReadAt(b, off); err != nil {
		return fmt.Errorf("corpusgen: read %s: %w", path, err)
	}
	return nil
}

func kindFromName(name string) tensorKind {
	switch {
	case strings.Contains(name, "embed_tokens") || strings.HasPrefix(name, "lm_head"):
		return kindEmbed
	case strings.Contains(name, "norm"):
		return kindNorm
	case strings.Contains(name, "o_proj") || strings.Contains(name, "down_proj"):
		return kindOut
	}
	return kindLinear
}

// layerOf parses the N of model.layers.N.…
func layerOf(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "model.layers.")
	if !ok {
		return 0, false
	}
	n, _, _ := strings.Cut(rest, ".")
	l, err := strconv.Atoi(n)
	return l, err == nil
}
