package aoe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
)

// EtherType is AoE's Ethernet type.
const EtherType = 0x88A2

// Version is the protocol version this package speaks.
const Version = 1

// Header flags (the low nibble of the version byte).
const (
	FlagResponse = 0x08
	FlagError    = 0x04
)

// Commands.
const (
	CmdATA         = 0
	CmdQueryConfig = 1
	CmdMACMask     = 2
	CmdReserve     = 3
)

// Errors a response carries (Header.Error with FlagError).
const (
	ErrUnrecognizedCommand = 1
	ErrBadArgument         = 2
	ErrDeviceUnavailable   = 3
	ErrConfigStringPresent = 4
	ErrUnsupportedVersion  = 5
	ErrTargetReserved      = 6
)

// Broadcast addresses: a request to shelf BroadcastShelf or slot
// BroadcastSlot reaches every shelf or slot.
const (
	BroadcastShelf = 0xffff
	BroadcastSlot  = 0xff
)

// Sizes.
const (
	ethHeaderLen = 14
	// HeaderLen is the AoE header after the Ethernet header.
	HeaderLen = 10
	// ATAArgLen is the ATA argument after the AoE header.
	ATAArgLen = 12
	// ConfigArgLen is the Query Config argument before its string.
	ConfigArgLen = 8
	// MaxConfigString is the longest config string.
	MaxConfigString = 1024
	// SectorSize is the ATA sector.
	SectorSize = 512
	// minFrame is the shortest Ethernet frame without its checksum.
	minFrame = 60
)

// ErrShort reports a frame too short for what it claims to hold.
var ErrShort = errors.New("aoe: short frame")

// ErrNotAoE reports a frame of another EtherType.
var ErrNotAoE = errors.New("aoe: not an AoE frame")

// Header is the Ethernet and AoE header of a frame.
type Header struct {
	Dst, Src net.HardwareAddr
	// Version is the protocol version (Version).
	Version uint8
	// Flags are FlagResponse and FlagError.
	Flags uint8
	// Error is the error code of a response with FlagError.
	Error uint8
	Shelf uint16 // major
	Slot  uint8  // minor
	// Command is CmdATA, CmdQueryConfig, CmdMACMask or CmdReserve.
	Command uint8
	Tag     uint32
}

// IsResponse reports whether FlagResponse is set.
func (h Header) IsResponse() bool { return h.Flags&FlagResponse != 0 }

// Frame is a decoded AoE frame: the header, and the command's argument
// and data, still encoded, in Payload.
type Frame struct {
	Header
	Payload []byte
}

// ParseFrame decodes the headers of an Ethernet frame. Payload aliases
// b. Trailing Ethernet padding stays in Payload: the command's argument
// says how much of it counts.
func ParseFrame(b []byte) (Frame, error) {
	if len(b) < ethHeaderLen+HeaderLen {
		return Frame{}, ErrShort
	}
	if binary.BigEndian.Uint16(b[12:14]) != EtherType {
		return Frame{}, ErrNotAoE
	}
	a := b[ethHeaderLen:]
	f := Frame{Header: Header{
		Dst: net.HardwareAddr(b[0:6]), Src: net.HardwareAddr(b[6:12]),
		Version: a[0] >> 4, Flags: a[0] & 0x0f, Error: a[1],
		Shelf: binary.BigEndian.Uint16(a[2:4]), Slot: a[4], Command: a[5],
		Tag: binary.BigEndian.Uint32(a[6:10]),
	}}
	f.Payload = a[HeaderLen:]
	return f, nil
}

// AppendHeader appends h's Ethernet and AoE headers to b.
func AppendHeader(b []byte, h Header) []byte {
	b = append(b, padMAC(h.Dst)...)
	b = append(b, padMAC(h.Src)...)
	b = binary.BigEndian.AppendUint16(b, EtherType)
	b = append(b, h.Version<<4|h.Flags&0x0f, h.Error)
	b = binary.BigEndian.AppendUint16(b, h.Shelf)
	b = append(b, h.Slot, h.Command)
	return binary.BigEndian.AppendUint32(b, h.Tag)
}

// Pad extends a frame to Ethernet's minimum length with zeros.
func Pad(b []byte) []byte {
	for len(b) < minFrame {
		b = append(b, 0)
	}
	return b
}

func padMAC(m net.HardwareAddr) []byte {
	out := make([]byte, 6)
	copy(out, m)
	return out
}

// ATA argument flags.
const (
	ATAFlagExtended = 0x40 // LBA48
	ATAFlagDevice   = 0x10
	ATAFlagAsync    = 0x02
	ATAFlagWrite    = 0x01
)

// ATA commands and status bits the package knows.
const (
	ATARead28      = 0x20
	ATARead48      = 0x24
	ATAWrite28     = 0x30
	ATAWrite48     = 0x34
	ATAFlush28     = 0xE7
	ATAFlush48     = 0xEA
	ATAIdentify    = 0xEC
	ATACheckPower  = 0xE5
	ATAStatusDRDY  = 0x40
	ATAStatusError = 0x01
	ATAErrorAbort  = 0x04
)

// ATA is an ATA command (in a request) or its result (in a response),
// with its data.
type ATA struct {
	Flags uint8
	// ErrFeature is the error register in a response, the feature
	// register in a request.
	ErrFeature uint8
	// SectorCount is the number of sectors the command covers.
	SectorCount uint8
	// CmdStatus is the command in a request, the status in a response.
	CmdStatus uint8
	// LBA is the logical block address: 48 bits with ATAFlagExtended,
	// else 28 (the device bits above them are dropped).
	LBA  uint64
	Data []byte
}

