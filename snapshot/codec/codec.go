package codec

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/klauspost/compress/zstd"
)

// ID names the codec a chunk was stored with. It is written to the index
// next to every chunk, so existing values never change meaning: a new or
// changed layout gets a new ID.
type ID uint8

// The codecs. See the package documentation for each one's bytes on disk.
const (
	Raw  ID = 0 // stored as is
	Zstd ID = 1 // klauspost zstd, one frame
	BF16 ID = 2 // 2-byte floats (bf16/fp16): exponent and byte-position streams, huff0 coded
	F32  ID = 3 // 4-byte floats: the same with 4 streams per value
)

// String returns the codec's lower-case name, as shown in listings and
// metrics; unknown IDs print as "codec(N)".
func (id ID) String() string {
	switch id {
	case Raw:
		return "raw"
	case Zstd:
		return "zstd"
	case BF16:
		return "bf16"
	case F32:
		return "f32"
	}
	return "codec(" + strconv.Itoa(int(id)) + ")"
}

// ErrCorrupt is wrapped by every error Decode returns: the stored bytes do
// not decode to rawLen bytes under the given codec. Callers check it with
// errors.Is and treat the chunk as damaged (EIO at the FUSE edge).
var ErrCorrupt = errors.New("codec: corrupt data")

// MaxRawLen is the largest input Encode accepts and the largest rawLen
// Decode believes. Chunks are at most 4 MiB; the bound is far above that so
// that other blobs (trees, manifests) fit, yet low enough that a damaged
// length in the index cannot make Decode allocate without limit.
const MaxRawLen = 256 << 20

// Options configures an Encoder. The zero value is ready to use.
type Options struct {
	// ZstdLevel is the klauspost zstd level for text, logs, JSON and other
	// general data. Default zstd.SpeedFastest: on corpusgen's logs
	// SpeedDefault makes the output 2% smaller (0.289 against 0.295 of
	// the input) at 30% lower speed (docs/codec.md has the numbers), and
	// snapshot throughput is what the operator waits for.
	ZstdLevel zstd.EncoderLevel

	// MinSaving is the fraction of the input that Encode's chosen codec must
	// save; otherwise the chunk is stored Raw, which costs nothing to read
	// back. Default 1/32 (about 3%). Values <= 0 or >= 1 mean the default.
	MinSaving float64
}

func (o Options) withDefaults() Options {
	if o.ZstdLevel == 0 {
		o.ZstdLevel = zstd.SpeedFastest
	}
	if o.MinSaving <= 0 || o.MinSaving >= 1 {
		o.MinSaving = 1.0 / 32
	}
	return o
}

// Encoder compresses chunks. It is used by one goroutine at a time and
// reused across chunks: its scratch buffers and entropy-coder state grow to
// the largest chunk seen and are then kept, so steady-state encoding does
// not allocate. Make one with NewEncoder.
type Encoder struct {
	o    Options
	zstd *zstd.Encoder // created on first use: it holds a few MiB of tables
	fl   floatEncoder
	smp  sample
}

// NewEncoder returns an Encoder configured by o.
func NewEncoder(o Options) *Encoder {
	return &Encoder{o: o.withDefaults()}
}

// Encode compresses src with the codec that serves it best, chosen by a
// cheap test on a sample of src (see "Choosing a codec" in the package
// documentation), and returns the encoded bytes appended to dst[:0] and the
// codec's ID. When no codec saves at least Options.MinSaving, it returns Raw
// with a copy of src (in dst, grown if needed): out never aliases src, so
// the caller may reuse src at once.
func (e *Encoder) Encode(dst, src []byte) (out []byte, id ID, err error) {
	if len(src) > MaxRawLen {
		return nil, Raw, fmt.Errorf("codec: encode %d bytes: larger than MaxRawLen (%d)", len(src), MaxRawLen)
	}
	c := e.smp.choose(src)
	switch c.id {
	case Zstd:
		out, err = e.encodeZstd(dst, src)
	case BF16, F32:
		out = e.fl.encode(dst, src, c.width(), c.phase)
	}
	if err != nil {
		return nil, Raw, err
	}
	if c.id == Raw || len(out) > len(src)-int(float64(len(src))*e.o.MinSaving) {
		if cap(out) > cap(dst) {
			dst = out // already grown to about len(src)
		}
		return append(dst[:0], src...), Raw, nil
	}
	return out, c.id, nil
}

