package fsadapter

// status/snapshots and status/repo: the repository as the mount shows it,
// and the snapshot table citadelfs snapshots prints, written once.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"golang.org/x/sys/unix"

	cfs "citadelfs/fs"
	"citadelfs/index"
	"citadelfs/monitor"
	"citadelfs/snapshot"
)

// repoStatus renders status/snapshots and status/repo (status/backup is
// the monitor's, rendered as citadelfs status renders it).
type repoStatus struct {
	r *snapshot.Repository
}

// NewStatus is the mount's status/snapshots and status/repo for r.
func NewStatus(r *snapshot.Repository) cfs.StatusSource { return &repoStatus{r: r} }

func (s *repoStatus) StatusFiles() []string { return []string{"snapshots", "repo"} }

func (s *repoStatus) Render(ctx context.Context, name string) ([]byte, error) {
	var b bytes.Buffer
	switch name {
	case "snapshots":
		snaps, err := s.r.Snapshots()
		if err != nil {
			return nil, err
		}
		WriteSnapshotTable(&b, snaps)
	case "repo":
		st, err := ReadRepoStats(s.r)
		if err != nil {
			return nil, err
		}
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "repository\t%s\n", s.r.Dir())
		fmt.Fprintf(tw, "snapshots\t%d\n", st.Snapshots)
		fmt.Fprintf(tw, "logical size\t%s\t(all snapshots, as files)\n", humanBytes(st.Logical))
		fmt.Fprintf(tw, "logical data\t%s\t(the same without sparse holes)\n", humanBytes(st.Data))
		fmt.Fprintf(tw, "unique data\t%s\t(before compression)\n", humanBytes(st.Raw))
		fmt.Fprintf(tw, "stored size\t%s\t(pack files)\n", humanBytes(st.Stored))
		fmt.Fprintf(tw, "dedup ratio\t%.2fx\t(logical data / unique)\n", ratio(st.Data, st.Raw))
		fmt.Fprintf(tw, "compression ratio\t%.3f\t(stored / unique)\n", 1/max(ratio(st.Raw, st.Stored), 1e-9))
		fmt.Fprintf(tw, "packs\t%d\n", st.Packs)
		fmt.Fprintf(tw, "chunks\t%d\n", st.Blobs)
		fmt.Fprintf(tw, "free space\t%s of %s\n", humanBytes(st.Free), humanBytes(st.Total))
		tw.Flush()
	default:
		return nil, fmt.Errorf("citadelfs: no status file %q", name)
	}
	return b.Bytes(), nil
}

// dataBytes is a source's bytes of data. Manifests written before
// data_bytes was recorded have 0 there: their apparent size is all they say.
func dataBytes(st snapshot.SourceStats) int64 {
	if st.DataBytes == 0 && st.Files > 0 {
		return st.Bytes
	}
	return st.DataBytes
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// RepoStats are the repository's sizes, as status/repo shows them.
type RepoStats struct {
	Snapshots int
	// Logical is every snapshot's files' apparent size; Data the same
	// without sparse holes, which are never stored and so must not count
	// towards the dedup ratio (a 64 GiB sparse file holding 1 GiB of data
	// made the ratio 17.7x where it was 2.5x).
	Logical, Data, Raw, Stored int64
	Packs, Blobs               int
	Free, Total                int64
}

// ReadRepoStats reads sizes from the index (one scan of the blob entries,
// about 50 bytes per MiB stored) and the file system.
func ReadRepoStats(r *snapshot.Repository) (*RepoStats, error) {
	st := &RepoStats{}
	snaps, err := r.Snapshots()
	if err != nil {
		return nil, err
	}
	st.Snapshots = len(snaps)
	for _, s := range snaps {
		for _, src := range s.Sources {
			st.Logical += src.Stats.Bytes
			st.Data += dataBytes(src.Stats)
		}
	}
	packs := map[index.ID]bool{}
	err = r.Index().Blobs(func(b index.BlobRef) error {
		st.Blobs++
		st.Raw += int64(b.RawLength)
		st.Stored += int64(b.Length)
		packs[b.Pack] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	st.Packs = len(packs)
	var sfs unix.Statfs_t
	if unix.Statfs(r.Dir(), &sfs) == nil {
		st.Free = int64(sfs.Bavail) * sfs.Bsize
		st.Total = int64(sfs.Blocks) * sfs.Bsize
	}
	return st, nil
}

// WriteSnapshotTable is the text listing of snapshots, one place for
// status/snapshots and citadelfs snapshots.
func WriteSnapshotTable(w io.Writer, snaps []*snapshot.Snapshot) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tTAGS\tSOURCES\tSIZE\tNEW\tSTORED")
	for _, s := range snaps {
		var labels []string
		var size, nb, stored int64
		for _, src := range s.Sources {
			labels = append(labels, src.Label)
			size += src.Stats.Bytes
			nb += src.Stats.NewBytes
			stored += src.Stats.StoredBytes
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID.Short(), s.Time.Local().Format("2006-01-02 15:04:05"),
			strings.Join(s.Tags, ","), strings.Join(labels, ","), humanBytes(size), humanBytes(nb), humanBytes(stored))
	}
	tw.Flush()
	fmt.Fprintf(w, "%d snapshots\n", len(snaps))
}

func humanBytes(n int64) string { return monitor.FormatBytes(uint64(max(n, 0))) }
