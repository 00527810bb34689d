//go:build amd64 && !purego

#include "textflag.h"

// decodeFastBMI2 is decodeFastGeneric's loop (huffdec.go) with BMI1/BMI2,
// five lookups a step rather than four. A stream's position is the offset
// of the 8-byte word that holds bit left-1 at its top end (off) and how
// many of its top bits are taken (0-7). Per stream and step it loads that
// word, sets its lowest bit as a mark (five lookups read at most the top
// 55 of the 57 or more not taken), shifts out the bits taken, and per
// lookup stores the entry's symbols, shifts the word by the bits the
// entry takes (SHLX uses the low 6 bits of e>>32) and advances the output
// by the count (e>>56). After the lookups the mark's position, TZCNT,
// tells how many bits of the word are taken.
//
// Registers: SI the table, DI the fastState, R15 53, R8-R11 the bit
// words, R12-R14 and DX the output pointers, AX BX CX scratch. The loop
// runs while every off is at least 0 (the word is in the stream) and
// every output pointer is at most its lim (the 23 bytes a step may write
// are in its dst).
//
// func decodeFastBMI2(multi *[2048]uint64, s *fastState)
TEXT ·decodeFastBMI2(SB), NOSPLIT, $0-16
	MOVQ multi+0(FP), SI
	MOVQ s+8(FP), DI
	MOVQ $53, R15
	MOVQ 32(DI), R12
	ADDQ R12, 96(DI)
	MOVQ 40(DI), R13
	ADDQ R13, 104(DI)
	MOVQ 48(DI), R14
	ADDQ R14, 112(DI)
	MOVQ 56(DI), DX
	ADDQ DX, 120(DI)

