//go:build amd64 && !purego

#include "textflag.h"

// AVX2 versions of split2Generic and merge2Generic (float.go); see there,
// and docs/codec.md, for the layout. Each 128-bit lane of a Y register
// holds one group of 8 values (16 bytes), and within the group stream byte
// t holds value perm2[t] = 0 4 1 5 2 6 3 7, so one in-lane VPSHUFB does
// the reordering.

// merge2: value j of a group takes its E byte from stream byte inv[j]
// (inv = 0 2 4 6 1 3 5 7) into the high byte of its word, and its S byte
// into both bytes; the E and S streams' 16 bytes are broadcast to both
// lanes, so the high lane's indexes are 8 higher.
DATA merge2ShufE<>+0(SB)/8, $0x0680048002800080
DATA merge2ShufE<>+8(SB)/8, $0x0780058003800180
DATA merge2ShufE<>+16(SB)/8, $0x0e800c800a800880
DATA merge2ShufE<>+24(SB)/8, $0x0f800d800b800980
GLOBL merge2ShufE<>(SB), RODATA|NOPTR, $32

DATA merge2ShufS<>+0(SB)/8, $0x0606040402020000
DATA merge2ShufS<>+8(SB)/8, $0x0707050503030101
DATA merge2ShufS<>+16(SB)/8, $0x0e0e0c0c0a0a0808
DATA merge2ShufS<>+24(SB)/8, $0x0f0f0d0d0b0b0909
GLOBL merge2ShufS<>(SB), RODATA|NOPTR, $32

DATA merge2MaskS<>+0(SB)/8, $0x807f807f807f807f
DATA merge2MaskS<>+8(SB)/8, $0x807f807f807f807f
DATA merge2MaskS<>+16(SB)/8, $0x807f807f807f807f
DATA merge2MaskS<>+24(SB)/8, $0x807f807f807f807f
GLOBL merge2MaskS<>(SB), RODATA|NOPTR, $32

// split2: bytes 0-7 of a lane take E (the high byte of the word E<<8|S)
// of values perm2[t], bytes 8-15 their S (the low byte).
DATA split2Shuf<>+0(SB)/8, $0x0f070d050b030901
DATA split2Shuf<>+8(SB)/8, $0x0e060c040a020800
DATA split2Shuf<>+16(SB)/8, $0x0f070d050b030901
DATA split2Shuf<>+24(SB)/8, $0x0e060c040a020800
GLOBL split2Shuf<>(SB), RODATA|NOPTR, $32

DATA split2MaskHi<>+0(SB)/8, $0xff80ff80ff80ff80
DATA split2MaskHi<>+8(SB)/8, $0xff80ff80ff80ff80
DATA split2MaskHi<>+16(SB)/8, $0xff80ff80ff80ff80
DATA split2MaskHi<>+24(SB)/8, $0xff80ff80ff80ff80
GLOBL split2MaskHi<>(SB), RODATA|NOPTR, $32

DATA split2MaskSign<>+0(SB)/8, $0x0080008000800080
DATA split2MaskSign<>+8(SB)/8, $0x0080008000800080
DATA split2MaskSign<>+16(SB)/8, $0x0080008000800080
DATA split2MaskSign<>+24(SB)/8, $0x0080008000800080
GLOBL split2MaskSign<>(SB), RODATA|NOPTR, $32

// MERGE16 merges the 16 symbols at off(SI) and off(DX) into the 32 bytes at
// off2(DI), off2 = 2*off: value = E<<7 | (S&0x80)<<8 | S&0x7f in each 16-bit word.
#define MERGE16(off, off2, ye, ys) \
	VBROADCASTI128 off(SI), ye; \
	VBROADCASTI128 off(DX), ys; \
	VPSHUFB        Y13, ye, ye; \
	VPSHUFB        Y14, ys, ys; \
	VPSRLW         $1, ye, ye; \
	VPAND          Y15, ys, ys; \
	VPOR           ys, ye, ye; \
	VMOVDQU        ye, off2(DI)

// func merge2AVX2(dst, e, s *byte, n int)
TEXT ·merge2AVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ e+8(FP), SI
	MOVQ s+16(FP), DX
	MOVQ n+24(FP), CX
	VMOVDQU merge2ShufE<>(SB), Y13
	VMOVDQU merge2ShufS<>(SB), Y14
	VMOVDQU merge2MaskS<>(SB), Y15
	CMPQ CX, $32
	JB   merge16

merge32:
	MERGE16(0, 0, Y0, Y1)
	MERGE16(16, 32, Y2, Y3)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $64, DI
	SUBQ $32, CX
	CMPQ CX, $32
	JAE  merge32

merge16:
	CMPQ CX, $16
	JB   mergedone
	MERGE16(0, 0, Y0, Y1)

mergedone:
	VZEROUPPER
	RET

// SPLIT16 splits the 16 values at off2(SI) (off2 = 2*off) into the 16 bytes at off(DI)
// (E) and off(DX) (S). With v = S7<<15 | E<<7 | M, v + (v&0xff80) is
// E<<8 | M (the sign carries out), and (v>>8)&0x80 is S7<<7.
#define SPLIT16(off, off2, yv, yt, xt) \
	VMOVDQU      off2(SI), yv; \
	VPAND        Y13, yv, yt; \
	VPADDW       yt, yv, yt; \
	VPSRLW       $8, yv, yv; \
	VPAND        Y14, yv, yv; \
	VPOR         yv, yt, yt; \
	VPSHUFB      Y15, yt, yt; \
	VPERMQ       $0xd8, yt, yt; \
	VMOVDQU      xt, off(DI); \
	VEXTRACTI128 $1, yt, off(DX)

// func split2AVX2(e, s, vals *byte, n int)
TEXT ·split2AVX2(SB), NOSPLIT, $0-32
	MOVQ e+0(FP), DI
	MOVQ s+8(FP), DX
	MOVQ vals+16(FP), SI
	MOVQ n+24(FP), CX
	VMOVDQU split2MaskHi<>(SB), Y13
	VMOVDQU split2MaskSign<>(SB), Y14
	VMOVDQU split2Shuf<>(SB), Y15
	CMPQ CX, $32
	JB   split16

split32:
	SPLIT16(0, 0, Y0, Y1, X1)
	SPLIT16(16, 32, Y2, Y3, X3)
	ADDQ $64, SI
	ADDQ $32, DI
	ADDQ $32, DX
	SUBQ $32, CX
	CMPQ CX, $32
	JAE  split32

split16:
	CMPQ CX, $16
	JB   splitdone
	SPLIT16(0, 0, Y0, Y1, X1)

splitdone:
	VZEROUPPER
	RET
