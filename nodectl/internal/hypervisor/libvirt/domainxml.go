package libvirt

import (
	"crypto/sha1"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/koala-cloud/koala/nodectl/internal/hypervisor"
)

// Namespace is the XML namespace of the metadata element the driver
// records with each domain; the element's owner child says which node the
// domain belongs to.
const Namespace = "https://koala-cloud.dev/xmlns/instance/1"

// Domain types DomainXML accepts.
const (
	TypeKVM  = "kvm"
	TypeQEMU = "qemu"
)

var (
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	targetRE = regexp.MustCompile(`^vd[a-z]{1,2}$`)
)

// uuidNamespace seeds the name-based domain UUIDs: the SHA-1 of
// Namespace under the RFC 4122 URL namespace.
var uuidNamespace = nameUUID([16]byte{
	0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1,
	0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8,
}, Namespace)

// DomainXML renders d as libvirt domain XML of the given type ("kvm" or
// "qemu"). It is pure: the same input gives the same text, and the UUID
// is derived from the name so that redefining a domain keeps it. The
// owner is taken from d.Metadata.Owner, which must be set.
func DomainXML(d hypervisor.Domain, domainType string) (string, error) {
	if err := validate(d, domainType); err != nil {
		return "", fmt.Errorf("domain xml %q: %w", d.Name, err)
	}
	x := xmlDomain{
		Type: domainType,
		Name: d.Name,
		UUID: formatUUID(nameUUID(uuidNamespace, d.Name)),
		Metadata: xmlMetadata{Instance: xmlInstance{
			XMLNS:       Namespace,
			Owner:       d.Metadata.Owner,
			InstanceID:  d.Metadata.InstanceID,
			AccountID:   d.Metadata.AccountID,
			Reservation: d.Metadata.Reservation,
			ImageID:     d.Metadata.ImageID,
			Type:        d.Metadata.Type,
		}},
		Memory: xmlMemory{Unit: "MiB", Value: d.MemoryMiB},
		VCPU:   d.Cores,
		OS: xmlOS{
			Type:    xmlOSType{Arch: "x86_64", Machine: "pc", Value: "hvm"},
			Kernel:  d.Kernel,
			Initrd:  d.Ramdisk,
			Cmdline: d.Cmdline,
			SMBIOS:  xmlSMBIOS{Mode: "sysinfo"},
		},
		SysInfo: xmlSysInfo{Type: "smbios", Entries: []xmlEntry{
			{Name: "manufacturer", Value: "Koala"},
			{Name: "product", Value: "Koala Cloud"},
		}},
		OnPoweroff: "destroy",
		OnReboot:   "restart",
		OnCrash:    "destroy",
		Devices: xmlDevices{
			MemBalloon: xmlMemBalloon{Model: "none"},
		},
	}
	if d.Serial != "" {
		x.SysInfo.Entries = append([]xmlEntry{{Name: "serial", Value: d.Serial}}, x.SysInfo.Entries...)
	}
	if domainType == TypeKVM {
		x.CPU = &xmlCPU{Mode: "host-passthrough"}
	}
	for i, disk := range d.Disks {
		x.Devices.Disks = append(x.Devices.Disks, xmlDisk{
			Type:   "file",
			Device: "disk",
			// writeback, not none: it honours the guest's flushes just
			// the same and works on file systems without O_DIRECT.
			Driver: xmlDiskDriver{Name: "qemu", Type: disk.Format, Cache: "writeback"},
			Source: xmlFile{File: disk.Path},
			Target: xmlDiskTarget{Dev: diskTarget(disk, i), Bus: "virtio"},
		})
	}
	for _, nic := range d.NICs {
		iface := xmlInterface{
			Type:   "bridge",
			Source: xmlBridge{Bridge: nic.Bridge},
			Model:  xmlModel{Type: "virtio"},
		}
		if nic.MAC != "" {
			iface.MAC = &xmlMAC{Address: nic.MAC}
		}
		x.Devices.Interfaces = append(x.Devices.Interfaces, iface)
	}
	if d.ConsolePath != "" {
		src := &xmlPath{Path: d.ConsolePath, Append: "on"}
		x.Devices.Serial = xmlChar{Type: "file", Source: src, Target: xmlCharTarget{Port: "0"}}
		x.Devices.Console = xmlChar{Type: "file", Source: src, Target: xmlCharTarget{Type: "serial", Port: "0"}}
	} else {
		x.Devices.Serial = xmlChar{Type: "pty", Target: xmlCharTarget{Port: "0"}}
		x.Devices.Console = xmlChar{Type: "pty", Target: xmlCharTarget{Type: "serial", Port: "0"}}
	}
	out, err := xml.MarshalIndent(x, "", "  ")
	if err != nil {
		return "", fmt.Errorf("domain xml %q: %w", d.Name, err)
	}
	return string(out) + "\n", nil
}

