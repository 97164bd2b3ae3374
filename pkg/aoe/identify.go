package aoe

import "encoding/binary"

// identify returns the 512 bytes of IDENTIFY DEVICE for e: an LBA48
// disk with its size in words 60-61 (capped at LBA28's range) and
// 100-103, FLUSH CACHE (EXT) supported, and e's serial and model.
func identify(e *export) []byte {
	var w [256]uint16
	w[0] = 0x0040 // fixed (non-removable) device
	// Legacy CHS geometry, for initiators that still read it.
	heads, secs := uint64(16), uint64(63)
	cyls := min(e.Sectors/(heads*secs), 16383)
	w[1], w[3], w[6] = uint16(cyls), uint16(heads), uint16(secs)
	putString(w[10:20], e.Serial)
	putString(w[23:27], "koala1")
	putString(w[27:47], e.Model)
	w[47] = 0x8000 | 1  // READ/WRITE MULTIPLE: 1 sector
	w[49] = 1<<9 | 1<<8 // LBA and DMA supported
	w[53] = 1<<1 | 1<<2 // words 64-70 and 88 valid
	w[59] = 0x0100 | 1  // multiple sector setting valid
	lba28 := min(e.Sectors, 0x0fffffff)
	w[60], w[61] = uint16(lba28), uint16(lba28>>16)
	w[80] = 1<<4 | 1<<5 | 1<<6 // ATA/ATAPI-4 to -6
	w[82] = 1 << 5             // write cache
	w[83] = 1<<14 | 1<<13 | 1<<12 | 1<<10
	w[84] = 1 << 14
	w[85] = 1 << 5
	w[86] = 1<<13 | 1<<12 | 1<<10 // FLUSH CACHE EXT, FLUSH CACHE, LBA48 enabled
	w[87] = 1 << 14
	for i := range 4 {
		w[100+i] = uint16(e.Sectors >> (16 * i))
	}
	out := make([]byte, SectorSize)
	for i, v := range w {
		binary.LittleEndian.PutUint16(out[2*i:], v)
	}
	return out
}

// putString stores s as ATA does: two characters per word, the first in
// the high byte, padded with spaces.
func putString(w []uint16, s string) {
	b := []byte(s)
	for i := range w {
		hi, lo := byte(' '), byte(' ')
		if 2*i < len(b) {
			hi = b[2*i]
		}
		if 2*i+1 < len(b) {
			lo = b[2*i+1]
		}
		w[i] = uint16(hi)<<8 | uint16(lo)
	}
}

// IdentifyString reads an ATA string (serial: words 10-19, model: words
// 27-46) from IDENTIFY DEVICE data, trimmed of its padding.
func IdentifyString(id []byte, firstWord, words int) string {
	var b []byte
	for i := range words {
		o := 2 * (firstWord + i)
		if o+1 >= len(id) {
			break
		}
		b = append(b, id[o+1], id[o])
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == 0) {
		b = b[:len(b)-1]
	}
	return string(b)
}

// IdentifySectors reads the device size from IDENTIFY DEVICE data: the
// LBA48 count when LBA48 is supported, else the LBA28 one.
func IdentifySectors(id []byte) (sectors uint64, lba48 bool) {
	if len(id) < SectorSize {
		return 0, false
	}
	word := func(i int) uint64 { return uint64(binary.LittleEndian.Uint16(id[2*i:])) }
	if (word(83)|word(86))&(1<<10) != 0 {
		return word(100) | word(101)<<16 | word(102)<<32 | word(103)<<48, true
	}
	return word(60) | word(61)<<16, false
}
