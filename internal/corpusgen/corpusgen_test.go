package corpusgen

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// small is a tree small enough to write twice per test in well under a
// second.
func small(dir string, seed uint64) Options {
	return Options{Dir: dir, ModelsMB: 12, LogsMB: 1, Configs: 60, Seed: seed}
}

func generate(t *testing.T, o Options) string {
	t.Helper()
	if err := Generate(o); err != nil {
		t.Fatal(err)
	}
	return o.Dir
}

// entry is everything about one path that two equal trees share.
type entry struct {
	mode    fs.FileMode
	size    int64
	mtime   int64
	target  string
	sum     [32]byte
	xattrs  string
	linkKey string // the first path of its inode, for hardlinks
	blocks  int64
}

// snapshotTree describes every entry under root by relative path.
func snapshotTree(t *testing.T, root string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	inodes := map[uint64]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		e := entry{mode: fi.Mode(), size: fi.Size(), mtime: fi.ModTime().UnixNano(), xattrs: xattrs(t, p), blocks: st.Blocks}
		if fi.IsDir() {
			e.size = 0
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			e.target, _ = os.Readlink(p)
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.sum = sha256.Sum256(b)
			if st.Nlink > 1 {
				if first, ok := inodes[st.Ino]; ok {
					e.linkKey = first
				} else {
					inodes[st.Ino] = rel
					e.linkKey = rel
				}
			}
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func xattrs(t *testing.T, p string) string {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		return ""
	}
	names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		if name == "" {
			continue
		}
		v := make([]byte, 4096)
		vn, _ := unix.Lgetxattr(p, name, v)
		fmt.Fprintf(&b, "%s=%q;", name, v[:max(vn, 0)])
	}
	return b.String()
}

func diffTrees(a, b map[string]entry) []string {
	var out []string
	for p, ea := range a {
		eb, ok := b[p]
		switch {
		case !ok:
			out = append(out, "only in the first: "+p)
		case ea.mode != eb.mode || ea.size != eb.size || ea.mtime != eb.mtime || ea.target != eb.target ||
			ea.sum != eb.sum || ea.xattrs != eb.xattrs || ea.linkKey != eb.linkKey:
			out = append(out, fmt.Sprintf("%s: %+v vs %+v", p, ea, eb))
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			out = append(out, "only in the second: "+p)
		}
	}
	sort.Strings(out)
	return out
}

func TestDeterministic(t *testing.T) {
	a := snapshotTree(t, generate(t, small(t.TempDir(), 7)))
	// Another GOMAXPROCS must not change a byte: segments, not workers,
	// own the random streams.
	prev := runtime.GOMAXPROCS(1)
	b := snapshotTree(t, generate(t, small(t.TempDir(), 7)))
	runtime.GOMAXPROCS(prev)
	if d := diffTrees(a, b); len(d) > 0 {
		t.Fatalf("two trees of seed 7 differ:\n%s", strings.Join(d[:min(len(d), 20)], "\n"))
	}
	if len(a) < 100 {
		t.Fatalf("only %d entries in the tree", len(a))
	}

	// Another seed is another tree: weights, configs and logs all differ.
	c := snapshotTree(t, generate(t, small(t.TempDir(), 8)))
	for _, p := range []string{"models/mixtral/model.safetensors", "logs/citadel-hermes.log", "models/hermes/tokenizer.json"} {
		if a[p].sum == c[p].sum {
			t.Errorf("%s is the same for seeds 7 and 8", p)
		}
	}
	ca, _ := filepath.Glob(filepath.Join(generate(t, small(t.TempDir(), 9)), "configs/svc00/part0/*"))
	cb, _ := filepath.Glob(filepath.Join(generate(t, small(t.TempDir(), 10)), "configs/svc00/part0/*"))
	if len(ca) == 0 || len(cb) == 0 || filepath.Base(ca[0]) == filepath.Base(cb[0]) {
		t.Errorf("configs of seeds 9 and 10 have the same names: %v %v", ca, cb)
	}
}

