// Chunk names: crypto/sha256 against BLAKE3 (lukechampine.com/blake3, the
// implementation index.Hash uses), one goroutine, 1 MiB buffers (the
// chunker's average), on this project's build machine (2-core Intel Xeon
// with SHA-NI and AVX-512; go1.26.8):
//
//	sha256.Sum256            1.44 GB/s  (SHA-NI)
//	blake3.Sum256            3.6-3.9 GB/s  (AVX-512, 16 chunks at a time)
//
// github.com/zeebo/blake3, used before, gave 2.8-3.0 GB/s here (AVX2 only).
// The chunk hash is computed once per chunk on the snapshot path and once
// per chunk read back (every read is verified).

package codec

import (
	"crypto/sha256"
	"testing"

	"lukechampine.com/blake3"
)

const hashBenchLen = 1 << 20

func BenchmarkHash(b *testing.B) {
	buf := randomBytes(hashBenchLen, 99)
	b.Run("sha256", func(b *testing.B) {
		b.SetBytes(hashBenchLen)
		var sum [32]byte
		for b.Loop() {
			sum = sha256.Sum256(buf)
		}
		_ = sum
	})
	b.Run("blake3", func(b *testing.B) {
		b.SetBytes(hashBenchLen)
		var sum [32]byte
		for b.Loop() {
			sum = blake3.Sum256(buf)
		}
		_ = sum
	})
	// The streaming form, as a caller hashing while it reads would use it.
	b.Run("blake3-hasher", func(b *testing.B) {
		b.SetBytes(hashBenchLen)
		h := blake3.New(32, nil)
		var sum []byte
		for b.Loop() {
			h.Reset()
			h.Write(buf)
			sum = h.Sum(sum[:0])
		}
	})
	b.Run("sha256-hasher", func(b *testing.B) {
		b.SetBytes(hashBenchLen)
		h := sha256.New()
		var sum []byte
		for b.Loop() {
			h.Reset()
			h.Write(buf)
			sum = h.Sum(sum[:0])
		}
	})
}
