package snapshot

import (
	"bytes"
	"context"
	"slices"
	"sort"

	"citadelfs/index"
	"citadelfs/snapshot/codec"
)

// restoreSpanMax is the most stored bytes a restore from a remote
// repository fetches in one ranged GET. A snapshot stores a file's
// chunks together in its packs (in the order its compression workers
// finish them, not quite the file's), so the chunks of a large file that
// lie back to back in one pack are fetched together: a GET per 4 MiB,
// not one per chunk (about 1 MiB). Each GET costs RGW and its OSD CPU of
// its own, beside the bytes: on one machine shared with the cluster, the
// restore of the 1 GiB bench tree made 1327 GETs and the cluster spent
// more CPU on them than on the same bytes fetched 4 MiB at a time.
const restoreSpanMax = 4 << 20

// restoreSpan is chunks of one file read with one GET: refs lie back to
// back in one pack, in pack order; at[i] is the index in the file's
// content of the chunk refs[i] is. A span of one chunk, or one whose
// chunk the index could not look up, has no refs and is loaded the
// ordinary way (Repository.loadData), blob cache and errors included.
type restoreSpan struct {
	at   []int
	ids  []index.ID
	refs []index.BlobRef
}

// planSpans cuts content into spans: runs of chunks that lie back to
// back in one pack, restoreSpanMax stored bytes at most (a chunk larger
// than that is a span of its own). The spans come in the order of the
// first chunk each holds, so a file is still written about front to
// back.
func (rs *restorer) planSpans(content []ChunkRef) []restoreSpan {
	type located struct {
		at  int
		ref index.BlobRef
	}
	var spans []restoreSpan
	var found []located
	for i, c := range content {
		ref, err := rs.r.idx.Lookup(c.ID)
		if err != nil {
			spans = append(spans, restoreSpan{at: []int{i}, ids: []index.ID{c.ID}})
			continue
		}
		found = append(found, located{i, ref})
	}
	sort.SliceStable(found, func(a, b int) bool {
		x, y := found[a].ref, found[b].ref
		if x.Pack != y.Pack {
			return bytes.Compare(x.Pack[:], y.Pack[:]) < 0
		}
		return x.Offset < y.Offset
	})
	var cur restoreSpan
	var size uint64
	flush := func() {
		if len(cur.at) > 0 {
			if len(cur.refs) < 2 {
				cur.refs = nil
			}
			spans = append(spans, cur)
		}
		cur, size = restoreSpan{}, 0
	}
	for _, l := range found {
		if n := len(cur.refs); n > 0 {
			last := cur.refs[n-1]
			if l.ref.Pack != last.Pack || l.ref.Offset != last.Offset+uint64(last.Length) ||
				size+uint64(l.ref.Length) > restoreSpanMax {
				flush()
			}
		}
		cur.at = append(cur.at, l.at)
		cur.ids = append(cur.ids, l.ref.ID)
		cur.refs = append(cur.refs, l.ref)
		size += uint64(l.ref.Length)
	}
	flush()
	sort.SliceStable(spans, func(a, b int) bool { return slices.Min(spans[a].at) < slices.Min(spans[b].at) })
	return spans
}

// loadSpan returns the decoded chunks of sp, each checked against its
// id, or for each the error of loading it. A span of several chunks is
// one read of the store; a chunk whose bytes from it do not decode or
// check out, or all of them when that read fails, is loaded once more on
// its own, so a store that handed back wrong bytes once is not reported
// as damage, and what is reported is loadData's error for that chunk.
func (rs *restorer) loadSpan(ctx context.Context, sp restoreSpan) ([][]byte, []error) {
	datas, errs := make([][]byte, len(sp.ids)), make([]error, len(sp.ids))
	ok := make([]bool, len(sp.ids))
	var stored, buf []byte
	if len(sp.refs) > 0 && ctx.Err() == nil {
		first, last := sp.refs[0], sp.refs[len(sp.refs)-1]
		n := int(last.Offset + uint64(last.Length) - first.Offset)
		buf = rs.r.cache.bufs.get(n)
		var err error
		if stored, err = rs.r.idx.ReadSpan(first.Pack, int64(first.Offset), n, buf); err != nil {
			stored = nil
		}
		for i, ref := range sp.refs {
			if stored == nil {
				break
			}
			off := ref.Offset - first.Offset
			dec := rs.r.decoders.Get().(*codec.Decoder)
			// stored is this span's own: opened in place, as loadData
			// opens a chunk's own read; the decoded bytes are new.
			plain, err := decodeScratch(rs.r.idx.Keys, dec, nil, ref, stored[off:off+uint64(ref.Length)])
			rs.r.decoders.Put(dec)
			if err == nil {
				datas[i], ok[i] = plain, true
			}
		}
		rs.r.cache.bufs.put(buf)
	}
	for i, id := range sp.ids {
		if !ok[i] {
			datas[i], errs[i] = rs.r.loadData(ctx, id, rs.o.fromStore)
		}
	}
	return datas, errs
}
