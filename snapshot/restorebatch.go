package snapshot

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"citadelfs/index"
)

// A restore from a remote repository restores files in batches, pack by
// pack, as restic does: the chunks all files of a batch need are sorted by
// pack and offset, cut into spans (runs that lie back to back in one
// pack, restoreSpanMax stored bytes at most), and each span is one
// ranged GET whose chunks are written wherever the batch's files hold
// them. A snapshot stores the chunks of the files it reads at once side
// by side in its packs, in the order its workers finish them, so neither
// one GET per chunk nor per-file runs fetch a pack in few requests; the
// small files of a directory share one pack, and a GET each was most of
// the GETs of a restore. A file is finished (size, metadata, closed) as
// soon as its last chunk is written.
const (
	// restoreBatchFiles and restoreBatchBytes bound one batch: the files
	// it holds open, and the data they take.
	restoreBatchFiles = 128
	restoreBatchBytes = 256 << 20
	// restoreBatchWait is how long a batch that is not full waits for
	// the next file.
	restoreBatchWait = 10 * time.Millisecond
	// remoteRestoreWorkers is how many batches are restored at once, so
	// one's last spans overlap the next one's first.
	remoteRestoreWorkers = 2
	// restoreAhead is how many spans of one batch are loaded at once,
	// restoreLoads how many of all batches (4 MiB stored each at most,
	// with their decoded chunks beside them until written).
	restoreAhead = 4
	restoreLoads = 8
)

// batchFile is one file of a batch: created, and finished once its
// chunks are written (remaining counts them down).
type batchFile struct {
	job restoreJob
	fd  int
	f   *os.File

	mu        sync.Mutex
	remaining int
	err       error // the first failure filling it
	finished  bool
}

// batcher groups the restore's jobs into batches of up to
// restoreBatchFiles and restoreBatchBytes: a batch is handed on when full,
// or once restoreBatchWait passes without a new job (the walk is loading
// trees). Without that wait, batch workers that are free take each small
// file as it comes, a batch (and a GET) of its own. It closes out when
// the jobs end.
func (rs *restorer) batcher(out chan<- []restoreJob) {
	defer close(out)
	idle := time.NewTimer(restoreBatchWait)
	defer idle.Stop()
	for job := range rs.jobs {
		batch, size := []restoreJob{job}, fileBytes(job.node)
		idle.Reset(restoreBatchWait)
	fill:
		for len(batch) < restoreBatchFiles && size < restoreBatchBytes {
			select {
			case j, ok := <-rs.jobs:
				if !ok {
					break fill
				}
				batch, size = append(batch, j), size+fileBytes(j.node)
				idle.Reset(restoreBatchWait)
			case <-idle.C:
				break fill
			}
		}
		// The batch workers take every batch until out is closed.
		out <- batch
	}
}

func (rs *restorer) batchWorker(batches <-chan []restoreJob) {
	for batch := range batches {
		if rs.ctx.Err() != nil {
			for _, job := range batch {
				job.dir.release()
			}
			continue
		}
		rs.restoreBatch(batch)
	}
}

// restoreDest is where a chunk goes: a file of the batch, at an offset.
type restoreDest struct {
	file   int
	off    int64
	length int64 // the chunk's length, as the file's tree says
}

// restoreBatch creates the files of batch, fetches their chunks span by
// span, restoreAhead spans at once, and finishes each file.
func (rs *restorer) restoreBatch(batch []restoreJob) {
	files := make([]*batchFile, 0, len(batch))
	for _, job := range batch {
		if rs.ctx.Err() != nil {
			job.dir.release()
			continue
		}
		fd, f, err := rs.createFile(job)
		if err != nil {
			rs.done(job, err)
			continue
		}
		files = append(files, &batchFile{job: job, fd: fd, f: f, remaining: len(job.node.Content)})
	}
	spans := rs.planBatch(files)
	for _, bf := range files {
		if bf.remaining == 0 {
			rs.finishBatchFile(bf)
		}
	}
	work := make(chan restoreSpan)
	var wg sync.WaitGroup
	for range min(restoreAhead, len(spans)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sp := range work {
				rs.writeSpan(files, sp)
				<-rs.loadSlots
			}
		}()
	}
dispatch:
	for _, sp := range spans {
		select {
		case rs.loadSlots <- struct{}{}:
		case <-rs.ctx.Done():
			break dispatch
		}
		work <- sp
	}
	close(work)
	wg.Wait()
	// Only a cancel leaves files unfinished: they are removed.
	for _, bf := range files {
		bf.mu.Lock()
		if !bf.finished && bf.err == nil {
			if bf.err = context.Cause(rs.ctx); bf.err == nil {
				bf.err = fmt.Errorf("snapshot: restore %s: %d chunks not written", bf.job.path(), bf.remaining)
			}
		}
		bf.mu.Unlock()
		rs.finishBatchFile(bf)
	}
}

