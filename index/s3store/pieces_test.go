package s3store

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// A pack buffered in pieces reads back as written, across piece
// boundaries and after a rewind (minio-go seeks to 0 for a retry), only
// up to the committed size; once closed it reads nothing, so its pieces
// can go to the next pack.
func TestPiecesReaderReadSeekClose(t *testing.T) {
	s := &Store{}
	w := &writer{s: s}
	want := make([]byte, 2*pieceSize+12345)
	for i := range want {
		want[i] = byte(i * 7)
	}
	// Uneven writes, as the pack writer's buffers and its tail come.
	for off, step := 0, 777777; off < len(want); off += step {
		w.Write(want[off:min(off+step, len(want))])
	}
	if len(w.pieces) != 3 || w.n != int64(len(want)) {
		t.Fatalf("%d pieces, %d bytes", len(w.pieces), w.n)
	}
	size := int64(len(want) - 100)
	r := &piecesReader{pieces: w.pieces, size: size}
	buf := make([]byte, 100000)
	got, err := io.CopyBuffer(io.Discard, io.LimitReader(r, 3*pieceSize), buf)
	if err != nil || got != size {
		t.Fatalf("read %d of %d: %v", got, size, err)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(all, want[:size]) {
		t.Fatalf("after a rewind: %d bytes, %v", len(all), err)
	}
	if _, err := r.Seek(size+1, io.SeekStart); err == nil {
		t.Fatal("a seek past the end was accepted")
	}
	r.Seek(0, io.SeekStart)
	r.close()
	if n, err := r.Read(buf); n != 0 || !errors.Is(err, errBodyClosed) {
		t.Fatalf("read after close: %d, %v", n, err)
	}
	w.Abort()
	if len(s.free) != 3 {
		t.Fatalf("%d pieces on the free list after the pack, want 3", len(s.free))
	}
	if p := s.getPiece(); len(p) != 0 || cap(p) != pieceSize || len(s.free) != 2 {
		t.Fatalf("a reused piece: len %d cap %d, %d left", len(p), cap(p), len(s.free))
	}
}
