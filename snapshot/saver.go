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
// workers never store the same chunk twice in one run.
type blobSaver struct {
	r       *Repository
	target  int
	mu      sync.Mutex
	pw      *index.PackWriter
	pending map[index.ID]struct{}
	inPack  []index.ID
	packs   int
}

func newBlobSaver(r *Repository) *blobSaver {
	return &blobSaver{r: r, target: r.opts.PackSize, pending: map[index.ID]struct{}{}}
}

// Reserve reports whether id must be stored, marking it pending if so.
func (s *blobSaver) Reserve(id index.ID) (bool, error) {
	s.mu.Lock()
	if _, ok := s.pending[id]; ok {
		s.mu.Unlock()
		return false, nil
	}
	s.mu.Unlock()
	has, err := s.r.idx.HasBlob(id)
	if err != nil || has {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pending[id]; ok {
		return false, nil
	}
	s.pending[id] = struct{}{}
	return true, nil
}

// Add stores a reserved blob.
func (s *blobSaver) Add(t index.BlobType, codecID uint8, id index.ID, stored []byte, rawLen int) error {
	s.mu.Lock()
	if s.pw == nil {
		pw, err := index.NewPackWriter(s.r.idx.Dir)
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
	pw, ids := s.pw, s.inPack
	s.pw, s.inPack = nil, nil
	// The full pack is finished outside the lock so other workers keep
	// filling the next one during the fsync. Its ids stay pending until
	// the commit, so nobody stores them again meanwhile.
	s.mu.Unlock()
	return s.commit(pw, ids)
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
	s.mu.Unlock()
	return nil
}

// Flush finishes and commits the current pack, if any. It runs after the
// workers have stopped, so no Add is in flight.
func (s *blobSaver) Flush() error {
	s.mu.Lock()
	pw, ids := s.pw, s.inPack
	s.pw, s.inPack = nil, nil
	s.mu.Unlock()
	if pw == nil {
		return nil
	}
	return s.commit(pw, ids)
}

// Abort discards the unfinished pack (its blobs were never indexed).
func (s *blobSaver) Abort() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pw != nil {
		s.pw.Abort()
		s.pw = nil
	}
}

// writeManifest stores a manifest raw in a pack of its own, commits its
// blob, and only then the snapshot record: the snapshot becomes visible
// in one synced Pebble write, after everything it refers to is durable.
func (r *Repository) writeManifest(m *Manifest) (index.ID, error) {
	b, err := marshalManifest(m)
	if err != nil {
		return index.ID{}, err
	}
	id := index.Hash(b)
	pw, err := index.NewPackWriter(r.idx.Dir)
	if err != nil {
		return id, err
	}
	if err := pw.Add(index.SnapshotBlob, 0, id, b, len(b)); err != nil {
		pw.Abort()
		return id, err
	}
	pack, entries, err := pw.Finish()
	if err != nil {
		return id, err
	}
	if err := r.idx.CommitPack(pack, entries, pw.Size()); err != nil {
		return id, err
	}
	if err := r.idx.PutSnapshot(id, b); err != nil {
		return id, fmt.Errorf("snapshot: commit: %w", err)
	}
	r.changed()
	return id, nil
}
