package index

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// RebuildResult summarises a rebuild of the index from packs.
type RebuildResult struct {
	Packs     int `json:"packs"`
	Blobs     int `json:"blobs"`
	Snapshots int `json:"snapshots"`
	// Damaged lists packs whose trailer could not be read; their blobs are
	// not indexed and `check` will name what they affected.
	Damaged []string `json:"damaged"`
	// Carried counts the records taken over from the old index: the file-
	// change cache, snapshot attempts, the check and corrupt-read records,
	// the monitor's history, and the quarantine of packs still present.
	Carried int `json:"carried"`
	// Quarantined counts the quarantine records among them.
	Quarantined int `json:"quarantined"`
	// OldIndex says why the old index's records could not all be carried
	// ("" when they were): it was missing or could not be read. What it
	// held is then lost, and the caller re-derives what it can.
	OldIndex string `json:"old_index,omitempty"`
	// Duplicates counts blobs found in more than one pack; each was
	// indexed from the copy the old index used, else one not quarantined,
	// else one that verifies (RebuildOptions.Verify).
	Duplicates int `json:"duplicates"`
}

// RebuildOptions tune RebuildIndexWith.
type RebuildOptions struct {
	// Verify decodes a stored blob and checks its hash (the index cannot:
	// codecs live above it). When set it settles a blob found in more
	// than one pack that nothing else decides. Default nil: the first
	// copy found is kept.
	Verify func(ref BlobRef, stored []byte) error
	// Stop, when set, is asked before each pack: a non-nil error (the
	// command's context ended) stops the rebuild, which then leaves the
	// old index in place.
	Stop func() error
}

// RebuildIndex is RebuildIndexWith without options.
func RebuildIndex(dir string, o Options) (*RebuildResult, error) {
	return RebuildIndexWith(dir, o, RebuildOptions{})
}

// RebuildIndexWith throws away <repo>/index and rebuilds it from pack
// trailers (`citadelfs repair index`), carrying over from the old index,
// when it can be read, what the packs cannot give back: the file-change
// cache, snapshot attempts, the check record, the corrupt-read record,
// the monitor's history, and the quarantine records of packs still on
// disk (which also keep a damaged copy from being indexed over a good
// one). The new index is built beside the old one (index.new-<time>) and
// swapped in with one atomic rename only when complete, so a rebuild that
// is killed or fails leaves the old index in place; its leftover is
// removed by the next Open. Snapshot manifests are stored raw (codec 0),
// so this needs no codec.
func RebuildIndexWith(dir string, o Options, ro RebuildOptions) (res *RebuildResult, err error) {
	o = o.withDefaults()
	if !o.InsecurePermissions {
		if err := CheckPermissions(dir); err != nil {
			return nil, err
		}
	}
	if _, err := ReadConfig(dir); err != nil {
		return nil, err
	}
	lock, err := AcquireLock(dir, "repair index", o.Now())
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	removeRebuildLeftovers(dir)
	if err := removePartials(filepath.Join(dir, packsDir)); err != nil {
		return nil, err
	}
	idx := filepath.Join(dir, indexDir)
	building := filepath.Join(dir, fmt.Sprintf("%s%d", rebuildPrefix, o.Now().UnixNano()))
	defer func() {
		if err != nil {
			os.RemoveAll(building)
		}
	}()
	res = &RebuildResult{}
	old, oldErr := openOldIndex(idx)
	if oldErr != nil {
		res.OldIndex = oldErr.Error()
	}
	defer old.Close()
	// The old quarantine, by copy: small, and needed for every duplicate.
	oldQ := map[[2]ID][]byte{}
	if old != nil {
		lo := []byte{prefixQuarantine}
		if err := old.Scan(lo, PrefixEnd(lo), func(k, v []byte) error {
			if d, err := DecodeDamaged(k, v); err == nil {
				oldQ[[2]ID{d.Pack, d.Blob}] = append([]byte(nil), v...)
			}
			return nil
		}); err != nil {
			res.OldIndex = "quarantine: " + err.Error()
		}
	}
	kv, err := OpenKV(building, KVOptions{})
	if err != nil {
		return nil, err
	}
	r := &Repo{Dir: dir, KV: kv, Store: o.store(dir), Keys: o.Keys}
	defer r.Store.Close()
	packs, err := r.ListPacks()
	if err != nil {
		kv.Close()
		return nil, err
	}
	present := map[ID]bool{}
	pick := &copyChooser{r: r, old: old, quarantined: oldQ, verify: ro.Verify}
	for _, p := range packs {
		if ro.Stop != nil {
			if err := ro.Stop(); err != nil {
				kv.Close()
				return nil, err
			}
		}
		es, size, err := r.ReadPackTrailer(p.ID)
		if err != nil {
			res.Damaged = append(res.Damaged, fmt.Sprintf("%s: %v", p.ID.Short(), err))
			continue
		}
		present[p.ID] = true
		chosen := es[:0:0]
		for _, e := range es {
			keep, dup, err := pick.choose(p.ID, e)
			if err != nil {
				kv.Close()
				return nil, err
			}
			if dup {
				res.Duplicates++
			}
			if keep {
				chosen = append(chosen, e)
			}
		}
		if err := r.commitRebuiltPack(p.ID, chosen, len(es), uint64(size)); err != nil {
			kv.Close()
			return nil, err
		}
		res.Packs++
		res.Blobs += len(es)
		for _, e := range es {
			if e.Type != SnapshotBlob {
				continue
			}
			ref := BlobRef{ID: e.ID, PackEntry: e, Pack: p.ID}
			data, err := r.ReadStored(ref, nil)
			if err == nil {
				data, err = r.Keys.OpenBlob(nil, e, data)
			}
			if err != nil || e.Codec != 0 || r.Keys.BlobID(data) != e.ID {
				res.Damaged = append(res.Damaged, fmt.Sprintf("snapshot %s in pack %s unreadable", e.ID.Short(), p.ID.Short()))
				continue
			}
			if err := r.PutSnapshot(e.ID, data); err != nil {
				kv.Close()
				return nil, err
			}
			res.Snapshots++
		}
	}
	if old != nil {
		if err := carryRecords(old, kv, present, oldQ, res); err != nil {
			kv.Close()
			return nil, err
		}
	}
	old.Close()
	if err := kv.Close(); err != nil {
		return nil, err
	}
	if err := swapIn(building, idx); err != nil {
		return nil, err
	}
	// An earlier version's interrupted rebuild, now superseded.
	for _, old := range oldRebuildLeftovers(dir) {
		os.RemoveAll(old)
	}
	return res, nil
}

