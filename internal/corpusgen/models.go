package corpusgen

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"
)

// fleet is the server's models and each one's share of ModelsMB: uneven,
// like a real fleet (the names are the seed's model services).
var fleet = []struct {
	name  string
	share float64
}{
	{"mixtral", 0.30}, {"yi34b", 0.22}, {"hermes", 0.14}, {"openchat", 0.12},
	{"coder", 0.09}, {"phi3", 0.08}, {"vision", 0.05},
}

// ModelNames lists the models a new tree has, largest first.
func ModelNames() []string {
	out := make([]string, len(fleet))
	for i, m := range fleet {
		out[i] = m.name
	}
	return out
}

// vocab is the embedding's row count: a real 32k vocabulary would make the
// embeddings most of a small tree.
const vocab = 2048

// arch is one model's shape.
type arch struct {
	hidden, kv, ffn, layers int
}

func (a arch) layerBytes() int64 {
	d := int64(a.hidden)
	return 2 * (2*d*d + 2*int64(a.kv)*d + 3*int64(a.ffn)*d + 2*d)
}

func (a arch) fixedBytes() int64 { return 2 * (2*vocab*int64(a.hidden) + int64(a.hidden)) }

func shape(hidden int) arch {
	return arch{hidden: hidden, kv: hidden / 4, ffn: hidden * 11 / 4}
}

// planArch picks the widest model of at least two layers that fits budget
// bytes, else the narrowest with one, and as many layers as fit.
func planArch(budget int64) arch {
	a := shape(128)
	for _, h := range []int{512, 384, 256, 128} {
		if c := shape(h); c.fixedBytes()+2*c.layerBytes() <= budget {
			a = c
			break
		}
	}
	a.layers = max(1, int((budget-a.fixedBytes())/a.layerBytes()))
	return a
}

// tensorKind says which distribution a tensor's values come from.
type tensorKind int

const (
	kindEmbed tensorKind = iota
	kindLinear
	kindOut // o_proj and down_proj: residual outputs, smaller
	kindNorm
)

type tensorSpec struct {
	Name  string
	Shape []int
	kind  tensorKind
	depth float64 // layer / layers, 0..1
}

func (t tensorSpec) numel() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

func (t tensorSpec) bytes() int { return 2 * t.numel() }

// tensors lists a model's tensors in file order.
func (a arch) tensors() []tensorSpec {
	d := a.hidden
	ts := []tensorSpec{{Name: "model.embed_tokens.weight", Shape: []int{vocab, d}, kind: kindEmbed}}
	for l := range a.layers {
		p := fmt.Sprintf("model.layers.%d.", l)
		depth := float64(l) / float64(a.layers)
		ts = append(ts,
			tensorSpec{p + "input_layernorm.weight", []int{d}, kindNorm, depth},
			tensorSpec{p + "self_attn.q_proj.weight", []int{d, d}, kindLinear, depth},
			tensorSpec{p + "self_attn.k_proj.weight", []int{a.kv, d}, kindLinear, depth},
			tensorSpec{p + "self_attn.v_proj.weight", []int{a.kv, d}, kindLinear, depth},
			tensorSpec{p + "self_attn.o_proj.weight", []int{d, d}, kindOut, depth},
			tensorSpec{p + "post_attention_layernorm.weight", []int{d}, kindNorm, depth},
			tensorSpec{p + "mlp.gate_proj.weight", []int{a.ffn, d}, kindLinear, depth},
			tensorSpec{p + "mlp.up_proj.weight", []int{a.ffn, d}, kindLinear, depth},
			tensorSpec{p + "mlp.down_proj.weight", []int{d, a.ffn}, kindOut, depth},
		)
	}
	return append(ts,
		tensorSpec{Name: "model.norm.weight", Shape: []int{d}, kind: kindNorm, depth: 1},
		tensorSpec{Name: "lm_head.weight", Shape: []int{vocab, d}, kind: kindEmbed},
	)
}