func TestEdgeCases(t *testing.T) {
	root := filepath.Join(generate(t, small(t.TempDir(), 1)), "configs")
	lst := func(p string) os.FileInfo {
		t.Helper()
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	if m := lst("citadel-ai.env").Mode().Perm(); m != 0o600 {
		t.Errorf("secret has mode %o", m)
	}
	if fi := lst("empty-dir"); !fi.IsDir() || fi.Mode().Perm() != 0o750 {
		t.Errorf("empty-dir: %v", fi.Mode())
	}
	if fi := lst("empty.conf"); fi.Size() != 0 {
		t.Errorf("empty.conf has %d bytes", fi.Size())
	}
	if m := lst("backup-hook.sh").Mode().Perm(); m != 0o755 {
		t.Errorf("hook has mode %o", m)
	}
	for link, want := range map[string]string{"current": "svc00/part0", "dangling-link": "/nonexistent/target"} {
		if got, err := os.Readlink(filepath.Join(root, link)); err != nil || got != want {
			t.Errorf("%s -> %q, %v", link, got, err)
		}
	}
	a, b := lst("hardlink-a.yaml").Sys().(*syscall.Stat_t), lst("hardlink-b.yaml").Sys().(*syscall.Stat_t)
	if a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("hardlink pair: inodes %d %d, %d links", a.Ino, b.Ino, a.Nlink)
	}
	sp := lst("sparse.img")
	if sp.Size() != 256<<20 || sp.Sys().(*syscall.Stat_t).Blocks*512 > 4<<20 {
		t.Errorf("sparse.img: %d bytes, %d allocated", sp.Size(), sp.Sys().(*syscall.Stat_t).Blocks*512)
	}
	ents, err := os.ReadDir(filepath.Join(root, "odd names"))
	if err != nil || len(ents) < 4 {
		t.Fatalf("odd names: %v %v", ents, err)
	}
	long := false
	for _, e := range ents {
		long = long || len(e.Name()) >= 240
	}
	if !long {
		t.Error("no long name under odd names/")
	}
	if files, _ := filepath.Glob(filepath.Join(root, "deep", "*", "*", "*", "*", "*", "*", "*", "*", "*", "*", "*", "*", "*", "*", "*", "*", "*", "*", "*", "*", "*", "*", "*", "*", "leaf.yaml")); len(files) != 1 {
		t.Errorf("deep leaf: %v", files)
	}
	if files, _ := filepath.Glob(filepath.Join(root, "svc00", "part0", "*")); len(files) == 0 {
		t.Error("no configs/svc00/part0 files (the tests use them)")
	}
	// xattrs where the file system has them.
	probe := filepath.Join(t.TempDir(), "probe")
	os.WriteFile(probe, nil, 0o644)
	if unix.Lsetxattr(probe, "user.x", []byte("1"), 0) == nil {
		if x := xattrs(t, filepath.Join(root, "svc03")); !strings.Contains(x, "user.citadel.owner") {
			t.Errorf("svc03 xattrs: %q", x)
		}
	}
}

// weightStats reads every BF16 value of a tensor.
func tensorValues(t *testing.T, path string, ti TensorInfo) []float64 {
	t.Helper()
	b := make([]byte, ti.End-ti.Begin)
	if err := readAt(path, b, ti.Begin); err != nil {
		t.Fatal(err)
	}
	out := make([]float64, len(b)/2)
	for i := range out {
		out[i] = float64(bf16At(b[2*i:]))
	}
	return out
}

func meanStd(v []float64) (float64, float64) {
	var s, s2 float64
	for _, x := range v {
		s += x
		s2 += x * x
	}
	m := s / float64(len(v))
	return m, math.Sqrt(s2/float64(len(v)) - m*m)
}

