package snapshot

import (
	"context"

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

// restoreSpanGap is the most bytes a span reads through between two of
// its chunks: the trees a snapshot stores between a directory's small
// files (a few hundred bytes each), or chunks the restore does not need.
const restoreSpanGap = 64 << 10

// restoreSpan is chunks read with one GET: refs lie in one pack, in
// order, at most restoreSpanGap bytes apart, and dests[i] are the places of the batch's files
// that hold the chunk ids[i] (restorebatch.go). A span of one chunk, or
// one whose chunk the index could not look up, has no refs and is loaded
// the ordinary way (Repository.loadData), blob cache and errors
// included.
type restoreSpan struct {
	ids   []index.ID
	refs  []index.BlobRef
	dests [][]restoreDest
}

// loadSpan returns the decoded chunks of sp, each checked against its
// id, or for each the error of loading it. A span of several chunks is
// one read of the store; a chunk whose bytes from it do not decode or
// check out, or all of them when that read fails, is loaded once more on
// its own, so a store that handed back wrong bytes once is not reported
// as damage, and what is reported is loadData's error for that chunk.
//
// The decoded chunks of the span's own read are in buffers of the
// repository's pool (no fresh zeroed gigabyte for a gigabyte restored);
// release gives them back, once the caller is done with datas.
func (rs *restorer) loadSpan(ctx context.Context, sp restoreSpan) (datas [][]byte, errs []error, release func()) {
	datas, errs = make([][]byte, len(sp.ids)), make([]error, len(sp.ids))
	var pooled [][]byte
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
			dst := rs.r.cache.bufs.get(int(ref.RawLength))
			// stored is this span's own: opened in place, as loadData
			// opens a chunk's own read; it is decoded into dst.
			plain, err := decodeScratch(rs.r.idx.Keys, dec, dst, ref, stored[off:off+uint64(ref.Length)])
			rs.r.decoders.Put(dec)
			pooled = append(pooled, dst)
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
	return datas, errs, func() {
		for _, b := range pooled {
			rs.r.cache.bufs.put(b)
		}
	}
}
