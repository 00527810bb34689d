package codec

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// The benchmarks encode and decode 1 MiB chunks, the chunker's average,
// and report throughput on the raw bytes (MB/s) and the output's size as a
// fraction of the input ("ratio"). Run them one core at a time:
//
//	go test -run='^$' -bench=. -benchtime=20x -cpu=1 ./snapshot/codec/

const benchChunk = 1 << 20

type benchData struct {
	name string
	data []byte
}

func benchInputs() []benchData {
	return []benchData{
		{"bf16", bf16Weights(benchChunk, 100)},
		{"bf16-odd-phase", bf16Weights(benchChunk+1, 101)[1:]},
		{"f32", f32Weights(benchChunk, 102)},
		{"text", logText(benchChunk, 103)},
	}
}

type benchCodec struct {
	name  string
	id    ID
	level zstd.EncoderLevel
}

var benchCodecs = []benchCodec{
	{"raw", Raw, 0},
	{"zstd-fastest", Zstd, zstd.SpeedFastest},
	{"zstd-default", Zstd, zstd.SpeedDefault},
	{"bf16", BF16, 0},
	{"f32", F32, 0},
}

func BenchmarkEncode(b *testing.B) {
	for _, in := range benchInputs() {
		for _, c := range benchCodecs {
			b.Run(in.name+"/"+c.name, func(b *testing.B) {
				enc := NewEncoder(Options{ZstdLevel: c.level})
				out, err := enc.EncodeWith(c.id, nil, in.data)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(len(in.data)))
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					out, err = enc.EncodeWith(c.id, out, in.data)
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(out))/float64(len(in.data)), "ratio")
			})
		}
		// The chooser, as the pipeline calls it.
		b.Run(in.name+"/auto", func(b *testing.B) {
			enc := NewEncoder(Options{})
			var out []byte
			var id ID
			var err error
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			for b.Loop() {
				out, id, err = enc.Encode(out, in.data)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(out))/float64(len(in.data)), "ratio")
			b.ReportMetric(float64(id), "id")
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, in := range benchInputs() {
		for _, c := range benchCodecs {
			b.Run(in.name+"/"+c.name, func(b *testing.B) {
				out, err := NewEncoder(Options{ZstdLevel: c.level}).EncodeWith(c.id, nil, in.data)
				if err != nil {
					b.Fatal(err)
				}
				dec := NewDecoder()
				var got []byte
				b.SetBytes(int64(len(in.data)))
				b.ReportAllocs()
				for b.Loop() {
					got, err = dec.Decode(got, out, c.id, len(in.data))
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(out))/float64(len(in.data)), "ratio")
			})
		}
	}
}

// BenchmarkCorpus runs the chooser over real files, each cut into 1 MiB
// chunks: set CODEC_CORPUS to a corpusgen output (models/, configs/,
// logs/). Each top-level folder is one sub-benchmark, with zstd at its
// fastest and default levels, encoding and decoding separately.
func BenchmarkCorpus(b *testing.B) {
	root := os.Getenv("CODEC_CORPUS")
	if root == "" {
		b.Skip("CODEC_CORPUS not set")
	}
	for _, dir := range []string{"models", "configs", "logs"} {
		var chunks [][]byte
		total := 0
		filepath.WalkDir(filepath.Join(root, dir), func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return nil
			}
			for len(data) > 0 {
				n := min(len(data), benchChunk)
				chunks = append(chunks, data[:n])
				total += n
				data = data[n:]
			}
			return nil
		})
		if total == 0 {
			continue
		}
		for _, level := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault} {
			enc := NewEncoder(Options{ZstdLevel: level})
			encoded := make([][]byte, len(chunks))
			ids := make([]ID, len(chunks))
			size := 0
			perID := map[ID]int{}
			for i, c := range chunks {
				out, id, err := enc.Encode(nil, c)
				if err != nil {
					b.Fatal(err)
				}
				encoded[i], ids[i] = out, id
				size += len(out)
				perID[id] += len(c)
			}
			b.Logf("%s zstd-%s: %d chunks, bytes by codec %v", dir, level, len(chunks), perID)
			name := dir + "/zstd-" + level.String()
			b.Run(name+"/encode", func(b *testing.B) {
				var out []byte
				var err error
				b.SetBytes(int64(total))
				for b.Loop() {
					for _, c := range chunks {
						if out, _, err = enc.Encode(out, c); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(size)/float64(total), "ratio")
			})
			b.Run(name+"/decode", func(b *testing.B) {
				dec := NewDecoder()
				var got []byte
				var err error
				b.SetBytes(int64(total))
				for b.Loop() {
					for i, c := range encoded {
						if got, err = dec.Decode(got, c, ids[i], len(chunks[i])); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(size)/float64(total), "ratio")
			})
		}
	}
}