func TestSafetensorsAreValidAndLookTrained(t *testing.T) {
	dir := generate(t, Options{Dir: t.TempDir(), ModelsMB: 40, LogsMB: 1, Configs: 10, ShardMB: 4})
	var total int64
	for _, m := range ModelNames() {
		ss, err := filepath.Glob(filepath.Join(dir, "models", m, "*.safetensors"))
		if err != nil || len(ss) == 0 {
			t.Fatalf("%s: no shards (%v)", m, err)
		}
		if len(ss) > 1 {
			if _, err := os.Stat(filepath.Join(dir, "models", m, "model.safetensors.index.json")); err != nil {
				t.Errorf("%s: %d shards but no index: %v", m, len(ss), err)
			}
		}
		for _, p := range ss {
			sh, err := ReadShard(p)
			if err != nil {
				t.Fatal(err)
			}
			if sh.DataStart()%8 != 0 {
				t.Errorf("%s: data starts at %d, not 8-aligned", p, sh.DataStart())
			}
			fi, _ := os.Stat(p)
			total += fi.Size()
			for _, ti := range sh.Tensors {
				v := tensorValues(t, p, ti)
				mean, std := meanStd(v)
				switch kindFromName(ti.Name) {
				case kindNorm:
					if mean < 0.2 || mean > 1.2 {
						t.Errorf("%s %s: norm gains average %.3f", p, ti.Name, mean)
					}
				default:
					if math.Abs(mean) > 0.002 || std < 0.005 || std > 0.05 {
						t.Errorf("%s %s: mean %.4f std %.4f, want N(0, ~0.02)", p, ti.Name, mean, std)
					}
					if len(v) > 100000 {
						big := 0
						for _, x := range v {
							if math.Abs(x) > 6*std {
								big++
							}
						}
						// A normal has ~2e-9 beyond 6σ; the tail puts ~1e-3 there.
						if big == 0 || big > len(v)/200 {
							t.Errorf("%s %s: %d of %d values beyond 6σ", p, ti.Name, big, len(v))
						}
					}
				}
			}
		}
	}
	if total < 30<<20 || total > 44<<20 {
		t.Errorf("models hold %d bytes for -models-mb 40", total)
	}
}

func TestPutBF16RoundsToNearestEven(t *testing.T) {
	b := make([]byte, 2)
	for _, c := range []struct {
		in   float32
		want uint16
	}{
		{1.0, 0x3f80},
		{math.Float32frombits(0x3f808000), 0x3f80}, // halfway, even below
		{math.Float32frombits(0x3f818000), 0x3f82}, // halfway, even above
		{math.Float32frombits(0x3f808001), 0x3f81},
		{-2.5, 0xc020},
	} {
		putBF16(b, c.in)
		if got := uint16(b[0]) | uint16(b[1])<<8; got != c.want {
			t.Errorf("bf16(%08x) = %04x, want %04x", math.Float32bits(c.in), got, c.want)
		}
	}
}

// changed returns the relative paths whose content differs between two
// snapshots, and those only in after.
func changed(before, after map[string]entry) (mod, added []string) {
	for p, a := range after {
		b, ok := before[p]
		switch {
		case !ok:
			added = append(added, p)
		case a.sum != b.sum || a.size != b.size:
			mod = append(mod, p)
		}
	}
	sort.Strings(mod)
	sort.Strings(added)
	return mod, added
}

