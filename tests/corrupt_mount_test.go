package tests

import (
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// largestDataChunk finds, from the pack trailers (docs/format.md), the
// largest stored data chunk in the repository: its pack and its byte range.
func largestDataChunk(t *testing.T, repo string) (pack string, off, length int64) {
	t.Helper()
	packs, _ := filepath.Glob(filepath.Join(repo, "packs", "*", "*.pack"))
	for _, p := range packs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 16 || string(b[len(b)-8:]) != "CTDLEND1" {
			t.Fatalf("%s: no pack footer", p)
		}
		tlen := int(binary.LittleEndian.Uint32(b[len(b)-16:]))
		trailer := b[len(b)-16-tlen : len(b)-16]
		for e := trailer; len(e) >= 50; e = e[50:] {
			if e[0] != 0 { // 0: data chunk
				continue
			}
			o, l := int64(binary.LittleEndian.Uint64(e[34:])), int64(binary.LittleEndian.Uint32(e[42:]))
			if l > length {
				pack, off, length = p, o, l
			}
		}
	}
	if length == 0 {
		t.Fatalf("no data chunk in any pack of %s", repo)
	}
	return pack, off, length
}

// TestCorruptChunkThroughMountAlerts flips one byte inside a chunk's stored
// data, reads the file through the real mount and expects EIO for the
// reader and, within a few monitor cycles, a firing backup_corrupt alert
// naming the file, in alerts.json, alerts, health, metrics.json and the
// Prometheus metrics.
func TestCorruptChunkThroughMountAlerts(t *testing.T) {
	needMount(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	// Random bytes: incompressible, so the stored chunk is as large as the
	// file and a byte in its middle is data, not codec framing.
	data := make([]byte, 512<<10)
	rng := rand.NewChaCha8([32]byte{7})
	rng.Read(data)
	os.WriteFile(filepath.Join(src, "weights.bin"), data, 0o644)
	os.WriteFile(filepath.Join(src, "fine.txt"), []byte("intact\n"), 0o644)
	repo := initRepo(t, dir)
	takeSnapshot(t, repo, "--source", "data="+src)

	pack, off, length := largestDataChunk(t, repo)
	flipByte(t, pack, off+length/2)

	cfg := fastMonitorConfig(t, dir)
	mp := filepath.Join(dir, "mnt")
	m := startMount(t, repo, mp, cfg)
	status := func(name string) string {
		b, err := os.ReadFile(filepath.Join(mp, "status", name))
		if err != nil {
			t.Fatalf("read status/%s: %v", name, err)
		}
		return string(b)
	}

	// An intact file reads, and raises nothing.
	if r := runCmd(t, os.Environ(), "cat", filepath.Join(mp, "latest", "data", "fine.txt")); r.code != 0 || r.stdout != "intact\n" {
		t.Fatalf("cat of an intact file: %s", r)
	}
	time.Sleep(1500 * time.Millisecond) // at least one monitor cycle
	if a := status("alerts.json"); strings.Contains(a, "backup_corrupt") {
		t.Fatalf("backup_corrupt before any corrupt read:\n%s", a)
	}

	bad := filepath.Join(mp, "latest", "data", "weights.bin")
	r := runCmd(t, os.Environ(), "cat", bad)
	if r.code == 0 || !strings.Contains(r.stderr, "Input/output error") {
		t.Fatalf("cat of a file with a corrupt chunk: exit %d, want an I/O error\nstderr: %s", r.code, r.stderr)
	}

	// alerts.json is the seed's array of alerts, oldest first.
	type alertsDoc []struct {
		Rule, Severity, Subject, State, Message string
	}
	var fired *alertsDoc
	var last string
	deadline := time.Now().Add(15 * time.Second) // the interval is 1s
	for fired == nil && time.Now().Before(deadline) {
		last = status("alerts.json")
		var doc alertsDoc
		if err := json.Unmarshal([]byte(last), &doc); err != nil {
			t.Fatalf("alerts.json: %v\n%s", err, last)
		}
		for _, a := range doc {
			if a.Rule == "backup_corrupt" && a.State == "firing" {
				fired = &doc
				if a.Severity != "critical" || a.Subject != "repository" || !strings.Contains(a.Message, "latest/data/weights.bin") ||
					!strings.Contains(a.Message, "hash check") {
					t.Errorf("backup_corrupt alert %+v: want critical, subject repository, naming the file and the error", a)
				}
			}
		}
		if fired == nil {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if fired == nil {
		t.Fatalf("backup_corrupt not firing 15s after the corrupt read; alerts.json:\n%s\ndaemon log:\n%s", last, m.stderr)
	}
	if a := status("alerts"); !strings.Contains(a, "backup_corrupt") || !strings.Contains(a, "weights.bin") {
		t.Errorf("status/alerts:\n%s", a)
	}
	if h := status("health"); !strings.HasPrefix(h, "CRITICAL") || !strings.Contains(h, "weights.bin") {
		t.Errorf("status/health:\n%s", h)
	}

	var sample struct {
		Backup struct {
			Integrity struct {
				CorruptReads int    `json:"corrupt_reads"`
				LastPath     string `json:"last_path"`
				LastError    string `json:"last_error"`
				LastTime     string `json:"last_time"`
			} `json:"integrity"`
		} `json:"backup"`
	}
	if err := json.Unmarshal([]byte(status("metrics.json")), &sample); err != nil {
		t.Fatal(err)
	}
	in := sample.Backup.Integrity
	if in.CorruptReads < 1 || !strings.HasSuffix(in.LastPath, "latest/data/weights.bin") || !strings.Contains(in.LastError, "corrupt") || in.LastTime == "" {
		t.Errorf("metrics.json backup.integrity %+v", in)
	}

	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(status("metrics")))
	if err != nil {
		t.Fatalf("status/metrics does not parse: %v", err)
	}
	f := fams["citadelfs_backup_corrupt_reads_total"]
	if f == nil || len(f.Metric) != 1 || f.Metric[0].GetCounter().GetValue() < 1 {
		t.Errorf("citadelfs_backup_corrupt_reads_total = %v", f)
	}
	if g := fams["citadelfs_backup_last_corrupt_read_timestamp_seconds"]; g == nil || len(g.Metric) != 1 ||
		time.Since(time.Unix(int64(g.Metric[0].GetGauge().GetValue()), 0)) > time.Minute {
		t.Errorf("citadelfs_backup_last_corrupt_read_timestamp_seconds = %v", g)
	}

	// The count outlives the daemon: a monitor run on its own, and then a
	// restarted daemon after several monitor cycles, still raise
	// backup_corrupt about the read.
	m.stop(t)
	if st := repoStatus(t, repo); st.corrupt == nil || st.corrupt.State != "firing" || !strings.Contains(st.corrupt.Message, "weights.bin") {
		t.Fatalf("monitor --once without the daemon: backup_corrupt %+v, want firing about weights.bin", st.corrupt)
	}
	m = startMount(t, repo, mp, cfg)
	firing := func() (bool, string) {
		doc := status("alerts.json")
		var a alertsDoc
		if err := json.Unmarshal([]byte(doc), &a); err != nil {
			t.Fatalf("alerts.json: %v\n%s", err, doc)
		}
		for _, al := range a {
			if al.Rule == "backup_corrupt" && al.State == "firing" && strings.Contains(al.Message, "weights.bin") {
				return true, doc
			}
		}
		return false, doc
	}
	time.Sleep(3 * time.Second) // three monitor cycles
	if ok, doc := firing(); !ok {
		t.Fatalf("backup_corrupt not firing after a daemon restart:\n%s\ndaemon log:\n%s", doc, m.stderr)
	}

	// Repaired (the byte flipped back), a full read-back through the
	// daemon clears it, in the daemon and in the repository.
	flipByte(t, pack, off+length/2)
	if r := citadel(t, "check", "--read-data", "--repo", repo); r.code != 0 {
		t.Fatalf("check --read-data after the repair: %s", r)
	}
	deadline = time.Now().Add(15 * time.Second)
	for {
		ok, doc := firing()
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backup_corrupt still firing 15s after a passing full check:\n%s", doc)
		}
		time.Sleep(200 * time.Millisecond)
	}
	m.stop(t)
	if st := repoStatus(t, repo); st.corrupt != nil && st.corrupt.State == "firing" {
		t.Fatalf("monitor --once after a passing full check: backup_corrupt %+v", st.corrupt)
	}
}