// segValues is how many values one random stream fills: tensors are cut
// into 1 MiB segments so that one big tensor fills on every core, and
// the bytes do not depend on how many there are.
const segValues = 1 << 19

// fillJob is one segment of one tensor.
type fillJob struct {
	key  string // model/tensor
	seg  int
	spec tensorSpec
	dst  []byte
}

// fillAll fills every job on GOMAXPROCS goroutines.
func (g *gen) fillAll(jobs []fillJob) {
	ch := make(chan fillJob)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				g.fill(j)
			}
		}()
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()
}

// segments cuts one tensor's bytes (dst) into fill jobs.
func segments(key string, spec tensorSpec, dst []byte) []fillJob {
	var out []fillJob
	for s, off := 0, 0; off < len(dst); s, off = s+1, off+2*segValues {
		out = append(out, fillJob{key: key, seg: s, spec: spec, dst: dst[off:min(len(dst), off+2*segValues)]})
	}
	return out
}

// fill draws one segment's values from its tensor's distribution.
func (g *gen) fill(j fillJob) {
	r := g.rng(j.key, uint64(j.seg))
	// Per-tensor parameters come from the tensor's own stream (segment
	// -1), so every segment agrees on them.
	p := g.rng(j.key, math.MaxUint64)
	var draw func() float64
	switch j.spec.kind {
	case kindNorm:
		// RMSNorm gains: positive, around a per-layer mean that grows
		// with depth.
		mean := 0.35 + 0.6*j.spec.depth + 0.1*p.Float64()
		draw = func() float64 { return mean * (1 + 0.15*r.NormFloat64()) }
	default:
		std := 0.02
		switch j.spec.kind {
		case kindLinear:
			std *= 0.8 + 0.5*j.spec.depth + 0.2*p.Float64()
		case kindOut:
			std *= 0.5 + 0.3*j.spec.depth + 0.2*p.Float64()
		}
		draw = func() float64 {
			v := r.NormFloat64() * std
			if r.IntN(1000) == 0 { // the heavy tail of trained weights
				v *= 6 + 14*r.Float64()
			}
			return v
		}
	}
	for i := 0; i+1 < len(j.dst); i += 2 {
		putBF16(j.dst[i:], float32(draw()))
	}
}

// putBF16 stores f as bf16, rounded to nearest even as PyTorch's
// float32 -> bfloat16 conversion does.
func putBF16(b []byte, f float32) {
	bits := math.Float32bits(f)
	bits += 0x7fff + (bits>>16)&1
	b[0], b[1] = byte(bits>>16), byte(bits>>24)
}

// bf16At reads the bf16 value at b as a float32.
func bf16At(b []byte) float32 {
	return math.Float32frombits(uint32(b[0])<<16 | uint32(b[1])<<24)
}

func (g *gen) models() error {
	total := int64(g.o.ModelsMB) << 20
	for i, m := range fleet {
		budget := int64(float64(total) * m.share)
		if err := g.writeModel(m.name, planArch(budget), i); err != nil {
			return err
		}
	}
	return nil
}

