package index

import (
	"encoding/binary"
	"fmt"
	"time"
	"unicode/utf8"
)

// The quarantine records copies of blobs found damaged: by a check that
// read them back, or by a read (restore, the mount) whose bytes failed
// their hash check. A record names one copy, the blob in one pack:
//
//	key   q | pack id [32] | blob id [32]
//	value time unix ns u64 | reason (UTF-8, at most maxDamagedReason bytes)
//
// A record is in force while the index still serves the blob from that
// pack (its b entry names the pack). The next snapshot then treats the
// blob as absent and stores it again from the source (and the file-change
// cache does not skip a file that uses it), which re-points the blob to
// the good copy and so heals every snapshot that uses it. The record
// stays until the damaged pack is removed (prune, `repair packs`): the
// pack still holds the bad copy, and `repair index` must not pick it.

// Damaged is one quarantined copy of a blob.
type Damaged struct {
	Pack, Blob ID
	Time       time.Time
	Reason     string
}

const maxDamagedReason = 300

func quarantineKey(pack, blob ID) []byte {
	k := make([]byte, 1+2*len(ID{}))
	k[0] = prefixQuarantine
	copy(k[1:], pack[:])
	copy(k[33:], blob[:])
	return k
}

func quarantinePackPrefix(pack ID) []byte { return append([]byte{prefixQuarantine}, pack[:]...) }

func encodeDamaged(d Damaged) []byte {
	reason := d.Reason
	if len(reason) > maxDamagedReason {
		cut := maxDamagedReason
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut]
	}
	v := make([]byte, 8, 8+len(reason))
	binary.LittleEndian.PutUint64(v, uint64(d.Time.UnixNano()))
	return append(v, reason...)
}

// DecodeDamaged parses a quarantine record; it is fuzzed since it is read
// from disk.
func DecodeDamaged(k, v []byte) (Damaged, error) {
	var d Damaged
	if len(k) != 1+2*len(d.Pack) || k[0] != prefixQuarantine || len(v) < 8 || len(v) > 8+maxDamagedReason || !utf8.Valid(v[8:]) {
		return d, fmt.Errorf("index: quarantine record malformed: %w", ErrCorrupt)
	}
	copy(d.Pack[:], k[1:33])
	copy(d.Blob[:], k[33:])
	d.Time = time.Unix(0, int64(binary.LittleEndian.Uint64(v))).UTC()
	d.Reason = string(v[8:])
	return d, nil
}

// Quarantine records damaged copies in one synced batch. Recording a copy
// again updates its time and reason.
func (r *Repo) Quarantine(ds []Damaged) error {
	if len(ds) == 0 {
		return nil
	}
	b := r.KV.NewBatch()
	for _, d := range ds {
		b.Put(quarantineKey(d.Pack, d.Blob), encodeDamaged(d))
	}
	return b.Commit(true)
}

// Unquarantine lifts the records of blobs in pack (a full read-back found
// those copies sound after all: the pack was put right by hand).
func (r *Repo) Unquarantine(pack ID, blobs []ID) error {
	if len(blobs) == 0 {
		return nil
	}
	b := r.KV.NewBatch()
	for _, id := range blobs {
		b.Delete(quarantineKey(pack, id))
	}
	return b.Commit(true)
}

// QuarantineRecords calls fn with every record, in (pack, blob) order.
// Malformed records are skipped: a quarantine that cannot be read is one
// that heals less, not a broken repository.
func (r *Repo) QuarantineRecords(fn func(Damaged) error) error {
	lo := []byte{prefixQuarantine}
	return r.KV.Scan(lo, PrefixEnd(lo), func(k, v []byte) error {
		d, err := DecodeDamaged(k, v)
		if err != nil {
			return nil
		}
		return fn(d)
	})
}

// PackQuarantine returns the records of one pack.
func (r *Repo) PackQuarantine(pack ID) ([]Damaged, error) {
	var out []Damaged
	lo := quarantinePackPrefix(pack)
	err := r.KV.Scan(lo, PrefixEnd(lo), func(k, v []byte) error {
		if d, err := DecodeDamaged(k, v); err == nil {
			out = append(out, d)
		}
		return nil
	})
	return out, err
}

// QuarantinedInUse returns the blobs the index still serves from a
// quarantined copy, by blob id: what a snapshot must store again, and what
// check reports as damaged without reading it.
func (r *Repo) QuarantinedInUse() (map[ID]Damaged, error) {
	out := map[ID]Damaged{}
	err := r.QuarantineRecords(func(d Damaged) error {
		ref, err := r.Lookup(d.Blob)
		if err == nil && ref.Pack == d.Pack {
			out[d.Blob] = d
		}
		return nil
	})
	return out, err
}

// IsQuarantined reports whether the copy ref names is quarantined.
func (r *Repo) IsQuarantined(ref BlobRef) (bool, error) {
	return r.KV.Has(quarantineKey(ref.Pack, ref.ID))
}

// dropPackQuarantine forgets the records of a pack that is gone.
func (r *Repo) dropPackQuarantine(pack ID) error {
	lo := quarantinePackPrefix(pack)
	return r.KV.DeleteRange(lo, PrefixEnd(lo), true)
}
