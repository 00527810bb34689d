package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"strings"
	"testing"
)

// packBytes writes a pack of blobs with the PackWriter and returns its bytes.
func packBytes(t *testing.T, blobs ...[]byte) []byte {
	t.Helper()
	r := newTestRepo(t)
	id, _ := writePack(t, r, blobs...)
	data, err := os.ReadFile(PackPath(r.Dir, id))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func decodeBytes(data []byte) error {
	_, err := DecodeTrailer(bytes.NewReader(data), int64(len(data)))
	return err
}

// Every byte of the header is checked: the magic, the version and the
// seven reserved bytes. A flipped reserved byte used to pass.
func TestPackHeaderEveryByteChecked(t *testing.T) {
	valid := packBytes(t, []byte("one"), []byte("two"))
	if err := decodeBytes(valid); err != nil {
		t.Fatal(err)
	}
	for off := 0; off < headerSize; off++ {
		data := bytes.Clone(valid)
		data[off] ^= 0x01
		err := decodeBytes(data)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("header byte %d flipped: %v, want ErrCorrupt", off, err)
			continue
		}
		want := map[bool]string{true: "reserved byte", false: "version"}[off > 8]
		if off < 8 {
			want = "magic"
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("header byte %d flipped: %q does not say %q", off, err, want)
		}
	}
}

// resealTrailer rewrites the trailer of a pack with fn and gives it a
// matching CRC, as a writer bug (not bit rot) would: only the
// self-description check can notice.
func resealTrailer(data []byte, fn func(trailer []byte)) []byte {
	data = bytes.Clone(data)
	foot := data[len(data)-footerSize:]
	tlen := int(binary.LittleEndian.Uint32(foot))
	trailer := data[len(data)-footerSize-tlen : len(data)-footerSize]
	fn(trailer)
	binary.LittleEndian.PutUint32(foot[4:], crc32.Checksum(trailer, crcTable))
	return data
}

// The trailer describes the file: blobs back to back from the header to
// the trailer. A CRC-valid trailer that leaves a gap, overlaps, or leaves
// bytes undescribed is refused.
func TestPackTrailerMustDescribeTheFile(t *testing.T) {
	valid := packBytes(t, []byte("first blob"), []byte("second"))
	cases := map[string][]byte{
		"second blob starts one byte late": resealTrailer(valid, func(tr []byte) {
			binary.LittleEndian.PutUint64(tr[entrySize+34:], binary.LittleEndian.Uint64(tr[entrySize+34:])+1)
		}),
		"first blob one byte shorter": resealTrailer(valid, func(tr []byte) {
			binary.LittleEndian.PutUint32(tr[42:], binary.LittleEndian.Uint32(tr[42:])-1)
		}),
		"last blob one byte shorter": resealTrailer(valid, func(tr []byte) {
			binary.LittleEndian.PutUint32(tr[entrySize+42:], binary.LittleEndian.Uint32(tr[entrySize+42:])-1)
		}),
	}
	// A byte inserted between the blobs and the trailer: the footer and
	// trailer are intact, the file is one byte longer than described.
	headEnd := len(valid) - footerSize - 2*entrySize
	grown := append(append(bytes.Clone(valid[:headEnd]), 0), valid[headEnd:]...)
	cases["one undescribed byte before the trailer"] = grown
	for name, data := range cases {
		if err := decodeBytes(data); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	// An empty pack (header, empty trailer, footer) is well formed.
	empty := packBytes(t)
	if err := decodeBytes(empty); err != nil {
		t.Fatalf("a pack of no blobs: %v", err)
	}
}