func validate(d hypervisor.Domain, domainType string) error {
	var errs []error
	if domainType != TypeKVM && domainType != TypeQEMU {
		errs = append(errs, fmt.Errorf("domain type %q is neither kvm nor qemu", domainType))
	}
	if !nameRE.MatchString(d.Name) {
		errs = append(errs, errors.New("name must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"))
	}
	if d.Cores <= 0 {
		errs = append(errs, fmt.Errorf("cores %d must be positive", d.Cores))
	}
	if d.MemoryMiB <= 0 {
		errs = append(errs, fmt.Errorf("memory %d MiB must be positive", d.MemoryMiB))
	}
	if d.Kernel == "" {
		errs = append(errs, errors.New("kernel is required"))
	}
	if d.Metadata.Owner == "" {
		errs = append(errs, errors.New("owner is required"))
	}
	seen := map[string]bool{}
	for i, disk := range d.Disks {
		if disk.Path == "" {
			errs = append(errs, fmt.Errorf("disk %d: path is required", i))
		}
		if disk.Format != "qcow2" && disk.Format != "raw" {
			errs = append(errs, fmt.Errorf("disk %d: format %q is neither qcow2 nor raw", i, disk.Format))
		}
		t := diskTarget(disk, i)
		if !targetRE.MatchString(t) {
			errs = append(errs, fmt.Errorf("disk %d: target %q is not a virtio disk name (vda, vdb, ...)", i, t))
		}
		if seen[t] {
			errs = append(errs, fmt.Errorf("disk %d: target %q is used twice", i, t))
		}
		seen[t] = true
	}
	for i, nic := range d.NICs {
		if nic.Bridge == "" {
			errs = append(errs, fmt.Errorf("nic %d: bridge is required", i))
		}
		if nic.MAC != "" {
			if hw, err := net.ParseMAC(nic.MAC); err != nil || len(hw) != 6 {
				errs = append(errs, fmt.Errorf("nic %d: mac %q is not an Ethernet address", i, nic.MAC))
			}
		}
	}
	return errors.Join(errs...)
}

// diskTarget is the guest device of the i-th disk: its Target, else vda,
// vdb, ... by position.
func diskTarget(disk hypervisor.Disk, i int) string {
	if disk.Target != "" {
		return disk.Target
	}
	if i < 26 {
		return "vd" + string(rune('a'+i))
	}
	return "vd" + strconv.Itoa(i) // rejected by validate
}