func mutate(t *testing.T, o Options, m Mutation) []string {
	t.Helper()
	lines, err := Mutate(o, m)
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

func TestFinetuneRewritesFivePercentInPlace(t *testing.T) {
	o := small(t.TempDir(), 3)
	generate(t, o)
	before := snapshotTree(t, o.Dir)
	old, _ := os.ReadFile(filepath.Join(o.Dir, "models/mixtral/model.safetensors"))
	lines := mutate(t, o, Mutation{Kind: "finetune", Model: "mixtral"})
	mod, added := changed(before, snapshotTree(t, o.Dir))
	if len(mod) != 1 || mod[0] != "models/mixtral/model.safetensors" || len(added) != 0 {
		t.Fatalf("finetune changed %v, added %v; want only mixtral's shard", mod, added)
	}
	var n, off int64
	var path string
	if len(lines) != 1 {
		t.Fatalf("report: %q", lines)
	}
	if _, err := fmt.Sscanf(lines[0], "finetune: rewrote %d bytes of %s at %d", &n, &path, &off); err != nil {
		t.Fatalf("report %q: %v", lines[0], err)
	}
	cur, _ := os.ReadFile(path)
	if len(cur) != len(old) || n < int64(len(old))/20 || n > int64(len(old))/4 {
		t.Fatalf("size %d -> %d, rewrote %d", len(old), len(cur), n)
	}
	if !bytes.Equal(cur[:off], old[:off]) || !bytes.Equal(cur[off+n:], old[off+n:]) {
		t.Error("bytes outside the reported region changed")
	}
	diff := 0
	for i := off; i < off+n; i += 2 {
		if cur[i] != old[i] || cur[i+1] != old[i+1] {
			diff++
		}
	}
	if diff < int(n/2)/2 {
		t.Errorf("only %d of %d values in the region changed", diff, n/2)
	}
	if _, err := ReadShard(path); err != nil {
		t.Errorf("after finetune: %v", err)
	}
}

func TestInsertShiftMovesEveryTensorByte(t *testing.T) {
	o := small(t.TempDir(), 4)
	generate(t, o)
	p := filepath.Join(o.Dir, "models/yi34b/model.safetensors")
	old, _ := os.ReadFile(p)
	oldSh, err := ReadShard(p)
	if err != nil {
		t.Fatal(err)
	}
	lines := mutate(t, o, Mutation{Kind: "insert-shift", Model: "yi34b"})
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "insert-shift: "+p+" header ") {
		t.Fatalf("report %q", lines)
	}
	sh, err := ReadShard(p)
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := os.ReadFile(p)
	if sh.HeaderLen <= oldSh.HeaderLen || !bytes.Equal(cur[sh.DataStart():], old[oldSh.DataStart():]) {
		t.Errorf("header %d -> %d; tensor data the same: %v", oldSh.HeaderLen, sh.HeaderLen,
			bytes.Equal(cur[sh.DataStart():], old[oldSh.DataStart():]))
	}
	if len(sh.Tensors) != len(oldSh.Tensors) {
		t.Errorf("%d tensors, were %d", len(sh.Tensors), len(oldSh.Tensors))
	}
}

