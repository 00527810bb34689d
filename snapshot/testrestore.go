package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"citadelfs/index"
)

// TestRestoreOptions choose what a test restore restores.
type TestRestoreOptions struct {
	// Labels limits it to these sources (default: every source).
	Labels []string
	// Files is how many files to sample from each source's newest
	// snapshot (default 20 when Fraction is 0 too); Fraction (0,1]
	// samples that share of each source's files instead, at least one.
	Files    int
	Fraction float64
	// TempDir is where the work directory is made (default os.TempDir());
	// it is removed afterwards, whatever happened.
	TempDir string
	// Rand picks the sample (default: seeded at random).
	Rand *rand.Rand
	// Progress is called after each file with (done, total).
	Progress func(done, total int)
}

// TestRestoreReport is what a test restore found.
type TestRestoreReport struct {
	// Snapshots are "label snapshot-id" for each source tested.
	Snapshots []string
	Files     int
	Bytes     int64
	// Problems are files that could not be restored, or whose restored
	// bytes differ from the snapshot's chunk hashes: damage (exit 4).
	Problems []string
	// SourceCompared counts files compared with the source too (those
	// whose size and mtime are unchanged since the snapshot);
	// SourceDiffers lists those whose bytes differ all the same. That is
	// not damage of the backup, whose bytes matched their hashes: the file
	// changed without its mtime moving (stores through mmap), or the
	// source's disk returned other bytes. It is reported, not failed.
	SourceCompared int
	SourceDiffers  []string
}

// OK reports whether every sampled file restored with the right bytes.
func (t *TestRestoreReport) OK() bool { return len(t.Problems) == 0 }

// TestRestoreRecord is the outcome of the last test restore
// (index.TestRestoreRecord, defined where it is persisted).
type TestRestoreRecord = index.TestRestoreRecord

// LastTestRestore returns the record of the last test restore, nil if none
// ran.
func (r *Repository) LastTestRestore() (*TestRestoreRecord, error) {
	return r.idx.TestRestoreStore().Load()
}

type sampledFile struct {
	label, path string // path inside the source, slash-separated
	node        Node
	srcPath     string // where the file is on the host, "" if unknown
}

// TestRestore restores a random sample of files from each source's newest
// snapshot (what latest/ shows) into a temporary directory, and checks each
// restored file byte for byte against the snapshot: every chunk re-read
// from the restored file must hash to the chunk's id, the gaps between
// chunks must be zeros (holes) and the size must match. This proves the
// path an operator's restore takes (pack reads, decoding, writing), apart
// from the checks that path makes itself. Files whose size and mtime on
// the host are those recorded are compared with the host's bytes too (see
// TestRestoreReport.SourceDiffers). The temporary directory is removed.
//
// The result is recorded (LastTestRestore) unless ctx was cancelled.
func (r *Repository) TestRestore(ctx context.Context, o TestRestoreOptions) (rep *TestRestoreReport, err error) {
	start := r.opts.Now()
	defer func() { r.recordTestRestore(ctx, rep, start, err) }()
	if o.Rand == nil {
		o.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if o.Files <= 0 && o.Fraction <= 0 {
		o.Files = 20
	}
	picks, err := r.LatestSources()
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, l := range o.Labels {
		want[l] = true
	}
	rep = &TestRestoreReport{}
	var sample []sampledFile
	snapOf := map[string]*Snapshot{}
	for _, p := range picks {
		if len(want) > 0 && !want[p.Label] {
			continue
		}
		delete(want, p.Label)
		src, _ := p.Snapshot.Source(p.Label)
		rep.Snapshots = append(rep.Snapshots, p.Label+" "+p.Snapshot.ID.Short())
		snapOf[p.Label] = p.Snapshot
		files, err := r.sampleSource(ctx, src, o, rep)
		if err != nil {
			return rep, err
		}
		sample = append(sample, files...)
	}
	for l := range want {
		return rep, fmt.Errorf("snapshot: test restore: no snapshot of source %q", l)
	}
	if o.TempDir != "" {
		// storage.temp_dir need not exist yet (under a unit's PrivateTmp
		// it never does).
		if err := os.MkdirAll(o.TempDir, 0o700); err != nil {
			return rep, fmt.Errorf("snapshot: test restore: %w", err)
		}
	}
	work, err := os.MkdirTemp(o.TempDir, "citadelfs-test-restore-")
	if err != nil {
		return rep, fmt.Errorf("snapshot: test restore: %w", err)
	}
	defer os.RemoveAll(work)
	for i, f := range sample {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		dir := filepath.Join(work, fmt.Sprint(i))
		where := f.label + "/" + f.path
		n := f.node
		if _, err := r.Restore(ctx, snapOf[f.label], &n, dir, RestoreOptions{Workers: 1, fromStore: true}); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				return rep, fmt.Errorf("snapshot: test restore of %s: %w", where, err)
			}
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s (snapshot %s): %v", where, snapOf[f.label].ID.Short(), err))
		} else {
			restored := filepath.Join(dir, n.Name)
			if msg := compareWithChunks(r.idx.Keys, restored, &n); msg != "" {
				rep.Problems = append(rep.Problems, fmt.Sprintf("%s (snapshot %s): restored file %s", where, snapOf[f.label].ID.Short(), msg))
			} else {
				rep.Files++
				rep.Bytes += n.Size
				r.compareWithSource(restored, f, rep)
			}
		}
		os.RemoveAll(dir) // a model sample can be large: one file on disk at a time
		if o.Progress != nil {
			o.Progress(i+1, len(sample))
		}
	}
	return rep, nil
}