// nameUUID is a name-based (version 5, SHA-1) UUID of name in namespace
// ns, as in RFC 4122 section 4.3.
func nameUUID(ns [16]byte, name string) [16]byte {
	h := sha1.New()
	h.Write(ns[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return u
}

func formatUUID(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// The XML shapes; element order follows libvirt's own dumpxml.

type xmlDomain struct {
	XMLName    xml.Name    `xml:"domain"`
	Type       string      `xml:"type,attr"`
	Name       string      `xml:"name"`
	UUID       string      `xml:"uuid"`
	Metadata   xmlMetadata `xml:"metadata"`
	Memory     xmlMemory   `xml:"memory"`
	VCPU       int         `xml:"vcpu"`
	SysInfo    xmlSysInfo  `xml:"sysinfo"`
	OS         xmlOS       `xml:"os"`
	Features   xmlFeatures `xml:"features"`
	CPU        *xmlCPU     `xml:"cpu,omitempty"`
	OnPoweroff string      `xml:"on_poweroff"`
	OnReboot   string      `xml:"on_reboot"`
	OnCrash    string      `xml:"on_crash"`
	Devices    xmlDevices  `xml:"devices"`
}

type xmlMetadata struct {
	Instance xmlInstance `xml:"koala:instance"`
}

// xmlInstance is written with the koala: prefix. encoding/xml cannot
// emit a prefixed namespace, so the prefix is spelt out in the names;
// parseOwner reads the element namespace-aware.
type xmlInstance struct {
	XMLNS       string `xml:"xmlns:koala,attr"`
	Owner       string `xml:"koala:owner"`
	InstanceID  string `xml:"koala:instance-id,omitempty"`
	AccountID   string `xml:"koala:account-id,omitempty"`
	Reservation string `xml:"koala:reservation-id,omitempty"`
	ImageID     string `xml:"koala:image-id,omitempty"`
	Type        string `xml:"koala:instance-type,omitempty"`
}

type xmlMemory struct {
	Unit  string `xml:"unit,attr"`
	Value int    `xml:",chardata"`
}

type xmlSysInfo struct {
	Type    string     `xml:"type,attr"`
	Entries []xmlEntry `xml:"system>entry"`
}

type xmlEntry struct {
	Name  string `xml:"name,attr"`
	Value string `xml:",chardata"`
}

type xmlOS struct {
	Type    xmlOSType `xml:"type"`
	Kernel  string    `xml:"kernel"`
	Initrd  string    `xml:"initrd,omitempty"`
	Cmdline string    `xml:"cmdline,omitempty"`
	SMBIOS  xmlSMBIOS `xml:"smbios"`
}

type xmlOSType struct {
	Arch    string `xml:"arch,attr"`
	Machine string `xml:"machine,attr"`
	Value   string `xml:",chardata"`
}

type xmlSMBIOS struct {
	Mode string `xml:"mode,attr"`
}

type xmlFeatures struct {
	ACPI struct{} `xml:"acpi"`
}

type xmlCPU struct {
	Mode string `xml:"mode,attr"`
}

type xmlDevices struct {
	Disks      []xmlDisk      `xml:"disk"`
	Interfaces []xmlInterface `xml:"interface"`
	Serial     xmlChar        `xml:"serial"`
	Console    xmlChar        `xml:"console"`
	MemBalloon xmlMemBalloon  `xml:"memballoon"`
}

type xmlDisk struct {
	Type   string        `xml:"type,attr"`
	Device string        `xml:"device,attr"`
	Driver xmlDiskDriver `xml:"driver"`
	Source xmlFile       `xml:"source"`
	Target xmlDiskTarget `xml:"target"`
}

type xmlDiskDriver struct {
	Name  string `xml:"name,attr"`
	Type  string `xml:"type,attr"`
	Cache string `xml:"cache,attr"`
}

type xmlFile struct {
	File string `xml:"file,attr"`
}

type xmlPath struct {
	Path   string `xml:"path,attr"`
	Append string `xml:"append,attr"`
}

type xmlDiskTarget struct {
	Dev string `xml:"dev,attr"`
	Bus string `xml:"bus,attr"`
}

type xmlInterface struct {
	Type   string    `xml:"type,attr"`
	MAC    *xmlMAC   `xml:"mac,omitempty"`
	Source xmlBridge `xml:"source"`
	Model  xmlModel  `xml:"model"`
}

type xmlMAC struct {
	Address string `xml:"address,attr"`
}

type xmlBridge struct {
	Bridge string `xml:"bridge,attr"`
}

type xmlModel struct {
	Type string `xml:"type,attr"`
}

type xmlMemBalloon struct {
	Model string `xml:"model,attr"`
}

type xmlChar struct {
	Type   string        `xml:"type,attr"`
	Source *xmlPath      `xml:"source,omitempty"`
	Target xmlCharTarget `xml:"target"`
}

type xmlCharTarget struct {
	Type string `xml:"type,attr,omitempty"`
	Port string `xml:"port,attr"`
}

// owned is the metadata element as GetMetadata returns it. libvirt drops
// the namespace (the caller named it), so any is accepted.
type owned struct {
	XMLName xml.Name `xml:"instance"`
	Owner   string   `xml:"owner"`
}

// parseOwner returns the owner recorded in our metadata element.
func parseOwner(metadata string) (string, error) {
	var o owned
	if err := xml.Unmarshal([]byte(metadata), &o); err != nil {
		return "", fmt.Errorf("parse metadata: %w", err)
	}
	return o.Owner, nil
}

// liveIfaces is the part of an active domain's XML that names the host
// devices of its NICs.
type liveIfaces struct {
	Interfaces []struct {
		Target struct {
			Dev string `xml:"dev,attr"`
		} `xml:"target"`
	} `xml:"devices>interface"`
}

// parseIfaces returns the host devices (<interface><target dev=.../>) of
// the NICs of a domain's live XML, in the domain's order; a NIC without
// one is left out.
func parseIfaces(domainXML string) ([]string, error) {
	var d liveIfaces
	if err := xml.Unmarshal([]byte(domainXML), &d); err != nil {
		return nil, fmt.Errorf("domain xml: %w", err)
	}
	var out []string
	for _, i := range d.Interfaces {
		if i.Target.Dev != "" {
			out = append(out, i.Target.Dev)
		}
	}
	return out, nil
}

// netDiskXML is the <disk> element that hot-plugs d.
type netDiskXML struct {
	XMLName xml.Name `xml:"disk"`
	Type    string   `xml:"type,attr"`
	Device  string   `xml:"device,attr"`
	Driver  struct {
		Name  string `xml:"name,attr"`
		Type  string `xml:"type,attr"`
		Cache string `xml:"cache,attr"`
	} `xml:"driver"`
	Source struct {
		Dev      string `xml:"dev,attr,omitempty"`
		Protocol string `xml:"protocol,attr,omitempty"`
		Name     string `xml:"name,attr,omitempty"`
		Host     *struct {
			Transport string `xml:"transport,attr"`
			Socket    string `xml:"socket,attr"`
		} `xml:"host"`
		// Reconnect has qemu reconnect to a restarted server.
		Reconnect *struct {
			Delay int `xml:"delay,attr"`
		} `xml:"reconnect"`
	} `xml:"source"`
	Target struct {
		Dev string `xml:"dev,attr"`
		Bus string `xml:"bus,attr"`
	} `xml:"target"`
	Serial string `xml:"serial,omitempty"`
}

var diskTargetRE = regexp.MustCompile(`^vd[b-z]$`)

// NetDiskXML renders d for AttachDeviceFlags.
func NetDiskXML(d hypervisor.NetDisk) (string, error) {
	if !diskTargetRE.MatchString(d.Target) {
		return "", fmt.Errorf("disk target %q: want vdb to vdz", d.Target)
	}
	var x netDiskXML
	x.Device = "disk"
	x.Driver.Name, x.Driver.Type, x.Driver.Cache = "qemu", "raw", "none"
	switch {
	case d.Device != "":
		if !filepath.IsAbs(d.Device) {
			return "", fmt.Errorf("disk device %q: want an absolute path", d.Device)
		}
		x.Type, x.Source.Dev = "block", d.Device
	case d.Socket != "" && d.Export != "":
		x.Type = "network"
		x.Source.Protocol, x.Source.Name = "nbd", d.Export
		x.Source.Host = &struct {
			Transport string `xml:"transport,attr"`
			Socket    string `xml:"socket,attr"`
		}{"unix", d.Socket}
		// Requests wait this long for a restarted nodectl's server
		// before they fail.
		x.Source.Reconnect = &struct {
			Delay int `xml:"delay,attr"`
		}{15}
	default:
		return "", errors.New("disk: a device, or a socket and an export, is required")
	}
	x.Target.Dev, x.Target.Bus = d.Target, "virtio"
	x.Serial = d.Serial
	out, err := xml.MarshalIndent(x, "", "  ")
	return string(out), err
}

type liveDisks struct {
	Disks []struct {
		Target struct {
			Dev string `xml:"dev,attr"`
		} `xml:"target"`
	} `xml:"devices>disk"`
}

// parseDiskTargets returns the guest devices of a domain's disks.
func parseDiskTargets(domainXML string) ([]string, error) {
	var d liveDisks
	if err := xml.Unmarshal([]byte(domainXML), &d); err != nil {
		return nil, fmt.Errorf("domain xml: %w", err)
	}
	var out []string
	for _, disk := range d.Disks {
		out = append(out, disk.Target.Dev)
	}
	return out, nil
}

// diskElement returns the <disk> element of a domain's XML whose target
// is target, for DetachDeviceFlags; ok is false when there is none.
func diskElement(domainXML, target string) (elem string, ok bool, err error) {
	var d struct {
		Disks []struct {
			Attrs  []xml.Attr `xml:",any,attr"`
			Inner  string     `xml:",innerxml"`
			Target struct {
				Dev string `xml:"dev,attr"`
			} `xml:"target"`
		} `xml:"devices>disk"`
	}
	if err := xml.Unmarshal([]byte(domainXML), &d); err != nil {
		return "", false, fmt.Errorf("domain xml: %w", err)
	}
	for _, disk := range d.Disks {
		if disk.Target.Dev != target {
			continue
		}
		var b strings.Builder
		b.WriteString("<disk")
		for _, a := range disk.Attrs {
			b.WriteString(" " + a.Name.Local + "=\"")
			xml.EscapeText(&b, []byte(a.Value))
			b.WriteString("\"")
		}
		b.WriteString(">" + disk.Inner + "</disk>")
		return b.String(), true, nil
	}
	return "", false, nil
}