// ParseATA decodes the ATA argument of a frame's payload. Data aliases
// payload and holds everything after the argument (padding included).
func ParseATA(payload []byte) (ATA, error) {
	if len(payload) < ATAArgLen {
		return ATA{}, ErrShort
	}
	a := ATA{Flags: payload[0], ErrFeature: payload[1], SectorCount: payload[2], CmdStatus: payload[3]}
	for i := 5; i >= 0; i-- {
		a.LBA = a.LBA<<8 | uint64(payload[4+i])
	}
	if a.Flags&ATAFlagExtended == 0 {
		a.LBA &= 0x0fffffff
	}
	a.Data = payload[ATAArgLen:]
	return a, nil
}

// AppendATA appends a's argument and data to b. Without
// ATAFlagExtended the LBA's fourth byte carries the LBA mode and device
// bits (0xe0), as ATA's device register does.
func AppendATA(b []byte, a ATA) []byte {
	b = append(b, a.Flags, a.ErrFeature, a.SectorCount, a.CmdStatus)
	lba := a.LBA
	var l [6]byte
	for i := range l {
		l[i] = byte(lba)
		lba >>= 8
	}
	if a.Flags&ATAFlagExtended == 0 {
		l[3] = l[3]&0x0f | 0xe0
		l[4], l[5] = 0, 0
	}
	b = append(b, l[:]...)
	b = append(b, 0, 0)
	return append(b, a.Data...)
}

// Config is a Query Config argument (request or response).
type Config struct {
	// BufferCount is how many outstanding requests the target takes.
	BufferCount uint16
	// Firmware is the target's firmware version.
	Firmware uint16
	// SectorCount is the most sectors one ATA command may carry.
	SectorCount uint8
	// Version is the AoE version (in a response).
	Version uint8
	// Command is the config-string subcommand: ConfigRead, ...
	Command uint8
	String  []byte
}

// Config subcommands.
const (
	ConfigRead       = 0
	ConfigTestExact  = 1
	ConfigTestPrefix = 2
	ConfigSet        = 3
	ConfigForceSet   = 4
)

// ParseConfig decodes a Query Config argument.
func ParseConfig(payload []byte) (Config, error) {
	if len(payload) < ConfigArgLen {
		return Config{}, ErrShort
	}
	c := Config{
		BufferCount: binary.BigEndian.Uint16(payload[0:2]), Firmware: binary.BigEndian.Uint16(payload[2:4]),
		SectorCount: payload[4], Version: payload[5] >> 4, Command: payload[5] & 0x0f,
	}
	n := int(binary.BigEndian.Uint16(payload[6:8]))
	if n > MaxConfigString {
		return Config{}, fmt.Errorf("aoe: config string of %d bytes: %w", n, ErrBadLength)
	}
	if len(payload) < ConfigArgLen+n {
		return Config{}, ErrShort
	}
	c.String = payload[ConfigArgLen : ConfigArgLen+n]
	return c, nil
}

// ErrBadLength reports a length field beyond what the protocol allows.
var ErrBadLength = errors.New("bad length")

// AppendConfig appends c to b.
func AppendConfig(b []byte, c Config) []byte {
	b = binary.BigEndian.AppendUint16(b, c.BufferCount)
	b = binary.BigEndian.AppendUint16(b, c.Firmware)
	b = append(b, c.SectorCount, c.Version<<4|c.Command&0x0f)
	s := c.String
	if len(s) > MaxConfigString {
		s = s[:MaxConfigString]
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// MAC mask list subcommands and directive commands.
const (
	MaskRead = 0
	MaskEdit = 1

	DirectiveNone   = 0
	DirectiveAdd    = 1
	DirectiveDelete = 2

	// MaskErrUnspecified and friends are MaskList.Error values.
	MaskErrUnspecified = 1
	MaskErrBadCommand  = 2
	MaskErrFull        = 3
)

// Directive is one entry of a MAC mask list.
type Directive struct {
	Command uint8
	MAC     net.HardwareAddr
}

// MaskList is a MAC Mask List argument.
type MaskList struct {
	Command    uint8
	Error      uint8
	Directives []Directive
}

// maxDirectives is the most directives a standard frame holds.
const maxDirectives = 255

// ParseMaskList decodes a MAC Mask List argument.
func ParseMaskList(payload []byte) (MaskList, error) {
	if len(payload) < 4 {
		return MaskList{}, ErrShort
	}
	m := MaskList{Command: payload[1], Error: payload[2]}
	n := int(payload[3])
	if len(payload) < 4+8*n {
		return MaskList{}, ErrShort
	}
	for i := range n {
		d := payload[4+8*i:]
		m.Directives = append(m.Directives, Directive{Command: d[1], MAC: net.HardwareAddr(d[2:8])})
	}
	return m, nil
}

// AppendMaskList appends m to b (at most 255 directives).
func AppendMaskList(b []byte, m MaskList) []byte {
	ds := m.Directives
	if len(ds) > maxDirectives {
		ds = ds[:maxDirectives]
	}
	b = append(b, 0, m.Command, m.Error, uint8(len(ds)))
	for _, d := range ds {
		b = append(b, 0, d.Command)
		b = append(b, padMAC(d.MAC)...)
	}
	return b
}