loop:
	CMPQ 64(DI), $0
	JLT done
	CMPQ 72(DI), $0
	JLT done
	CMPQ 80(DI), $0
	JLT done
	CMPQ 88(DI), $0
	JLT done
	CMPQ R12, 96(DI)
	JGT done
	CMPQ R13, 104(DI)
	JGT done
	CMPQ R14, 112(DI)
	JGT done
	CMPQ DX, 120(DI)
	JGT done

	// stream 0: the word at off, marked, less the bits taken
	MOVQ 64(DI), BX
	MOVQ 0(DI), CX
	MOVQ (CX)(BX*1), R8
	ORQ $1, R8
	MOVQ 160(DI), BX
	SHLXQ BX, R8, R8

	// stream 1: the word at off, marked, less the bits taken
	MOVQ 72(DI), BX
	MOVQ 8(DI), CX
	MOVQ (CX)(BX*1), R9
	ORQ $1, R9
	MOVQ 168(DI), BX
	SHLXQ BX, R9, R9

	// stream 2: the word at off, marked, less the bits taken
	MOVQ 80(DI), BX
	MOVQ 16(DI), CX
	MOVQ (CX)(BX*1), R10
	ORQ $1, R10
	MOVQ 176(DI), BX
	SHLXQ BX, R10, R10

	// stream 3: the word at off, marked, less the bits taken
	MOVQ 88(DI), BX
	MOVQ 24(DI), CX
	MOVQ (CX)(BX*1), R11
	ORQ $1, R11
	MOVQ 184(DI), BX
	SHLXQ BX, R11, R11

	// lookup 1
	SHRXQ R15, R8, AX
	MOVQ (SI)(AX*8), AX
	MOVL AX, (R12)
	SHRQ $32, AX
	SHLXQ AX, R8, R8
	SHRQ $24, AX
	ADDQ AX, R12
	SHRXQ R15, R9, BX
	MOVQ (SI)(BX*8), BX
	MOVL BX, (R13)
	SHRQ $32, BX
	SHLXQ BX, R9, R9
	SHRQ $24, BX
	ADDQ BX, R13
	SHRXQ R15, R10, CX
	MOVQ (SI)(CX*8), CX
	MOVL CX, (R14)
	SHRQ $32, CX
	SHLXQ CX, R10, R10
	SHRQ $24, CX
	ADDQ CX, R14
	SHRXQ R15, R11, AX
	MOVQ (SI)(AX*8), AX
	MOVL AX, (DX)
	SHRQ $32, AX
	SHLXQ AX, R11, R11
	SHRQ $24, AX
	ADDQ AX, DX

	// lookup 2
	SHRXQ R15, R8, AX
	MOVQ (SI)(AX*8), AX
	MOVL AX, (R12)
	SHRQ $32, AX
	SHLXQ AX, R8, R8
	SHRQ $24, AX
	ADDQ AX, R12
	SHRXQ R15, R9, BX
	MOVQ (SI)(BX*8), BX
	MOVL BX, (R13)
	SHRQ $32, BX
	SHLXQ BX, R9, R9
	SHRQ $24, BX
	ADDQ BX, R13
	SHRXQ R15, R10, CX
	MOVQ (SI)(CX*8), CX
	MOVL CX, (R14)
	SHRQ $32, CX
	SHLXQ CX, R10, R10
	SHRQ $24, CX
	ADDQ CX, R14
	SHRXQ R15, R11, AX
	MOVQ (SI)(AX*8), AX
	MOVL AX, (DX)
	SHRQ $32, AX
	SHLXQ AX, R11, R11
	SHRQ $24, AX
	ADDQ AX, DX

	// lookup 3
	SHRXQ R15, R8, AX
	MOVQ (SI)(AX*8), AX
	MOVL AX, (R12)
	SHRQ $32, AX
	SHLXQ AX, R8, R8
	SHRQ $24, AX
	ADDQ AX, R12
	SHRXQ R15, R9, BX
	MOVQ (SI)(BX*8), BX
	MOVL BX, (R13)
	SHRQ $32, BX
	SHLXQ BX, R9, R9
	SHRQ $24, BX
	ADDQ BX, R13
	SHRXQ R15, R10, CX
	MOVQ (SI)(CX*8), CX
	MOVL CX, (R14)
	SHRQ $32, CX
	SHLXQ CX, R10, R10
	SHRQ $24, CX
	ADDQ CX, R14
	SHRXQ R15, R11, AX
	MOVQ (SI)(AX*8), AX
	MOVL AX, (DX)
	SHRQ $32, AX
	SHLXQ AX, R11, R11
	SHRQ $24, AX
	ADDQ AX, DX

	// lookup 4
	SHRXQ R15, R8, AX
	MOVQ (SI)(AX*8), AX
	MOVL AX, (R12)
	SHRQ $32, AX
	SHLXQ AX, R8, R8
	SHRQ $24, AX
	ADDQ AX, R12
	SHRXQ R15, R9, BX
	MOVQ (SI)(BX*8), BX
	MOVL BX, (R13)
	SHRQ $32, BX
	SHLXQ BX, R9, R9
	SHRQ $24, BX
	ADDQ BX, R13
	SHRXQ R15, R10, CX
	MOVQ (SI)(CX*8), CX
	MOVL CX, (R14)
	SHRQ $32, CX
	SHLXQ CX, R10, R10
	SHRQ $24, CX
	ADDQ CX, R14
	SHRXQ R15, R11, AX
	MOVQ (SI)(AX*8), AX
	MOVL AX, (DX)
	SHRQ $32, AX
	SHLXQ AX, R11, R11
	SHRQ $24, AX
	ADDQ AX, DX

	// lookup 5
	SHRXQ R15, R8, AX
	MOVQ (SI)(AX*8), AX
	MOVL AX, (R12)
	SHRQ $32, AX
	SHLXQ AX, R8, R8
	SHRQ $24, AX
	ADDQ AX, R12
	SHRXQ R15, R9, BX
	MOVQ (SI)(BX*8), BX
	MOVL BX, (R13)
	SHRQ $32, BX
	SHLXQ BX, R9, R9
	SHRQ $24, BX
	ADDQ BX, R13
	SHRXQ R15, R10, CX
	MOVQ (SI)(CX*8), CX
	MOVL CX, (R14)
	SHRQ $32, CX
	SHLXQ CX, R10, R10
	SHRQ $24, CX
	ADDQ CX, R14
	SHRXQ R15, R11, AX
	MOVQ (SI)(AX*8), AX
	MOVL AX, (DX)
	SHRQ $32, AX
	SHLXQ AX, R11, R11
	SHRQ $24, AX
	ADDQ AX, DX

	// The bits below the mark, t, are the bits taken from the word at
	// off: off -= t/8, taken = t%8.
	TZCNTQ R8, AX
	MOVQ AX, BX
	SHRQ $3, BX
	SUBQ BX, 64(DI)
	ANDQ $7, AX
	MOVQ AX, 160(DI)
	TZCNTQ R9, AX
	MOVQ AX, BX
	SHRQ $3, BX
	SUBQ BX, 72(DI)
	ANDQ $7, AX
	MOVQ AX, 168(DI)
	TZCNTQ R10, AX
	MOVQ AX, BX
	SHRQ $3, BX
	SUBQ BX, 80(DI)
	ANDQ $7, AX
	MOVQ AX, 176(DI)
	TZCNTQ R11, AX
	MOVQ AX, BX
	SHRQ $3, BX
	SUBQ BX, 88(DI)
	ANDQ $7, AX
	MOVQ AX, 184(DI)
	JMP loop

done:
	SUBQ 32(DI), R12
	MOVQ R12, 128(DI)
	SUBQ 40(DI), R13
	MOVQ R13, 136(DI)
	SUBQ 48(DI), R14
	MOVQ R14, 144(DI)
	SUBQ 56(DI), DX
	MOVQ DX, 152(DI)
	RET