// openOldIndex opens the index being replaced, read-only, to carry its
// records over; nil and why not when it is missing or unreadable. The
// caller holds the repository lock, so nobody writes it meanwhile.
func openOldIndex(idx string) (*KV, error) {
	if _, err := os.Stat(idx); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errors.New("the old index is missing")
		}
		return nil, fmt.Errorf("the old index cannot be read: %w", err)
	}
	kv, err := OpenKV(idx, KVOptions{MustExist: true, ReadOnly: true, SkipPebbleLock: true})
	if err != nil {
		return nil, fmt.Errorf("the old index cannot be read: %w", err)
	}
	return kv, nil
}

// commitRebuiltPack records pack with the blobs it serves (chosen) in one
// batch; count is how many blobs the pack holds.
func (r *Repo) commitRebuiltPack(pack ID, chosen []PackEntry, count int, size uint64) error {
	b := r.KV.NewBatch()
	putPack(b, pack, chosen, count, size)
	return b.Commit(true)
}

// copyChooser decides which copy of a blob found in several packs the
// rebuilt index serves.
type copyChooser struct {
	r           *Repo // the index being built
	old         *KV   // the old index, or nil
	quarantined map[[2]ID][]byte
	verify      func(BlobRef, []byte) error
}

// choose reports whether the copy of e in pack should be indexed (over
// one indexed before, if any: dup).
func (c *copyChooser) choose(pack ID, e PackEntry) (keep, dup bool, err error) {
	prev, err := c.r.Lookup(e.ID)
	if errors.Is(err, ErrBlobMissing) {
		return true, false, nil
	}
	if err != nil {
		return false, false, err
	}
	cand := BlobRef{ID: e.ID, PackEntry: e, Pack: pack}
	sp, sc := c.score(prev), c.score(cand)
	if sp == sc && c.verify != nil {
		sp += c.verified(prev)
		sc += c.verified(cand)
	}
	return sc > sp, true, nil
}

// score ranks a copy: not quarantined first, then the one the old index
// used.
func (c *copyChooser) score(ref BlobRef) int {
	s := 0
	if _, bad := c.quarantined[[2]ID{ref.Pack, ref.ID}]; !bad {
		s += 4
	}
	if c.old != nil {
		if v, err := c.old.Get(blobKey(ref.ID)); err == nil {
			if o, err := DecodeBlobRef(ref.ID, v); err == nil && o.Pack == ref.Pack {
				s += 2
			}
		}
	}
	return s
}

func (c *copyChooser) verified(ref BlobRef) int {
	stored, err := c.r.ReadStored(ref, nil)
	if err == nil && c.verify(ref, stored) == nil {
		return 1
	}
	return 0
}

// carryRecords copies the old index's records that the packs cannot
// rebuild into the new one, key prefix by key prefix, and the quarantine
// records of packs that are still there. A prefix whose scan fails is
// carried as far as it was read, and named in res.OldIndex.
func carryRecords(old, kv *KV, present map[ID]bool, oldQ map[[2]ID][]byte, res *RebuildResult) error {
	for c := 0; c < 256; c++ {
		if !carriedPrefix(byte(c)) {
			continue
		}
		lo := []byte{byte(c)}
		b := kv.NewBatch()
		var cerr error
		serr := old.Scan(lo, PrefixEnd(lo), func(k, v []byte) error {
			b.Put(k, v) // the batch copies both
			res.Carried++
			if b.Len() >= 4096 {
				if cerr = b.Commit(true); cerr != nil {
					return cerr
				}
				b = kv.NewBatch()
			}
			return nil
		})
		if cerr != nil {
			return cerr
		}
		if b.Len() > 0 {
			if err := b.Commit(true); err != nil {
				return err
			}
		}
		if serr != nil && res.OldIndex == "" {
			res.OldIndex = fmt.Sprintf("records under %q could not all be read: %v", string(rune(c)), serr)
		}
	}
	b := kv.NewBatch()
	for k, v := range oldQ {
		if present[k[0]] {
			b.Put(quarantineKey(k[0], k[1]), v)
			res.Carried++
			res.Quarantined++
		}
	}
	if b.Len() == 0 {
		return nil
	}
	return b.Commit(true)
}
