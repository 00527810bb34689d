package snapshot

import (
	"fmt"
	"sync"

	"citadelfs/index"
)

// blobSaver appends encoded blobs to the current pack and commits each
// finished pack to the index. Dedup happens in Reserve, before a chunk is
// compressed, so known chunks cost one index lookup and nothing else.
//
// A blob id is "pending" from Reserve until its pack is committed, so two
// workers never store the same chunk twice in one run. Full packs are
// finished (fsync, rename, index commit; or the PUT) by background
// finishers so the compressing workers never wait on the disk or the
// network; at most two full packs wait for them, which bounds the dirty
// page cache we create.
//
// A directory has one finisher: a pack's write is a memcpy into O_DIRECT
// buffers and its fsync is quick, so more would only interleave packs on
// the disk. A store has Options.Uploads (default 4): one PUT at a time
// leaves RGW idle between requests (measured here, on a loaded machine:
// 16 MiB objects one after another 75 MiB/s, four at once 105 MiB/s;
// four at once on an idle one 250 MiB/s), and with one finisher the
// compressing workers waited on the uploads. Memory is bounded
// by the pipeline: the pack being filled, two waiting, and one per
// finisher, each at most PackSize (16 MiB for a store) plus a blob; the
// command raises its soft heap target for it (cmd/citadelfs
// uploadMemoryLimit).
type blobSaver struct {
	r       *Repository
	target  int
	mu      sync.Mutex
	pw      *index.PackWriter
	pending map[index.ID]struct{}
	inPack  []index.ID
	packs   int
	// written are the packs this run committed, for Result.Packs.
	written []index.ID
	// heal holds the blobs the index serves from a quarantined (damaged)
	// copy: they count as absent, so this run stores them again from the
	// source and the index then points at the good copy. Read-only after
	// newBlobSaver.
	heal map[index.ID]index.Damaged

	full     chan fullPack
	finished chan struct{}
	errMu    sync.Mutex
	err      error
}

type fullPack struct {
	pw  *index.PackWriter
	ids []index.ID
}

func newBlobSaver(r *Repository) (*blobSaver, error) {
	heal, err := r.idx.QuarantinedInUse()
	if err != nil {
		return nil, err
	}
	s := &blobSaver{r: r, target: r.opts.PackSize, pending: map[index.ID]struct{}{}, heal: heal,
		full: make(chan fullPack, 2), finished: make(chan struct{})}
	n := 1
	if r.idx.IsRemote() {
		n = r.opts.Uploads
	}
	var wg sync.WaitGroup
	for range n {
		wg.Go(s.finisher)
	}
	go func() { wg.Wait(); close(s.finished) }()
	return s, nil
}

// damaged reports whether the index serves id from a quarantined copy, so
// that whatever uses it must be read from the source again.
func (s *blobSaver) damaged(id index.ID) bool {
	_, ok := s.heal[id]
	return ok
}

func (s *blobSaver) finisher() {
	for fp := range s.full {
		if s.firstErr() != nil {
			fp.pw.Abort()
			continue
		}
		if err := s.commit(fp.pw, fp.ids); err != nil {
			s.setErr(err)
		}
	}
}

func (s *blobSaver) setErr(err error) {
	s.errMu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.errMu.Unlock()
}