// sampleSource walks src's tree and picks its sample of regular files:
// reservoir sampling for a count (one pass, memory bounded by the count),
// a coin per file for a fraction.
func (r *Repository) sampleSource(ctx context.Context, src *Source, o TestRestoreOptions, rep *TestRestoreReport) ([]sampledFile, error) {
	var out []sampledFile
	seen := 0
	var first *sampledFile
	var walk func(tree index.ID, dir string) error
	walk = func(tree index.ID, dir string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		t, err := r.LoadTree(ctx, tree)
		if err != nil {
			if errors.Is(err, ErrCorrupt) {
				rep.Problems = append(rep.Problems, fmt.Sprintf("%s/%s: directory listing unreadable: %v", src.Label, dir, err))
				return nil
			}
			return err
		}
		for i := range t.Nodes {
			n := &t.Nodes[i]
			p := dir + n.Name
			switch n.Type {
			case TypeDir:
				if err := walk(n.Subtree, p+"/"); err != nil {
					return err
				}
			case TypeFile:
				seen++
				f := sampledFile{label: src.Label, path: p, node: *n}
				if first == nil {
					first = &f
				}
				switch {
				case o.Fraction > 0:
					if o.Rand.Float64() < o.Fraction {
						out = append(out, f)
					}
				case len(out) < o.Files:
					out = append(out, f)
				default:
					if j := o.Rand.IntN(seen); j < o.Files {
						out[j] = f
					}
				}
			}
		}
		return nil
	}
	if err := walk(src.Tree, ""); err != nil {
		return nil, err
	}
	if len(out) == 0 && first != nil {
		out = append(out, *first)
	}
	for i := range out {
		if src.Path == "/" || len(src.Paths) > 0 {
			out[i].srcPath = "/" + out[i].path
		} else if src.Path != "" {
			out[i].srcPath = filepath.Join(src.Path, filepath.FromSlash(out[i].path))
		}
	}
	return out, nil
}

// compareWithChunks re-reads the restored file and checks it against n:
// size, each chunk's hash, zeros between chunks. "" when it matches.
func compareWithChunks(keys *index.Keys, path string, n *Node) string {
	f, err := os.Open(path)
	if err != nil {
		return "cannot be read back: " + err.Error()
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "cannot be read back: " + err.Error()
	}
	if st.Size() != n.Size {
		return fmt.Sprintf("is %d bytes, the snapshot says %d", st.Size(), n.Size)
	}
	var pos int64
	var buf []byte
	zeros := func(to int64) string {
		for pos < to {
			k := min(to-pos, 1<<20)
			if cap(buf) < int(k) {
				buf = make([]byte, k)
			}
			b := buf[:k]
			if _, err := f.ReadAt(b, pos); err != nil {
				return fmt.Sprintf("cannot be read back at %d: %v", pos, err)
			}
			for i, c := range b {
				if c != 0 {
					return fmt.Sprintf("has data at %d where the snapshot has a hole", pos+int64(i))
				}
			}
			pos += k
		}
		return ""
	}
	for _, c := range n.Content {
		if msg := zeros(c.Offset); msg != "" {
			return msg
		}
		if cap(buf) < int(c.Length) {
			buf = make([]byte, c.Length)
		}
		b := buf[:c.Length]
		if _, err := f.ReadAt(b, c.Offset); err != nil {
			return fmt.Sprintf("cannot be read back at %d: %v", c.Offset, err)
		}
		if keys.BlobID(b) != c.ID {
			return fmt.Sprintf("differs from the snapshot in the %d bytes at %d (chunk %s)", c.Length, c.Offset, c.ID.Short())
		}
		pos = c.Offset + c.Length
	}
	return zeros(n.Size)
}

// compareWithSource compares the restored file with the host's when the
// host's is still what the snapshot recorded by size and mtime.
func (r *Repository) compareWithSource(restored string, f sampledFile, rep *TestRestoreReport) {
	if f.srcPath == "" {
		return
	}
	st, err := os.Lstat(f.srcPath)
	if err != nil || !st.Mode().IsRegular() || st.Size() != f.node.Size || st.ModTime().UnixNano() != f.node.Mtime {
		return
	}
	rep.SourceCompared++
	same, err := sameBytes(restored, f.srcPath)
	if err != nil {
		return // the source went away or cannot be read: nothing to compare
	}
	if !same {
		rep.SourceDiffers = append(rep.SourceDiffers, fmt.Sprintf("%s/%s: the restored file matches the snapshot, but %s differs though its size and mtime are unchanged (written through mmap, or the source's disk returns other bytes)",
			f.label, f.path, f.srcPath))
	}
}

func sameBytes(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea == io.EOF || ea == io.ErrUnexpectedEOF {
			return eb == io.EOF || eb == io.ErrUnexpectedEOF, nil
		}
		if ea != nil {
			return false, ea
		}
		if eb != nil {
			return false, eb
		}
	}
}

// recordTestRestore stores the outcome, unless ctx was cancelled.
func (r *Repository) recordTestRestore(ctx context.Context, rep *TestRestoreReport, start time.Time, err error) {
	if r.opts.ReadOnly || err != nil && (ctx.Err() != nil || errors.Is(err, context.Canceled)) {
		return
	}
	c := TestRestoreRecord{Time: start, Duration: r.opts.Now().Sub(start), Result: index.CheckOK}
	if rep != nil {
		c.Files, c.Bytes, c.Snapshots, c.SourceDiffers = rep.Files, rep.Bytes, rep.Snapshots, len(rep.SourceDiffers)
	}
	switch {
	case err != nil:
		c.Result, c.FirstError = index.CheckFailed, OneLine(err.Error(), MaxCheckError)
	case !rep.OK():
		c.Result, c.Errors, c.FirstError = index.CheckErrors, len(rep.Problems), OneLine(rep.Problems[0], MaxCheckError)
	}
	r.idx.TestRestoreStore().Save(c)
}
