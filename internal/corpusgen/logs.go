package corpusgen

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"
)

// services write /opt/citadel/logs/citadel-<service>.log; the first seven
// are the model servers.
var services = []string{"mixtral", "yi34b", "hermes", "openchat", "coder", "phi3", "vision", "monitor", "storage", "gpu"}

var levels = []string{"INFO", "INFO", "INFO", "INFO", "DEBUG", "DEBUG", "WARNING", "ERROR"}

var routes = []string{"POST /v1/chat/completions", "POST /v1/completions", "POST /v1/embeddings", "GET /health", "GET /metrics"}

// logLine is one line of a service's Python logging output.
func logLine(r *rand.Rand, svc string, t time.Time) string {
	ts := t.Format("2006-01-02 15:04:05,000")
	lvl := levels[r.IntN(len(levels))]
	switch svc {
	case "monitor":
		return fmt.Sprintf("%s - %s - monitor - cpu=%.1f%% mem=%.1f%% disk_models=%d%% gpu0_temp=%dC\n",
			ts, lvl, 100*r.Float64(), 40+50*r.Float64(), 40+r.IntN(50), 35+r.IntN(50))
	case "storage":
		return fmt.Sprintf("%s - %s - storage - sync %s: %d files, %d bytes in %dms\n",
			ts, lvl, word(r), r.IntN(500), r.IntN(1<<30), r.IntN(60000))
	case "gpu":
		return fmt.Sprintf("%s - %s - gpu - gpu%d util=%d%% mem_used=%dMiB power=%dW ecc_errors=%d\n",
			ts, lvl, r.IntN(4), r.IntN(101), r.IntN(81920), 60+r.IntN(640), r.IntN(2))
	}
	if lvl == "ERROR" {
		return fmt.Sprintf("%s - ERROR - %s - request %08x failed: %s (CUDA out of memory: tried to allocate %d MiB)\n",
			ts, svc, r.Uint32(), word(r), 64+r.IntN(4096))
	}
	return fmt.Sprintf("%s - %s - %s - %s 200 request_id=%08x prompt_tokens=%d completion_tokens=%d latency_ms=%d user=%s\n",
		ts, lvl, svc, routes[r.IntN(len(routes))], r.Uint32(), r.IntN(8192), r.IntN(2048), 20+r.IntN(9000), word(r))
}

// accessLine is one JSON line of a model server's access log.
func accessLine(r *rand.Rand, model string, t time.Time) string {
	return fmt.Sprintf(`{"ts":%q,"model":%q,"route":"/v1/chat/completions","status":%d,"prompt_tokens":%d,"completion_tokens":%d,"ttft_ms":%.1f,"tpot_ms":%.2f,"client":"10.0.%d.%d"}`+"\n",
		t.Format(time.RFC3339Nano), model, []int{200, 200, 200, 200, 200, 429, 500}[r.IntN(7)], r.IntN(8192), r.IntN(2048),
		20+400*r.Float64(), 5+40*r.Float64(), r.IntN(8), r.IntN(255))
}

// gpuLine is one line of nvidia-smi --query-gpu ... --format=csv.
func gpuLine(r *rand.Rand, _ string, t time.Time) string {
	return fmt.Sprintf("%s, %d, NVIDIA H100 80GB HBM3, %d, %d %%, %d %%, %d MiB, 81559 MiB, %.2f W\n",
		t.Format("2006/01/02 15:04:05.000"), r.IntN(4), 30+r.IntN(55), r.IntN(101), r.IntN(101), r.IntN(81559), 60+640*r.Float64())
}

type lineFunc func(r *rand.Rand, subject string, t time.Time) string

// writeLines appends about n bytes of lines starting at start to w.
func writeLines(w io.Writer, r *rand.Rand, line lineFunc, subject string, start time.Time, n int64) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	t := start
	for written := int64(0); written < n; {
		t = t.Add(time.Duration(r.IntN(2000)) * time.Millisecond)
		k, err := bw.WriteString(line(r, subject, t))
		if err != nil {
			return err
		}
		written += int64(k)
	}
	return bw.Flush()
}

// appendLog appends about n bytes of lines to path (creating it 0640).
func appendLog(path string, r *rand.Rand, line lineFunc, subject string, start time.Time, n int64) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("corpusgen: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("corpusgen: %w", err)
	}
	err = writeLines(f, r, line, subject, start, n)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("corpusgen: write %s: %w", path, err)
	}
	return nil
}

// gzLog writes a rotated generation, gzip-compressed as logrotate does.
func gzLog(path string, r *rand.Rand, line lineFunc, subject string, start time.Time, n int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("corpusgen: %w", err)
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.DefaultCompression)
	zw.ModTime = start // the header's time, or the bytes would differ per run
	err = writeLines(zw, r, line, subject, start, n)
	if zerr := zw.Close(); err == nil {
		err = zerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("corpusgen: write %s: %w", path, err)
	}
	return nil
}

func (g *gen) logs() error {
	root := filepath.Join(g.o.Dir, "logs")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("corpusgen: %w", err)
	}
	// Service logs get two shares each; access logs, collector.log and
	// gpu.csv one.
	share := (int64(g.o.LogsMB) << 20) / int64(2*len(services)+7+2)
	for i, s := range services {
		p := filepath.Join(root, "citadel-"+s+".log")
		if err := appendLog(p, g.rng("log/"+s), logLine, s, Epoch, 2*share*2/3); err != nil {
			return err
		}
		if err := stamp(p, 24*60-i); err != nil {
			return err
		}
		if i%3 == 0 {
			gz := p + ".1.gz"
			// Compressed, so it holds more lines than its share of bytes.
			if err := gzLog(gz, g.rng("log-rotated/"+s), logLine, s, Epoch.Add(-24*time.Hour), 2*share/3*5); err != nil {
				return err
			}
			if err := stamp(gz, -i); err != nil {
				return err
			}
		}
	}
	for i, m := range services[:7] {
		p := filepath.Join(root, "access", m+".jsonl")
		if err := appendLog(p, g.rng("access/"+m), accessLine, m, Epoch, share); err != nil {
			return err
		}
		if err := stamp(p, 24*60-20-i); err != nil {
			return err
		}
	}
	for i, f := range []struct {
		name string
		line lineFunc
	}{{"collector.log", logLine}, {"gpu.csv", gpuLine}} {
		p := filepath.Join(root, "monitoring", f.name)
		if err := appendLog(p, g.rng("monitoring/"+f.name), f.line, "monitor", Epoch, share); err != nil {
			return err
		}
		if err := stamp(p, 24*60-30-i); err != nil {
			return err
		}
	}
	return nil
}

// logsAppend is one day of logging: 256 KiB more in each service log and
// 16 KiB in gpu.csv, timestamped Seed days after Epoch.
func (g *gen) logsAppend() ([]string, error) {
	root := filepath.Join(g.o.Dir, "logs")
	day := Epoch.Add(time.Duration(g.o.Seed) * 24 * time.Hour)
	var report []string
	for _, s := range services {
		p := filepath.Join(root, "citadel-"+s+".log")
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("corpusgen: %w", err)
		}
		if err := appendLog(p, g.rng("logs-append/"+s), logLine, s, day, 256<<10); err != nil {
			return nil, err
		}
		report = append(report, "logs-append: "+p)
	}
	p := filepath.Join(root, "monitoring", "gpu.csv")
	if err := appendLog(p, g.rng("logs-append/gpu.csv"), gpuLine, "", day, 16<<10); err != nil {
		return nil, err
	}
	return append(report, "logs-append: "+p), nil
}