// planBatch looks up every chunk of files and cuts them into spans, in
// pack order. A chunk several files (or places of one) hold is read once.
// A chunk the index cannot look up is a span of its own, loaded the
// ordinary way (loadData reports why).
func (rs *restorer) planBatch(files []*batchFile) []restoreSpan {
	type located struct {
		ref   index.BlobRef
		dests []restoreDest
	}
	type refKey struct {
		pack index.ID
		off  uint64
	}
	var spans []restoreSpan
	var found []*located
	byRef := map[refKey]*located{}
	for fi, bf := range files {
		for _, c := range bf.job.node.Content {
			d := restoreDest{fi, c.Offset, c.Length}
			ref, err := rs.r.idx.Lookup(c.ID)
			if err != nil {
				spans = append(spans, restoreSpan{ids: []index.ID{c.ID}, dests: [][]restoreDest{{d}}})
				continue
			}
			k := refKey{ref.Pack, ref.Offset}
			if l := byRef[k]; l != nil && l.ref.ID == ref.ID {
				l.dests = append(l.dests, d)
				continue
			}
			l := &located{ref, []restoreDest{d}}
			byRef[k] = l
			found = append(found, l)
		}
	}
	sort.Slice(found, func(a, b int) bool {
		x, y := found[a].ref, found[b].ref
		if c := bytes.Compare(x.Pack[:], y.Pack[:]); c != 0 {
			return c < 0
		}
		return x.Offset < y.Offset
	})
	var cur restoreSpan
	flush := func() {
		if len(cur.ids) > 0 {
			if len(cur.refs) < 2 {
				cur.refs = nil
			}
			spans = append(spans, cur)
		}
		cur = restoreSpan{}
	}
	for _, l := range found {
		if n := len(cur.refs); n > 0 {
			first, last := cur.refs[0], cur.refs[n-1]
			end := last.Offset + uint64(last.Length)
			if l.ref.Pack != last.Pack || l.ref.Offset < end || l.ref.Offset-end > restoreSpanGap ||
				l.ref.Offset+uint64(l.ref.Length)-first.Offset > restoreSpanMax {
				flush()
			}
		}
		cur.ids = append(cur.ids, l.ref.ID)
		cur.refs = append(cur.refs, l.ref)
		cur.dests = append(cur.dests, l.dests)
	}
	flush()
	return spans
}

// writeSpan loads sp and writes each of its chunks to every place the
// batch's files hold it; a file whose chunk failed, or whose write did,
// takes no more writes and is removed when it is finished.
func (rs *restorer) writeSpan(files []*batchFile, sp restoreSpan) {
	datas, errs, release := rs.loadSpan(rs.ctx, sp)
	defer release()
	for i, dests := range sp.dests {
		data, lerr := datas[i], errs[i]
		if lerr != nil {
			lerr = rs.readFailed(lerr)
		}
		for _, d := range dests {
			bf := files[d.file]
			bf.mu.Lock()
			ferr := bf.err
			bf.mu.Unlock()
			if ferr == nil && lerr != nil {
				ferr = lerr
			}
			if ferr == nil && int64(len(data)) != d.length {
				ferr = &corruptLength{id: sp.ids[i]}
			}
			if ferr == nil {
				if _, werr := bf.f.WriteAt(data, d.off); werr != nil {
					ferr = fmt.Errorf("snapshot: restore %s: %w", bf.job.path(), werr)
					// The target failing ends the restore: stop the loads
					// of the files beside it too.
					rs.cancel(ferr)
				} else {
					rs.o.Progress.Bytes.Add(int64(len(data)))
				}
			}
			bf.mu.Lock()
			if bf.err == nil {
				bf.err = ferr
			}
			bf.remaining--
			last := bf.remaining == 0
			bf.mu.Unlock()
			if last {
				rs.finishBatchFile(bf)
			}
		}
	}
}

// finishBatchFile finishes bf once (finishFile) and counts it (done).
func (rs *restorer) finishBatchFile(bf *batchFile) {
	bf.mu.Lock()
	if bf.finished {
		bf.mu.Unlock()
		return
	}
	bf.finished = true
	err := bf.err
	bf.mu.Unlock()
	rs.done(bf.job, rs.finishFile(bf.job, bf.fd, bf.f, err))
}