// shardPlan cuts ts into shards of at most limit bytes (a tensor larger
// than limit gets a shard of its own), as max_shard_size does.
func shardPlan(ts []tensorSpec, limit int64) [][]tensorSpec {
	var out [][]tensorSpec
	var cur []tensorSpec
	var size int64
	for _, t := range ts {
		if len(cur) > 0 && size+int64(t.bytes()) > limit {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, t)
		size += int64(t.bytes())
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func shardName(i, n int) string {
	if n == 1 {
		return "model.safetensors"
	}
	return fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, n)
}

func (g *gen) writeModel(name string, a arch, nth int) error {
	dir := filepath.Join(g.o.Dir, "models", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("corpusgen: %w", err)
	}
	shards := shardPlan(a.tensors(), int64(g.o.ShardMB)<<20)
	weightMap := map[string]string{}
	var totalSize int64
	for i, ts := range shards {
		file := shardName(i, len(shards))
		data := make(map[string][]byte, len(ts))
		var jobs []fillJob
		for _, t := range ts {
			b := make([]byte, t.bytes())
			data[t.Name] = b
			jobs = append(jobs, segments(name+"/"+t.Name, t, b)...)
			weightMap[t.Name] = file
			totalSize += int64(len(b))
		}
		g.fillAll(jobs)
		p := filepath.Join(dir, file)
		if err := writeSafetensors(p, ts, data, map[string]string{"format": "pt"}); err != nil {
			return err
		}
		if err := stamp(p, nth*10); err != nil {
			return err
		}
	}
	if len(shards) > 1 {
		idx := map[string]any{"metadata": map[string]any{"total_size": totalSize}, "weight_map": weightMap}
		if err := writeJSON(filepath.Join(dir, "model.safetensors.index.json"), idx, nth*10); err != nil {
			return err
		}
	}
	heads := a.hidden / 64
	cfg := map[string]any{
		"architectures": []string{"LlamaForCausalLM"}, "model_type": "llama", "_name_or_path": "citadel/" + name,
		"hidden_size": a.hidden, "intermediate_size": a.ffn, "num_hidden_layers": a.layers,
		"num_attention_heads": heads, "num_key_value_heads": max(1, heads/4), "vocab_size": vocab,
		"max_position_embeddings": 32768, "rms_norm_eps": 1e-5, "rope_theta": 1e6,
		"tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.44.2",
	}
	if err := writeJSON(filepath.Join(dir, "config.json"), cfg, nth*10+1); err != nil {
		return err
	}
	gc := map[string]any{"bos_token_id": 1, "eos_token_id": 2, "do_sample": true, "temperature": 0.7, "top_p": 0.9, "max_new_tokens": 2048}
	if err := writeJSON(filepath.Join(dir, "generation_config.json"), gc, nth*10+2); err != nil {
		return err
	}
	tc := map[string]any{"model_max_length": 32768, "tokenizer_class": "LlamaTokenizerFast", "bos_token": "<s>",
		"eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": true, "chat_template": "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}</s>{% endfor %}"}
	if err := writeJSON(filepath.Join(dir, "tokenizer_config.json"), tc, nth*10+3); err != nil {
		return err
	}
	return g.writeTokenizer(filepath.Join(dir, "tokenizer.json"), name, nth*10+4)
}

// writeTokenizer writes a BPE tokenizer.json of a 32k vocabulary: a few
// hundred KiB of JSON, the one big text file of a model folder.
func (g *gen) writeTokenizer(path, model string, minutes int) error {
	r := g.rng("tokenizer/" + model)
	vocabMap := make(map[string]int, 32000)
	merges := make([]string, 0, 8000)
	for i := 0; len(vocabMap) < 32000; i++ {
		w := word(r)
		if r.IntN(3) == 0 {
			w = "Ġ" + w
		}
		if _, dup := vocabMap[w]; dup {
			w = fmt.Sprintf("%s%d", w, i%97)
		}
		vocabMap[w] = len(vocabMap)
		if len(merges) < cap(merges) && len(w) > 3 {
			merges = append(merges, w[:2]+" "+w[2:])
		}
	}
	tok := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil,
		"added_tokens": []map[string]any{{"id": 0, "content": "<unk>", "special": true}, {"id": 1, "content": "<s>", "special": true}, {"id": 2, "content": "</s>", "special": true}},
		"normalizer":   map[string]any{"type": "NFC"},
		"model":        map[string]any{"type": "BPE", "dropout": nil, "unk_token": "<unk>", "vocab": vocabMap, "merges": merges},
	}
	return writeJSON(path, tok, minutes)
}

func writeJSON(path string, v any, minutes int) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("corpusgen: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("corpusgen: %w", err)
	}
	return stamp(path, minutes)
}
