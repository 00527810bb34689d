package snapshot

import (
	"context"
	"io/fs"
	"path/filepath"
)

// scanTotals walks the sources concurrently with the snapshot to give the
// progress display a total for its ETA.
func scanTotals(ctx context.Context, sources []SourceSpec, p *Progress) {
	defer p.ScanDone.Store(true)
	for _, s := range sources {
		filepath.WalkDir(s.Path, func(path string, d fs.DirEntry, err error) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			if fi, err := d.Info(); err == nil {
				p.TotalFiles.Add(1)
				p.TotalBytes.Add(fi.Size())
			}
			return nil
		})
	}
}
