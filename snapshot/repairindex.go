package snapshot

import (
	"context"
	"fmt"
	"time"

	"citadelfs/index"
	"citadelfs/snapshot/codec"
)

// RepairIndexResult is what RepairIndex did.
type RepairIndexResult struct {
	index.RebuildResult
	// DerivedAttempts lists the sources whose last attempt was re-derived
	// from their newest snapshot's manifest (the old record was lost).
	DerivedAttempts []string `json:"derived_attempts"`
	// IntegrityUnknown says the old check and corrupt-read records were
	// lost with the old index: a check record saying so was written.
	IntegrityUnknown bool `json:"integrity_unknown"`
}

// RepairIndex rebuilds the index from the packs (`citadelfs repair
// index`, index.RebuildIndexWith), keeping what the old index held that
// packs cannot give back. When the old index could not be read, it
// re-derives what it can: each source's last attempt from its newest
// snapshot's manifest (so the monitor does not say "never" of a source
// with snapshots), and a check record of result index.CheckUnknown, so that
// backup_corrupt says integrity is unknown (earlier findings are lost)
// until a full `check --read-data` passes.
func RepairIndex(dir string, o Options) (*RepairIndexResult, error) {
	return RepairIndexContext(context.Background(), dir, o)
}

// RepairIndexContext is RepairIndex stopping when ctx ends (before the new
// index is swapped in: the old one then stays as it was).
func RepairIndexContext(ctx context.Context, dir string, o Options) (*RepairIndexResult, error) {
	o = o.withDefaults()
	rr, err := index.RebuildIndexWith(dir, index.Options{Command: "repair index", Now: o.Now, InsecurePermissions: o.InsecurePermissions},
		index.RebuildOptions{Verify: verifyStoredBlob, Stop: ctx.Err})
	if err != nil {
		return nil, err
	}
	res := &RepairIndexResult{RebuildResult: *rr, DerivedAttempts: []string{}}
	o.Command = "repair index"
	r, err := Open(dir, o)
	if err != nil {
		return res, err
	}
	defer r.Close()
	if err := r.deriveAttempts(res); err != nil {
		return res, err
	}
	if rr.OldIndex != "" {
		if lc, _ := r.LastCheck(); lc == nil || lc.Result == index.CheckOK {
			now := o.Now()
			c := CheckRecord{Time: now, Result: index.CheckUnknown,
				FirstError: OneLine(fmt.Sprintf("index rebuilt from the packs at %s without the old index's records (%s): earlier check findings and corrupt reads are lost; run `citadelfs check --read-data`",
					now.UTC().Format(time.RFC3339), rr.OldIndex), MaxCheckError)}
			if err := r.idx.CheckStore().Save(c); err != nil {
				return res, err
			}
			res.IntegrityUnknown = true
		}
	}
	return res, nil
}

// deriveAttempts gives every source that has snapshots but no attempt
// record one made from its newest snapshot: when it was taken, how long
// it took, and ok or partial as its stats say.
func (r *Repository) deriveAttempts(res *RepairIndexResult) error {
	have := map[string]bool{}
	atts, err := r.Attempts()
	if err != nil {
		return err
	}
	for _, a := range atts {
		have[a.Label] = true
	}
	snaps, err := r.Snapshots()
	if err != nil {
		return err
	}
	newest := map[string]*Snapshot{}
	var order []string
	for _, s := range snaps { // time order: the last one seen is the newest
		for _, src := range s.Sources {
			if have[src.Label] {
				continue
			}
			if newest[src.Label] == nil {
				order = append(order, src.Label)
			}
			newest[src.Label] = s
		}
	}
	if len(order) == 0 {
		return nil
	}
	derived := map[string]Attempt{}
	for _, l := range order {
		s := newest[l]
		src, _ := s.Source(l)
		a := Attempt{Label: l, Start: s.Time, Result: index.AttemptOK, Snapshot: s.ID.String(),
			Duration: time.Duration(src.Stats.DurationMS) * time.Millisecond}
		if src.Stats.Unreadable > 0 || src.Stats.Changed > 0 {
			a.Result = index.AttemptPartial
		}
		derived[l] = a
		res.DerivedAttempts = append(res.DerivedAttempts, l)
	}
	return r.idx.AttemptStore().SaveAll(derived)
}

// verifyStoredBlob decodes a stored blob and checks its hash: which copy
// of a blob found in several packs a rebuilt index serves. Only a
// repository in the clear has an index to repair: an encrypted one's is
// a cache outside it, rebuilt from the store (OpenStore, RebuildCache).
func verifyStoredBlob(ref index.BlobRef, stored []byte) error {
	_, err := decodeVerified(nil, codec.NewDecoder(), nil, ref, stored)
	return err
}
