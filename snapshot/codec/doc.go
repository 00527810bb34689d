// Package codec compresses chunks, each with the codec that serves it
// best, and records which one by an ID stored next to the chunk in the
// index.
//
// Model weights are most of what citadelfs stores, and LZ compressors leave
// them as they are (zstd's fast levels reach a ratio of 1.00 on bf16
// shards). Their exponents, though, take a handful of values, so the float
// codecs split each value into an exponent stream and a sign/mantissa
// stream and Huffman-code each one, as ZipNN does: bf16 N(0, 0.02) weights
// come out at 0.662 of their size, encoded at about 1.2 GB/s and decoded
// at about 2 GB/s on one core. Text,
// configs and logs go to zstd; compressed or random data is stored Raw.
// docs/codec.md has the measurements.
//
// # Formats on disk
//
// The encoded bytes of a chunk are stored with its ID and its original
// length (rawLen); none of the formats repeats the length or the ID. A
// changed layout gets a new ID: an ID's bytes never change meaning.
//
// Raw (0): the chunk's bytes as they are; the stored length equals rawLen.
//
// Zstd (1): one zstd frame (RFC 8878) as github.com/klauspost/compress/zstd
// EncodeAll writes it: with the content size and a checksum, also for an
// empty chunk. Decode accepts any frames that decode to exactly rawLen
// bytes, and rejects a frame whose declared content size differs.
//
// BF16 (2) and F32 (3) treat the chunk as little-endian values of k bytes,
// k = 2 for BF16 (bf16 or fp16) and k = 4 for F32 (fp32), starting at a
// phase p: the offset of the first whole value, non-zero when a
// content-defined chunk boundary fell inside a value. With n = rawLen,
// m = (n-p)/k whole values and t = (n-p)%k bytes after them:
//
//	offset  length  contents
//	0       1       p; a value >= k is corrupt (so is p > n)
//	1       p       the first p bytes of the chunk, as they are
//	1+p     t       the last t bytes of the chunk, as they are
//	1+p+t   ...     k streams of m symbols each, one after another
//
// For each value, with hi its last (most significant) byte and lo the one
// before, the streams hold, in this order:
//
//	E  = hi<<1 | lo>>7       the 8 exponent bits of bf16 and fp32
//	S  = hi&0x80 | lo&0x7f   the sign and the top 7 mantissa bits
//	B1 = byte 1 of the value  (F32 only)
//	B0 = byte 0 of the value  (F32 only)
//
// Within each group of 8 consecutive values (values 8g to 8g+7), stream
// byte 8g+i holds value 8g+perm[i], with perm = 0 4 1 5 2 6 3 7 for BF16
// and 0 2 4 6 1 3 5 7 for F32: the order the 64-bit lane arithmetic of
// the split and merge produces (see float.go). The last m%8 values are in
// plain order.
//
// A stream is cut into blocks of 65536 symbols, the last one shorter; each
// block is a mode byte and its payload:
//
//	0  raw      the block's symbols as they are
//	1  RLE      one byte, repeated for the whole block
//	2  huff0    a 3-byte little-endian length L, then L bytes: a Huffman
//	            table as huff0.ReadTable reads it (zstd's
//	            Huffman_Tree_Description), a 6-byte jump table (the
//	            little-endian 16-bit sizes of the first three bit streams)
//	            and four bit streams, coding ceil(len/4) symbols each and
//	            the last one the rest, as huff0's Decompress4X reads them
//	            (zstd's 4-stream Huffman literals); the package decodes
//	            them itself, several symbols per table lookup (huffdec.go)
//
// Every block has its own table, so blocks decode independently. The
// encoded bytes end with the last block of the last stream; anything after
// it is corrupt.
//
// The regrouping is a bijection on any bytes, so data that is not floats,
// odd lengths and every phase round-trip exactly; they only compress less.
//
// # Choosing a codec
//
// Encode decides from a sample instead of trying codecs, because trying
// both zstd and a float codec on every chunk would cost more CPU than
// either, and the snapshot pipeline is CPU-bound. The sample is 16 spans of
// 4 KiB spread over the chunk (the whole chunk if it is shorter than
// 64 KiB):
//
//  1. Chunks under 64 bytes are Raw: no header pays for itself.
//  2. If more than 20% of the positions of 4 sample spans repeat an
//     8-byte string seen earlier in their span, the data is LZ-friendly
//     (text, JSON, logs, zero runs): Zstd.
//  3. From byte histograms by position modulo 2 and modulo 4, the order-0
//     entropy of all bytes (h0) and the mean entropy of the 2 and of the 4
//     byte-position streams (e2, e4) are estimated. For chunks of at least
//     1 KiB, if the better grouping (F32 only if e4 < e2 - 0.1) beats h0 by
//     0.25 bits per byte and is under 7.6 bits per byte, the float codec
//     is chosen; its phase is the position after the one of lowest entropy
//     that is not constant (the byte holding sign and exponent).
//  4. Otherwise data above 7.8 bits per byte that does not repeat itself
//     (compressed files, encrypted or random data) is Raw, and the rest Zstd.
//
// Whatever was chosen must save Options.MinSaving (1/32 by default) of the
// chunk, or the chunk is stored Raw, which costs nothing to read back.
// Within the float codecs, each stream is first estimated from 4096
// sampled symbols and stored raw when above 7.85 bits per symbol (the
// sign/mantissa stream of weights), and each block is stored raw or RLE
// when Huffman coding would not save 1/32 of it.
//
// # Errors
//
// Every error Decode returns wraps ErrCorrupt and says which codec and,
// for the float codecs, which stream and block; messages start with
// "codec: ". Decode never panics on malformed input: it checks the layout
// before it allocates, bounds rawLen by MaxRawLen, and turns a panic in a
// third-party decoder into ErrCorrupt. A successful Decode returns exactly
// rawLen bytes, but not necessarily the right ones: raw and Huffman blocks
// carry no checksum, so callers verify the chunk's hash. Encode fails only
// for inputs over MaxRawLen and for unknown IDs.
//
// # Concurrency
//
// An Encoder or a Decoder is used by one goroutine at a time; give each
// worker its own. They keep their buffers between calls (stream scratch,
// Huffman tables, and a zstd encoder or decoder created on first use), so
// steady-state encoding and decoding allocate next to nothing. Results are
// written to the dst the caller passes (a new slice only when dst is too
// small), never to internal buffers, and never alias src.
package codec
