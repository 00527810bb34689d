package codec

import (
	"bytes"
	"errors"
	"testing"
)

// fuzzSeeds are small inputs of each kind the codecs see.
func fuzzSeeds() [][]byte {
	return [][]byte{
		nil,
		{0},
		{1, 2, 3},
		bf16Weights(5000, 1),
		bf16Weights(5001, 2)[1:],
		f32Weights(4002, 3),
		logText(3000, 4),
		randomBytes(2000, 5),
		make([]byte, 3000),
	}
}

// FuzzDecode feeds arbitrary bytes to every decoder: whatever the input,
// Decode returns exactly rawLen bytes or an error wrapping ErrCorrupt, and
// never panics (the recover in Decode is disabled while fuzzing would hide
// nothing: a recovered panic is reported as a failure below).
func FuzzDecode(f *testing.F) {
	enc := NewEncoder(Options{})
	for _, s := range fuzzSeeds() {
		for _, id := range allIDs {
			out, err := enc.EncodeWith(id, nil, s)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(uint8(id), uint32(len(s)), out)
		}
	}
	dec := NewDecoder()
	f.Fuzz(func(t *testing.T, id uint8, rawLen uint32, data []byte) {
		// Keep allocations small enough for the fuzzer to stay fast; the
		// length checks are the same at any size.
		n := int(rawLen % (1 << 20))
		out, err := dec.Decode(nil, data, ID(id%5), n)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			if bytes.Contains([]byte(err.Error()), []byte("panic")) {
				t.Fatalf("decoder panicked: %v", err)
			}
			return
		}
		if len(out) != n {
			t.Fatalf("decoded %d bytes, want %d", len(out), n)
		}
	})
}

// FuzzRoundTrip checks that every codec, and the float codecs at every
// phase, give back exactly what they were given, floats or not.
func FuzzRoundTrip(f *testing.F) {
	for i, s := range fuzzSeeds() {
		f.Add(s, uint8(i))
	}
	enc := NewEncoder(Options{})
	dec := NewDecoder()
	f.Fuzz(func(t *testing.T, src []byte, phase uint8) {
		check := func(what string, id ID, out []byte) {
			t.Helper()
			got, err := dec.Decode(nil, out, id, len(src))
			if err != nil {
				t.Fatalf("%s: decode: %v", what, err)
			}
			if !bytes.Equal(got, src) {
				t.Fatalf("%s: round trip differs", what)
			}
		}
		for _, id := range allIDs {
			out, err := enc.EncodeWith(id, nil, src)
			if err != nil {
				t.Fatalf("%s: encode: %v", id, err)
			}
			check(id.String(), id, out)
		}
		out, id, err := enc.Encode(nil, src)
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		check("Encode as "+id.String(), id, out)
		// Every phase, not only the one the sample picks.
		check("bf16 phase", BF16, enc.fl.encode(nil, src, 2, int(phase%2)))
		check("f32 phase", F32, enc.fl.encode(nil, src, 4, int(phase%4)))
	})
}