// EncodeWith encodes src with the codec id, whatever it saves, and returns
// the encoded bytes appended to dst[:0]. It is for tests and benchmarks,
// and for callers that know their data better than the sample test.
func (e *Encoder) EncodeWith(id ID, dst, src []byte) ([]byte, error) {
	if len(src) > MaxRawLen {
		return nil, fmt.Errorf("codec: encode %d bytes: larger than MaxRawLen (%d)", len(src), MaxRawLen)
	}
	switch id {
	case Raw:
		return append(dst[:0], src...), nil
	case Zstd:
		return e.encodeZstd(dst, src)
	case BF16:
		return e.fl.encode(dst, src, 2, e.smp.detectPhase(src, 2)), nil
	case F32:
		return e.fl.encode(dst, src, 4, e.smp.detectPhase(src, 4)), nil
	}
	return nil, fmt.Errorf("codec: encode with unknown codec %d", id)
}

func (e *Encoder) encodeZstd(dst, src []byte) ([]byte, error) {
	if e.zstd == nil {
		z, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(e.o.ZstdLevel),
			// EncodeAll runs on the caller's goroutine; the pipeline
			// already runs one Encoder per core.
			zstd.WithEncoderConcurrency(1),
			// A frame for empty input too, so every Zstd chunk is a frame.
			zstd.WithZeroFrames(true),
			// Entropy-code literals even where no match is found: below
			// SpeedBetterCompression klauspost skips that, and small config
			// files (1-6 KiB, few repeats) then come out 0.3% larger than
			// they went in instead of about 35% smaller. The chooser
			// already keeps incompressible data away from zstd.
			zstd.WithAllLitEntropyCompression(true))
		if err != nil {
			return nil, fmt.Errorf("codec: zstd encoder: %w", err)
		}
		e.zstd = z
	}
	return e.zstd.EncodeAll(src, dst[:0]), nil
}

// Decoder decompresses chunks. It is used by one goroutine at a time and
// reused across chunks, like Encoder.
type Decoder struct {
	zstd *zstd.Decoder // created on first use
	fl   floatDecoder
}

// NewDecoder returns a Decoder. It is cheap: state is built on first use.
func NewDecoder() *Decoder {
	return &Decoder{}
}

// Decode decodes src, stored with codec id from rawLen original bytes, into
// dst[:0], growing it if needed, and returns the decoded bytes. The result
// has exactly rawLen bytes, or Decode returns an error wrapping ErrCorrupt;
// malformed input never panics. The result may share memory with dst but
// never with src.
func (d *Decoder) Decode(dst, src []byte, id ID, rawLen int) (out []byte, err error) {
	if rawLen < 0 || rawLen > MaxRawLen {
		return nil, fmt.Errorf("codec: decode %s: length %d out of range: %w", id, rawLen, ErrCorrupt)
	}
	// The entropy decoders come from a third-party package fed bytes from
	// disk; a bug there must cost one chunk, not the mount daemon.
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("codec: decode %s: panic %v: %w", id, r, ErrCorrupt)
		}
	}()
	switch id {
	case Raw:
		if len(src) != rawLen {
			return nil, fmt.Errorf("codec: decode raw: %d bytes stored for %d: %w", len(src), rawLen, ErrCorrupt)
		}
		return append(dst[:0], src...), nil
	case Zstd:
		out, err = d.decodeZstd(dst, src, rawLen)
	case BF16:
		out, err = d.fl.decode(dst, src, 2, rawLen)
	case F32:
		out, err = d.fl.decode(dst, src, 4, rawLen)
	default:
		return nil, fmt.Errorf("codec: decode unknown codec %d: %w", id, ErrCorrupt)
	}
	if err != nil {
		return nil, fmt.Errorf("codec: decode %s: %w: %w", id, err, ErrCorrupt)
	}
	if len(out) != rawLen {
		// Unreachable if the codecs are right; checked because a short
		// chunk served as file content would be silent data loss.
		return nil, fmt.Errorf("codec: decode %s: got %d bytes, want %d: %w", id, len(out), rawLen, ErrCorrupt)
	}
	return out, nil
}

func (d *Decoder) decodeZstd(dst, src []byte, rawLen int) ([]byte, error) {
	if d.zstd == nil {
		z, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxMemory(MaxRawLen),
			// Never write past cap(dst), which Decode sets to rawLen: a
			// frame that claims more is corrupt, and must not allocate.
			zstd.WithDecodeAllCapLimit(true))
		if err != nil {
			return nil, fmt.Errorf("zstd decoder: %w", err)
		}
		d.zstd = z
	}
	var h zstd.Header
	if err := h.Decode(src); err != nil {
		return nil, err
	}
	if h.HasFCS && h.FrameContentSize != uint64(rawLen) {
		return nil, fmt.Errorf("frame holds %d bytes, want %d", h.FrameContentSize, rawLen)
	}
	if cap(dst) < rawLen {
		dst = make([]byte, 0, rawLen)
	}
	return d.zstd.DecodeAll(src, dst[:0:rawLen])
}
