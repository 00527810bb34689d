package codec

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/huff0"
)

// huffBlocks returns huff0 blocks the encoder writes, with their lengths.
func huffBlocks(t *testing.T) (blocks [][]byte, lens []int, raws [][]byte) {
	r := rand.New(rand.NewPCG(7, 8))
	var h huffEncoder
	for _, n := range []int{64, 65, 66, 67, 100, 1000, 4099, blockLen} {
		e := make([]byte, n)
		split2(e, make([]byte, n), bf16Weights(2*n, uint64(n)))
		skew := make([]byte, n) // one dominant symbol: codes up to 11 bits
		for i := range skew {
			if r.IntN(50) == 0 {
				skew[i] = byte(r.IntN(256))
			}
		}
		// 64 symbols, half of them one: runs of eight 7-bit codes take
		// pack1Pairs' slow path.
		long := make([]byte, n)
		for i := range long {
			if r.IntN(2) == 0 {
				long[i] = byte(1 + r.IntN(63))
			}
		}
		for _, blk := range [][]byte{e, logText(n, uint64(n)), skew, long} {
			out, err := h.encode(nil, blk)
			if err != nil {
				continue
			}
			blocks, lens, raws = append(blocks, out), append(lens, n), append(raws, blk)
		}
	}
	if len(blocks) < 8 {
		t.Fatalf("only %d Huffman blocks", len(blocks))
	}
	return blocks, lens, raws
}

// TestHuffDecode checks the multi-symbol decoder against the input and
// against huff0's own Decompress4X.
func TestHuffDecode(t *testing.T) {
	blocks, lens, raws := huffBlocks(t)
	var d huffDecoder
	var s huff0.Scratch
	for i, blk := range blocks {
		out := make([]byte, lens[i])
		if err := d.decode4(out, blk); err != nil {
			t.Fatalf("block %d (%d symbols): %v", i, lens[i], err)
		}
		if !bytes.Equal(out, raws[i]) {
			t.Fatalf("block %d (%d symbols) differs", i, lens[i])
		}
		// The multi-symbol decoder whatever the table.
		clear(out)
		used, err := d.tab.readTable(blk)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.decodeMulti(out, blk[used:]); err != nil {
			t.Fatalf("block %d (%d symbols), multi: %v", i, lens[i], err)
		}
		if !bytes.Equal(out, raws[i]) {
			t.Fatalf("block %d (%d symbols) differs, multi", i, lens[i])
		}
		sc, rest, err := huff0.ReadTable(blk, &s)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := sc.Decoder().Decompress4X(make([]byte, 0, lens[i]), rest)
		if err != nil || !bytes.Equal(ref, raws[i]) {
			t.Fatalf("block %d: huff0 disagrees: %v", i, err)
		}
	}
}

// TestHuffDecodeCorrupt damages valid blocks and checks that decode4
// neither panics nor reads or writes out of bounds (no recover here).
func TestHuffDecodeCorrupt(t *testing.T) {
	blocks, lens, _ := huffBlocks(t)
	r := rand.New(rand.NewPCG(1, 2))
	var d huffDecoder
	for iter := range 20000 {
		i := r.IntN(len(blocks))
		blk := bytes.Clone(blocks[i])
		switch iter % 3 {
		case 0:
			for range 1 + r.IntN(4) {
				blk[r.IntN(len(blk))] ^= byte(1 + r.IntN(255))
			}
		case 1:
			blk = blk[:r.IntN(len(blk))]
		case 2:
			blk[r.IntN(min(len(blk), 40))] = byte(r.IntN(256))
		}
		n := lens[i]
		if r.IntN(4) == 0 {
			n = r.IntN(2 * n)
		}
		_ = d.decode4(make([]byte, n), blk)
		if used, err := d.tab.readTable(blk); err == nil {
			_ = d.decodeMulti(make([]byte, n), blk[used:])
		}
	}
}