func (s *blobSaver) firstErr() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// Reserve reports whether id must be stored, marking it pending if so.
func (s *blobSaver) Reserve(id index.ID) (bool, error) {
	s.mu.Lock()
	if _, ok := s.pending[id]; ok {
		s.mu.Unlock()
		return false, nil
	}
	s.mu.Unlock()
	if !s.damaged(id) {
		has, err := s.r.idx.HasBlob(id)
		if err != nil || has {
			return false, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pending[id]; ok {
		return false, nil
	}
	s.pending[id] = struct{}{}
	return true, nil
}

// sealBufs recycles the buffers blobSaver.Add seals into.
var sealBufs = sync.Pool{New: func() any { return new([]byte) }}

// Add stores a reserved blob given its encoded bytes. In an encrypted
// repository it seals them first (index.Keys.SealBlob), here, on the
// calling chunk worker and outside the saver's lock, so sealing runs on
// as many cores as compressing does; the pack writer then copies the
// sealed bytes into its buffer, as it copies encoded ones in the clear.
func (s *blobSaver) Add(t index.BlobType, codecID uint8, id index.ID, encoded []byte, rawLen int) error {
	if err := s.firstErr(); err != nil {
		return err
	}
	stored := encoded
	if keys := s.r.idx.Keys; keys != nil {
		buf := sealBufs.Get().(*[]byte)
		defer sealBufs.Put(buf)
		sealed, err := keys.SealBlob((*buf)[:0], t, codecID, id, rawLen, encoded)
		if err != nil {
			return err
		}
		*buf, stored = sealed, sealed
	}
	s.mu.Lock()
	if s.pw == nil {
		pw, err := s.r.idx.NewPackWriter()
		if err != nil {
			s.mu.Unlock()
			return err
		}
		s.pw = pw
	}
	if err := s.pw.Add(t, codecID, id, stored, rawLen); err != nil {
		s.mu.Unlock()
		return err
	}
	s.inPack = append(s.inPack, id)
	if s.pw.Size() < uint64(s.target) {
		s.mu.Unlock()
		return nil
	}
	fp := fullPack{s.pw, s.inPack}
	s.pw, s.inPack = nil, nil
	s.mu.Unlock()
	s.full <- fp
	return nil
}

func (s *blobSaver) commit(pw *index.PackWriter, ids []index.ID) error {
	id, entries, err := pw.Finish()
	if err != nil {
		return err
	}
	if err := s.r.idx.CommitPack(id, entries, pw.Size()); err != nil {
		return err
	}
	s.mu.Lock()
	for _, b := range ids {
		delete(s.pending, b)
	}
	s.packs++
	s.written = append(s.written, id)
	s.mu.Unlock()
	return nil
}

// Flush finishes and commits the current pack and waits for the
// background finisher. It runs after the workers have stopped, so no Add
// is in flight; the saver cannot be used afterwards.
func (s *blobSaver) Flush() error {
	s.mu.Lock()
	pw, ids := s.pw, s.inPack
	s.pw, s.inPack = nil, nil
	s.mu.Unlock()
	if pw != nil {
		s.full <- fullPack{pw, ids}
	}
	close(s.full)
	<-s.finished
	return s.firstErr()
}

// Abort discards the unfinished pack (its blobs were never indexed) and
// stops the finisher without committing what it still holds.
func (s *blobSaver) Abort() {
	s.setErr(fmt.Errorf("snapshot: aborted"))
	s.mu.Lock()
	if s.pw != nil {
		s.pw.Abort()
		s.pw = nil
	}
	s.mu.Unlock()
	close(s.full)
	<-s.finished
}

// writeManifest stores a manifest raw in a pack of its own, commits its
// blob, and only then the snapshot record: the snapshot becomes visible
// in one synced Pebble write, after everything it refers to is durable.
func (r *Repository) writeManifest(m *Manifest) (index.ID, error) {
	id, _, err := r.writeManifestPack(m)
	return id, err
}

// writeManifestPack is writeManifest that also returns the manifest's pack.
func (r *Repository) writeManifestPack(m *Manifest) (index.ID, index.ID, error) {
	b, err := marshalManifest(m)
	if err != nil {
		return index.ID{}, index.ID{}, err
	}
	id := r.blobID(b)
	pw, err := r.idx.NewPackWriter()
	if err != nil {
		return id, index.ID{}, err
	}
	if err := pw.AddEncoded(index.SnapshotBlob, 0, id, b, len(b)); err != nil {
		pw.Abort()
		return id, index.ID{}, err
	}
	pack, entries, err := pw.Finish()
	if err != nil {
		return id, index.ID{}, err
	}
	if err := r.idx.CommitPack(pack, entries, pw.Size()); err != nil {
		return id, index.ID{}, err
	}
	if err := r.idx.PutSnapshot(id, b); err != nil {
		return id, index.ID{}, fmt.Errorf("snapshot: commit: %w", err)
	}
	r.changed()
	return id, pack, nil
}
