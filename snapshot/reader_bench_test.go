package snapshot

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"syscall"
	"testing"
	"time"

	"citadelfs/index"
	"citadelfs/internal/corpusgen"
	"citadelfs/snapshot/chunker"
)

// BenchmarkSequentialRead reads a corpusgen model shard (bf16 weights)
// from start to end through the snapshot reader, in the mount's 1 MiB
// reads (Slices), from a repository in the clear and an encrypted one
// (aes-256-gcm): make bench's seq-packs-warm without the kernel. The
// packs are in the page cache (warmPacks); every iteration opens the
// repository afresh (not timed), so the decoded-chunk cache starts cold and every
// byte is read, opened (encrypted), decoded and verified. The shard is
// the largest file of a tree of CITADELFS_BENCH_READ_MB MiB of models
// (default 1000: the shard is about 300 MiB).
func BenchmarkSequentialRead(b *testing.B) {
	mb := 1000
	if v, err := strconv.Atoi(os.Getenv("CITADELFS_BENCH_READ_MB")); err == nil && v > 0 {
		mb = v
	}
	src := filepath.Join(b.TempDir(), "src")
	if err := corpusgen.Generate(corpusgen.Options{Dir: src, ModelsMB: mb, ShardMB: 512, LogsMB: 1, Configs: 1}); err != nil {
		b.Fatal(err)
	}
	var big string
	var bigSize int64
	filepath.WalkDir(filepath.Join(src, "models"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil && fi.Size() > bigSize {
				big, bigSize = p, fi.Size()
			}
		}
		return nil
	})
	if big == "" {
		b.Fatal("corpusgen wrote no model file")
	}
	for _, enc := range []string{index.EncryptionNone, index.EncryptionAESGCM} {
		b.Run(enc, func(b *testing.B) {
			dir, open := benchRepo(b, enc)
			r := open()
			res, err := r.TakeSnapshot(context.Background(), Request{Sources: []SourceSpec{{Label: "models", Path: filepath.Dir(big)}}})
			r.Close()
			if err != nil {
				b.Fatal(err)
			}
			warmPacks(b, dir)
			b.SetBytes(bigSize)
			var cpu time.Duration
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				r := open()
				tree, err := r.LoadTree(context.Background(), res.Snapshot.Sources[0].Tree)
				if err != nil {
					b.Fatal(err)
				}
				var node *Node
				for i := range tree.Nodes {
					if tree.Nodes[i].Name == filepath.Base(big) {
						node = &tree.Nodes[i]
					}
				}
				if node == nil || node.Size != bigSize {
					b.Fatalf("%s not in the snapshot", big)
				}
				f := r.OpenFile(node)
				c0 := cpuTime()
				b.StartTimer()
				// Labelled, with the prefetch workers it starts, for
				// go tool pprof -tagfocus read=seq.
				pprof.Do(context.Background(), pprof.Labels("read", "seq"), func(ctx context.Context) {
					for off := int64(0); off < bigSize; off += 1 << 20 {
						_, release, err := f.Slices(ctx, off, 1<<20)
						if err != nil {
							b.Fatal(err)
						}
						release()
					}
				})
				b.StopTimer()
				cpu += cpuTime() - c0
				r.Close()
				b.StartTimer()
			}
			// CPU time (every goroutine's, GC included) per GB read: on a
			// shared 2-core machine steadier than the wall time.
			b.ReportMetric(cpu.Seconds()/(float64(bigSize)*float64(b.N)/1e9), "cpu-s/GB")
		})
	}
}

// warmPacks reads every file under dir into the page cache, as make
// bench's cat_repo does: packs are written with O_DIRECT, so a snapshot
// leaves none of them there.
func warmPacks(b *testing.B, dir string) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if _, err := os.ReadFile(p); err != nil {
				b.Fatal(err)
			}
		}
		return nil
	})
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchRepo makes a repository (in the clear: a directory; encrypted: the
// store layout in a directory, as init makes it) and returns how to open
// it.
func benchRepo(b *testing.B, enc string) (string, func() *Repository) {
	dir := filepath.Join(b.TempDir(), "repo")
	if enc == index.EncryptionNone {
		if err := Init(dir, Options{Reserve: -1}); err != nil {
			b.Fatal(err)
		}
		return dir, func() *Repository {
			r, err := Open(dir, Options{})
			if err != nil {
				b.Fatal(err)
			}
			return r
		}
	}
	s := index.NewLocalStore(dir, 1)
	p := chunker.Default
	_, err := index.InitStoreWith(s, dir, index.InitOptions{Chunker: index.ChunkerParams{Min: p.Min, Avg: p.Avg, Max: p.Max},
		Encryption: enc})
	s.Close()
	if err != nil {
		b.Fatal(err)
	}
	master, err := index.NewMasterKey()
	if err != nil {
		b.Fatal(err)
	}
	k, err := index.KeysFromMaster(master)
	if err != nil {
		b.Fatal(err)
	}
	cache := b.TempDir()
	return dir, func() *Repository {
		s := index.NewLocalStore(dir, 64)
		r, err := OpenStore(s, dir, Options{Keys: k, CacheDir: cache})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return r
	}
}
