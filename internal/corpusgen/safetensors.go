package corpusgen

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"sort"
)

// TensorInfo is one entry of a safetensors header.
type TensorInfo struct {
	Name  string
	DType string
	Shape []int
	// Begin and End are the tensor's bytes in the file, header included.
	Begin, End int64
}

// Shard is a parsed safetensors file header.
type Shard struct {
	// HeaderLen is the JSON header's length (the u64 at the start).
	HeaderLen int64
	// Metadata is the header's __metadata__.
	Metadata map[string]string
	// Tensors are in file order.
	Tensors []TensorInfo
}

// DataStart is where the first tensor's bytes begin.
func (s *Shard) DataStart() int64 { return 8 + s.HeaderLen }

type headerEntry struct {
	DType       string  `json:"dtype"`
	Shape       []int   `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

// writeSafetensors writes ts, in order, with each tensor's bytes from
// data: a little-endian u64 header length, the JSON header padded with
// spaces to a multiple of 8 (so tensors are aligned), then the data.
func writeSafetensors(path string, ts []tensorSpec, data map[string][]byte, meta map[string]string) error {
	h := map[string]any{"__metadata__": meta}
	var off int64
	for _, t := range ts {
		n := int64(len(data[t.Name]))
		h[t.Name] = headerEntry{DType: "BF16", Shape: t.Shape, DataOffsets: []int64{off, off + n}}
		off += n
	}
	hb, err := encodeHeader(h)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("corpusgen: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var lenb [8]byte
	binary.LittleEndian.PutUint64(lenb[:], uint64(len(hb)))
	w.Write(lenb[:])
	w.Write(hb)
	for _, t := range ts {
		w.Write(data[t.Name])
	}
	err = w.Flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("corpusgen: write %s: %w", path, err)
	}
	return nil
}

func encodeHeader(h map[string]any) ([]byte, error) {
	hb, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("corpusgen: %w", err)
	}
	for len(hb)%8 != 0 {
		hb = append(hb, ' ')
	}
	return hb, nil
}

// ReadShard parses the header of the safetensors file at path and checks
// that the tensors tile the data exactly.
func ReadShard(path string) (*Shard, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("corpusgen: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("corpusgen: %w", err)
	}
	var lenb [8]byte
	if _, err := f.ReadAt(lenb[:], 0); err != nil {
		return nil, fmt.Errorf("corpusgen: %s: %w", path, err)
	}
	hl := int64(binary.LittleEndian.Uint64(lenb[:]))
	if hl <= 0 || 8+hl > fi.Size() {
		return nil, fmt.Errorf("corpusgen: %s: header length %d in a %d-byte file", path, hl, fi.Size())
	}
	hb := make([]byte, hl)
	if _, err := f.ReadAt(hb, 8); err != nil {
		return nil, fmt.Errorf("corpusgen: %s: %w", path, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hb, &raw); err != nil {
		return nil, fmt.Errorf("corpusgen: %s: header: %w", path, err)
	}
	s := &Shard{HeaderLen: hl}
	for name, v := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(v, &s.Metadata); err != nil {
				return nil, fmt.Errorf("corpusgen: %s: __metadata__: %w", path, err)
			}
			continue
		}
		var e headerEntry
		if err := json.Unmarshal(v, &e); err != nil || len(e.DataOffsets) != 2 {
			return nil, fmt.Errorf("corpusgen: %s: tensor %q: bad entry", path, name)
		}
		s.Tensors = append(s.Tensors, TensorInfo{Name: name, DType: e.DType, Shape: e.Shape,
			Begin: s.DataStart() + e.DataOffsets[0], End: s.DataStart() + e.DataOffsets[1]})
	}
	sort.Slice(s.Tensors, func(i, j int) bool { return s.Tensors[i].Begin < s.Tensors[j].Begin })
	at := s.DataStart()
	for _, t := range s.Tensors {
		n := int64(2)
		for _, d := range t.Shape {
			n *= int64(d)
		}
		if t.Begin != at || t.End-t.Begin != n || t.DType != "BF16" {
			return nil, fmt.Errorf("corpusgen: %s: tensor %s at [%d,%d) %s %v does not follow at %d", path, t.Name, t.Begin, t.End, t.DType, t.Shape, at)
		}
		at = t.End
	}
	if at != fi.Size() {
		return nil, fmt.Errorf("corpusgen: %s: tensors end at %d, the file at %d", path, at, fi.Size())
	}
	return s, nil
}
