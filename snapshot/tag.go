package snapshot

import (
	"context"
	"slices"

	"citadelfs/index"
)

// Retagged is one snapshot AddTag rewrote: the manifest under a new id
// (a manifest's id is its hash, so a tag is a new manifest, as restic's
// `tag` does), the old one forgotten.
type Retagged struct {
	Old, New index.ID
}

// AddTag gives each of snaps that lacks it the tag: a new manifest with
// the same trees, time and creation time, then the old one forgotten. The
// new manifest is committed before the old is dropped, so a crash in
// between leaves both, and the next AddTag of the old one writes the same
// bytes, the same id: nothing is duplicated for long, nothing is lost.
// Data is not touched; the old manifest's pack goes at once (Forget).
func (r *Repository) AddTag(ctx context.Context, snaps []*Snapshot, tag string) ([]Retagged, error) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	var out []Retagged
	for _, s := range snaps {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if s.HasTag(tag) {
			continue
		}
		m := s.Manifest
		m.Tags = append(slices.Clone(s.Tags), tag)
		id, err := r.writeManifest(&m)
		if err != nil {
			return out, err
		}
		if id != s.ID {
			if err := r.forgetLocked(ctx, []index.ID{s.ID}); err != nil {
				return out, err
			}
		}
		out = append(out, Retagged{Old: s.ID, New: id})
	}
	return out, nil
}
