package index

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// Store holds a repository's objects under slash-separated names: the
// packs (packs/<xx>/<id>.pack) and, for a remote repository, citadel.json,
// the snapshot markers and the locks. Every pack byte the index reads or
// writes goes through one: the local directory (LocalStore), an S3 bucket
// (package s3store), or a decorator around either (ReadOnlyStore,
// FaultyStore), in the style of kopia's repo/blob.
//
// The interface is small on purpose: put-if-absent, read a byte range,
// stat, list by prefix, delete. Anything an object store cannot do
// atomically (rename, append, overwrite-if) is not in it.
//
// Errors: a missing object is fs.ErrNotExist, a read past the end of an
// object io.ErrUnexpectedEOF, a put over an existing object
// ErrObjectExists; each wrapped, so test with errors.Is.
type Store interface {
	// Put stores a small object whole, only if no object of that name
	// exists (ErrObjectExists otherwise).
	Put(name string, data []byte) error
	// Create starts an object whose name is known only once it is
	// written (a pack is named by its content): see ObjectWriter.
	Create() (ObjectWriter, error)
	// ReadRange returns n bytes of object name from offset off. It reads
	// into buf when buf is large enough; the result may start inside buf
	// (LocalStore's O_DIRECT reads align the span they read). The result
	// is the caller's to write to (readers decrypt sealed blobs in place):
	// never memory the store keeps.
	ReadRange(name string, off int64, n int, buf []byte) ([]byte, error)
	// Stat returns the size of object name.
	Stat(name string) (int64, error)
	// List calls fn for each complete object whose name starts with
	// prefix, in no particular order.
	List(prefix string, fn func(name string, size int64) error) error
	// Delete removes object name; a missing one is not an error.
	Delete(name string) error
	// Close releases what the store holds open (cached file handles,
	// connections).
	Close() error
}

// ObjectWriter streams one object. Nothing of it is visible under any
// name until Commit returns; Abort (or a failed Commit) leaves nothing.
type ObjectWriter interface {
	// Write appends b. Every buffer but the last must be a multiple of
	// Align bytes, and start aligned to it, when Align is not 0.
	Write(b []byte) (int, error)
	// Align is the buffer alignment the writer wants (LocalStore's
	// O_DIRECT: 4096); 0 for none. The last buffer is padded up to it by
	// the caller, and Commit cuts the object back to size.
	Align() int
	// Commit makes the object's first size bytes durable under name.
	// Where an object of that name exists already the result depends on
	// the store: LocalStore replaces it (names are content hashes, so
	// it holds the same blobs, and `repair packs` relies on a rewrite
	// replacing a damaged copy); an S3 store's conditional PUT refuses,
	// and the writer reports success, since the object under that name
	// already holds these blobs.
	Commit(name string, size int64) error
	// Abort discards the object.
	Abort()
}

// BufferedWriter is an ObjectWriter that holds the whole object in
// memory until Commit (s3store). A PackWriter fills the buffers it hands
// out and gives them back (Take) instead of copying its own into Write:
// one copy of every stored byte less.
type BufferedWriter interface {
	ObjectWriter
	// Buffer returns an empty buffer to fill (its capacity is the size).
	Buffer() []byte
	// Take appends b, a buffer from Buffer, and keeps it: the caller
	// must not touch it again. Every b but the last must be full.
	Take(b []byte)
}

// ErrObjectExists: Put found an object of that name.
var ErrObjectExists = errors.New("object exists")

// ErrStoreUnavailable: the store could not be reached, or refused the
// request (a stopped RGW after its retries, throttling that did not end,
// credentials it does not accept).
var ErrStoreUnavailable = errors.New("store unavailable")

// ErrReadOnlyStore: a write through a ReadOnlyStore.
var ErrReadOnlyStore = errors.New("store is read-only")

// PackName is the store name of pack id.
func PackName(id ID) string {
	s := id.String()
	return packsDir + "/" + s[:2] + "/" + s + ".pack"
}

// packIDFromName parses a name made by PackName.
func packIDFromName(name string) (ID, bool) {
	rest, ok := strings.CutPrefix(name, packsDir+"/")
	if !ok || len(rest) != 2+1+64+5 || rest[2] != '/' || !strings.HasSuffix(rest, ".pack") || rest[:2] != rest[3:5] {
		return ID{}, false
	}
	id, err := ParseID(rest[3 : 3+64])
	return id, err == nil
}

// ListStorePacks lists the packs in a store.
func ListStorePacks(s Store) ([]PackInfo, error) {
	var out []PackInfo
	err := s.List(packsDir+"/", func(name string, size int64) error {
		if id, ok := packIDFromName(name); ok {
			out = append(out, PackInfo{ID: id, Size: size})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index: list packs: %w", err)
	}
	return out, nil
}

// readerAt adapts a store object to io.ReaderAt (for DecodeTrailer).
type readerAt struct {
	s    Store
	name string
}

func (r readerAt) ReadAt(p []byte, off int64) (int, error) {
	b, err := r.s.ReadRange(r.name, off, len(p), p)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, io.EOF
		}
		return 0, err
	}
	return copy(p, b), nil
}

// isNotExist reports whether err means a missing object.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
