package index

import (
	"crypto/rand"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// The sealing choice (crypt.go): AES-256-GCM with a subkey per object
// against ChaCha20-Poly1305 (and XChaCha20-Poly1305, the other choice
// with a nonce long enough to be random) on a 1 MiB chunk, and on a 4 KiB
// tree. Run: go test ./index -run - -bench Seal
func BenchmarkSealAESGCM(b *testing.B) {
	k := testKeys(b)
	for _, size := range []int{4 << 10, 1 << 20} {
		plain := make([]byte, size)
		rand.Read(plain)
		dst := make([]byte, 0, size+SealOverhead)
		b.Run(sizeName(size), func(b *testing.B) {
			b.SetBytes(int64(size))
			for i := 0; i < b.N; i++ {
				dst, _ = k.Seal(dst[:0], plain, nil)
			}
		})
	}
}

func BenchmarkOpenAESGCM(b *testing.B) {
	k := testKeys(b)
	plain := make([]byte, 1<<20)
	rand.Read(plain)
	sealed, _ := k.Seal(nil, plain, nil)
	dst := make([]byte, 0, len(plain))
	b.SetBytes(int64(len(plain)))
	for i := 0; i < b.N; i++ {
		if _, err := k.Open(dst[:0], sealed, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSealChaCha20Poly1305(b *testing.B) {
	key := make([]byte, 32)
	rand.Read(key)
	for _, x := range []bool{false, true} {
		var a interface {
			Seal(dst, nonce, plaintext, additionalData []byte) []byte
			NonceSize() int
		}
		name := "chacha"
		if x {
			a, _ = chacha20poly1305.NewX(key)
			name = "xchacha"
		} else {
			a, _ = chacha20poly1305.New(key)
		}
		for _, size := range []int{4 << 10, 1 << 20} {
			plain := make([]byte, size)
			rand.Read(plain)
			nonce := make([]byte, a.NonceSize())
			dst := make([]byte, 0, size+64)
			b.Run(name+"/"+sizeName(size), func(b *testing.B) {
				b.SetBytes(int64(size))
				for i := 0; i < b.N; i++ {
					rand.Read(nonce)
					dst = a.Seal(dst[:0], nonce, plain, nil)
				}
			})
		}
	}
}

// The keyed id against format 1's plain BLAKE3, on a 1 MiB chunk.
func BenchmarkBlobIDKeyed(b *testing.B) {
	k := testKeys(b)
	plain := make([]byte, 1<<20)
	rand.Read(plain)
	b.Run("keyed", func(b *testing.B) {
		b.SetBytes(int64(len(plain)))
		for i := 0; i < b.N; i++ {
			k.BlobID(plain)
		}
	})
	b.Run("plain", func(b *testing.B) {
		b.SetBytes(int64(len(plain)))
		for i := 0; i < b.N; i++ {
			Hash(plain)
		}
	})
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return "1MiB"
	}
	return "4KiB"
}