func TestNewModelSharesAttentionWithItsSource(t *testing.T) {
	o := Options{Dir: t.TempDir(), ModelsMB: 24, LogsMB: 1, Configs: 10, Seed: 5, ShardMB: 4}
	generate(t, o)
	before := snapshotTree(t, o.Dir)
	lines := mutate(t, o, Mutation{Kind: "new-model", Model: "hermes"})
	_, added := changed(before, snapshotTree(t, o.Dir))
	if len(added) == 0 || len(lines) == 0 {
		t.Fatalf("new-model added %v, reported %q", added, lines)
	}
	tensors := func(model string) (map[string][]byte, []string) {
		ss, _ := filepath.Glob(filepath.Join(o.Dir, "models", model, "*.safetensors"))
		out := map[string][]byte{}
		var order []string
		for _, p := range ss {
			sh, err := ReadShard(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, ti := range sh.Tensors {
				b := make([]byte, ti.End-ti.Begin)
				readAt(p, b, ti.Begin)
				out[ti.Name] = b
				order = append(order, ti.Name)
			}
		}
		return out, order
	}
	src, srcOrder := tensors("hermes")
	dst, dstOrder := tensors("merged-5")
	if len(src) != len(dst) {
		t.Fatalf("merged model has %d tensors, its source %d", len(dst), len(src))
	}
	same, attn := 0, 0
	for name, b := range dst {
		eq := bytes.Equal(b, src[name])
		if eq {
			same++
		}
		switch {
		case strings.Contains(name, "self_attn.") || kindFromName(name) == kindEmbed:
			attn++
			if !eq {
				t.Errorf("%s differs from the source's", name)
			}
		case eq:
			t.Errorf("%s (not attention) is a copy", name)
		}
	}
	if same != attn || same == 0 {
		t.Errorf("%d tensors shared, %d attention/embedding", same, attn)
	}
	if strings.Join(srcOrder, ",") == strings.Join(dstOrder, ",") {
		t.Error("merged model's tensors are in the source's order")
	}
}

func TestDayTouchesLogsAndConfigsOnly(t *testing.T) {
	o := small(t.TempDir(), 2)
	generate(t, o)
	before := snapshotTree(t, o.Dir)
	lines := mutate(t, o, Mutation{Kind: "day"})
	after := snapshotTree(t, o.Dir)
	mod, added := changed(before, after)
	if len(added) != 0 {
		t.Errorf("day added %v", added)
	}
	logs, cfgs := 0, 0
	for _, p := range mod {
		switch {
		case strings.HasPrefix(p, "logs/"):
			logs++
			if after[p].size <= before[p].size {
				t.Errorf("%s did not grow", p)
			}
		case strings.HasPrefix(p, "configs/svc"):
			cfgs++
		default:
			t.Errorf("day changed %s", p)
		}
	}
	if logs != len(services)+1 || cfgs == 0 || cfgs > 3 {
		t.Errorf("day changed %d logs and %d configs: %v", logs, cfgs, mod)
	}
	if len(lines) != logs+cfgs && len(lines) < logs+cfgs {
		t.Errorf("report has %d lines for %d changes", len(lines), logs+cfgs)
	}
}

// TestMutationsAreDeterministic: the same mutation on two equal trees
// gives equal trees (mtimes aside: a mutation is now).
func TestMutationsAreDeterministic(t *testing.T) {
	a, b := small(t.TempDir(), 6), small(t.TempDir(), 6)
	generate(t, a)
	generate(t, b)
	for _, m := range Mutations {
		ra := mutate(t, a, Mutation{Kind: m})
		rb := mutate(t, b, Mutation{Kind: m})
		if strings.ReplaceAll(strings.Join(ra, "\n"), a.Dir, "") != strings.ReplaceAll(strings.Join(rb, "\n"), b.Dir, "") {
			t.Errorf("%s reported %q and %q", m, ra, rb)
		}
	}
	ta, tb := snapshotTree(t, a.Dir), snapshotTree(t, b.Dir)
	for p := range ta {
		e := tb[p]
		e.mtime = ta[p].mtime
		tb[p] = e
	}
	if d := diffTrees(ta, tb); len(d) > 0 {
		t.Fatalf("the same mutations gave different trees:\n%s", strings.Join(d[:min(len(d), 20)], "\n"))
	}
}

func TestMutateErrors(t *testing.T) {
	o := small(t.TempDir(), 1)
	if _, err := Mutate(o, Mutation{Kind: "day"}); err == nil {
		t.Error("day on an empty directory succeeded")
	}
	if _, err := Mutate(Options{Dir: filepath.Join(o.Dir, "missing")}, Mutation{Kind: "finetune"}); err == nil {
		t.Error("finetune on a missing directory succeeded")
	}
	generate(t, o)
	if _, err := Mutate(o, Mutation{Kind: "rewrite-all"}); !errors.Is(err, ErrUnknownMutation) {
		t.Errorf("unknown mutation: %v", err)
	}
	if _, err := Mutate(o, Mutation{Kind: "finetune", Model: "nosuch"}); err == nil {
		t.Error("finetune of a missing model succeeded")
	}
	if err := Generate(Options{}); err == nil {
		t.Error("Generate without a directory succeeded")
	}
}
