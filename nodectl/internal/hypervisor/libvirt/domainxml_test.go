package libvirt

import (
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/koala-cloud/koala/nodectl/internal/hypervisor"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func minimal() hypervisor.Domain {
	return hypervisor.Domain{
		Name:      "i-0123456789abcdef0",
		Cores:     1,
		MemoryMiB: 128,
		Kernel:    "/var/lib/koala/images/emi-1/vmlinuz",
		Metadata:  hypervisor.Metadata{Owner: "node-a"},
	}
}

func full() hypervisor.Domain {
	return hypervisor.Domain{
		Name:      "i-0123456789abcdef0",
		Cores:     2,
		MemoryMiB: 512,
		Kernel:    "/var/lib/koala/images/emi-1/vmlinuz",
		Ramdisk:   "/var/lib/koala/images/eri-1/initrd.img",
		Cmdline:   "console=ttyS0 root=/dev/vda rw",
		Disks: []hypervisor.Disk{
			{Path: "/var/lib/koala/instances/i-0123456789abcdef0/root.qcow2", Format: "qcow2", Target: "vda"},
			{Path: "/var/lib/koala/instances/i-0123456789abcdef0/ephemeral0.raw", Format: "raw", Target: "vdb"},
		},
		NICs:        []hypervisor.NIC{{Bridge: "koala0", MAC: "d0:0d:12:34:56:78"}},
		ConsolePath: "/var/lib/koala/instances/i-0123456789abcdef0/console.log",
		Serial:      "i-0123456789abcdef0",
		Metadata: hypervisor.Metadata{
			Owner:       "node-a",
			InstanceID:  "i-0123456789abcdef0",
			AccountID:   "123456789012",
			Reservation: "r-0123456789abcdef0",
			ImageID:     "emi-1",
			Type:        "m1.small",
		},
	}
}

func TestDomainXML(t *testing.T) {
	tests := []struct {
		name string
		typ  string
		d    func() hypervisor.Domain
	}{
		{"minimal", TypeQEMU, minimal},
		{"full-qemu", TypeQEMU, full},
		{"full-kvm", TypeKVM, full},
		{"no-ramdisk", TypeKVM, func() hypervisor.Domain {
			d := full()
			d.Ramdisk = ""
			return d
		}},
		{"default-targets", TypeQEMU, func() hypervisor.Domain {
			d := full()
			d.Disks[0].Target, d.Disks[1].Target = "", ""
			d.NICs[0].MAC = ""
			return d
		}},
		{"escaped", TypeQEMU, func() hypervisor.Domain {
			d := full()
			d.Cmdline = `console=ttyS0 koala.msg="a<b>&c" ]]>`
			d.Serial = `i-1"><evil/>`
			d.ConsolePath = "/var/tmp/a'b\"c&d<e>/console.log"
			d.Disks[0].Path = "/var/tmp/x&y/root.qcow2"
			d.Metadata.AccountID = "</koala:account-id><koala:owner>node-b</koala:owner>"
			d.Metadata.Type = "m1.small\n\t&amp;"
			return d
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DomainXML(tt.d(), tt.typ)
			if err != nil {
				t.Fatalf("DomainXML: %v", err)
			}
			again, err := DomainXML(tt.d(), tt.typ)
			if err != nil || again != got {
				t.Fatalf("DomainXML is not deterministic")
			}
			golden := filepath.Join("testdata", tt.name+".xml")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test -update writes it)", err)
			}
			if got != string(want) {
				t.Errorf("DomainXML differs from %s (go test -update rewrites it)\ngot:\n%s", golden, got)
			}
			// Whatever the input, the text is well-formed and names the
			// owner the domain carries, once.
			owner, err := parseOwner(metadataOf(t, got))
			if err != nil || owner != tt.d().Metadata.Owner {
				t.Errorf("owner read back = %q, %v; want %q", owner, err, tt.d().Metadata.Owner)
			}
		})
	}
}

// metadataOf returns the koala:instance element of domain XML, as
// libvirt's GetMetadata would.
func metadataOf(t *testing.T, domainXML string) string {
	t.Helper()
	start := strings.Index(domainXML, "<koala:instance")
	end := strings.Index(domainXML, "</koala:instance>")
	if start < 0 || end < start {
		t.Fatalf("no koala:instance element in\n%s", domainXML)
	}
	el := domainXML[start : end+len("</koala:instance>")]
	if err := xml.Unmarshal([]byte(domainXML), new(struct{})); err != nil {
		t.Fatalf("not well-formed: %v", err)
	}
	return el
}

func TestDomainXMLInvalid(t *testing.T) {
	tests := []struct {
		name   string
		typ    string
		change func(d *hypervisor.Domain)
		want   string
	}{
		{"bad type", "xen", func(d *hypervisor.Domain) {}, "domain type"},
		{"no name", TypeQEMU, func(d *hypervisor.Domain) { d.Name = "" }, "name"},
		{"slash in name", TypeQEMU, func(d *hypervisor.Domain) { d.Name = "../etc" }, "name"},
		{"long name", TypeQEMU, func(d *hypervisor.Domain) { d.Name = strings.Repeat("a", 65) }, "name"},
		{"no cores", TypeQEMU, func(d *hypervisor.Domain) { d.Cores = 0 }, "cores"},
		{"negative memory", TypeQEMU, func(d *hypervisor.Domain) { d.MemoryMiB = -1 }, "memory"},
		{"no kernel", TypeQEMU, func(d *hypervisor.Domain) { d.Kernel = "" }, "kernel"},
		{"no owner", TypeQEMU, func(d *hypervisor.Domain) { d.Metadata.Owner = "" }, "owner"},
		{"disk format", TypeQEMU, func(d *hypervisor.Domain) { d.Disks[0].Format = "vmdk" }, "format"},
		{"disk path", TypeQEMU, func(d *hypervisor.Domain) { d.Disks[1].Path = "" }, "path"},
		{"disk target", TypeQEMU, func(d *hypervisor.Domain) { d.Disks[0].Target = "sda" }, "target"},
		{"same target", TypeQEMU, func(d *hypervisor.Domain) { d.Disks[1].Target = "vda" }, "twice"},
		{"no bridge", TypeQEMU, func(d *hypervisor.Domain) { d.NICs[0].Bridge = "" }, "bridge"},
		{"bad mac", TypeQEMU, func(d *hypervisor.Domain) { d.NICs[0].MAC = "nope" }, "mac"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := full()
			tt.change(&d)
			_, err := DomainXML(d, tt.typ)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("DomainXML = %v, want an error about %s", err, tt.want)
			}
		})
	}
}

func TestUUIDStable(t *testing.T) {
	a := formatUUID(nameUUID(uuidNamespace, "i-1"))
	if b := formatUUID(nameUUID(uuidNamespace, "i-1")); a != b {
		t.Errorf("uuid of i-1 changes: %s, %s", a, b)
	}
	if c := formatUUID(nameUUID(uuidNamespace, "i-2")); a == c {
		t.Errorf("i-1 and i-2 share uuid %s", a)
	}
	if len(a) != 36 || a[14] != '5' || !strings.ContainsRune("89ab", rune(a[19])) {
		t.Errorf("uuid %s is not a version 5, RFC 4122 variant uuid", a)
	}
}

func TestParseOwner(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"prefixed", `<koala:instance xmlns:koala="` + Namespace + `"><koala:owner>node-a</koala:owner></koala:instance>`, "node-a"},
		{"other prefix", `<k:instance xmlns:k="` + Namespace + `"><k:owner>node-b</k:owner></k:instance>`, "node-b"},
		{"default namespace", `<instance xmlns="` + Namespace + `"><owner>node-c</owner></instance>`, "node-c"},
		{"as libvirt returns it", "<instance>\n  <owner>node-d</owner>\n  <instance-id>i-1</instance-id>\n</instance>\n", "node-d"},
		{"no owner", `<koala:instance xmlns:koala="` + Namespace + `"/>`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOwner(tt.in)
			if err != nil || got != tt.want {
				t.Errorf("parseOwner = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := parseOwner(`<other/>`); err == nil {
		t.Errorf("parseOwner of another element: no error")
	}
}

func TestParseIfaces(t *testing.T) {
	for _, tc := range []struct {
		name, xml string
		want      []string
		err       bool
	}{
		{name: "live", xml: `<domain type='kvm' id='7'><name>i-1</name><devices>
<disk type='file'><target dev='vda' bus='virtio'/></disk>
<interface type='bridge'><mac address='d0:0d:0a:00:00:05'/><source bridge='kbr0'/><target dev='vnet3'/><model type='virtio'/></interface>
<interface type='bridge'><mac address='d0:0d:0a:00:00:06'/><source bridge='kbr0'/><target dev='vnet4'/></interface>
</devices></domain>`, want: []string{"vnet3", "vnet4"}},
		{name: "inactive: no target", xml: `<domain><devices><interface type='bridge'><source bridge='kbr0'/></interface></devices></domain>`},
		{name: "no nic", xml: `<domain><devices><disk type='file'><target dev='vda'/></disk></devices></domain>`},
		{name: "not xml", xml: `<domain`, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseIfaces(tc.xml)
			if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
				t.Errorf("parseIfaces = %v, %v; want %v (error %v)", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestNetDiskXML(t *testing.T) {
	x, err := NetDiskXML(hypervisor.NetDisk{Socket: "/run/koala/vol-1.sock", Export: "vol-1", Target: "vdb", Serial: "vol-1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<disk type="network" device="disk">`, `<source protocol="nbd" name="vol-1">`,
		`<host transport="unix" socket="/run/koala/vol-1.sock">`, `<target dev="vdb" bus="virtio">`, `<serial>vol-1</serial>`} {
		if !strings.Contains(x, want) {
			t.Errorf("missing %s in\n%s", want, x)
		}
	}
	for _, bad := range []hypervisor.NetDisk{
		{Socket: "/s", Export: "e", Target: "vda"}, {Socket: "/s", Export: "e", Target: "sdb"}, {Export: "e", Target: "vdb"},
		{Device: "etherd/e1.0", Target: "vdb"},
	} {
		if _, err := NetDiskXML(bad); err == nil {
			t.Errorf("%+v rendered", bad)
		}
	}
	blk, err := NetDiskXML(hypervisor.NetDisk{Device: "/dev/etherd/e1.0", Target: "vdc", Serial: "vol-2"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<disk type="block" device="disk">`, `<source dev="/dev/etherd/e1.0">`, `<target dev="vdc" bus="virtio">`} {
		if !strings.Contains(blk, want) {
			t.Errorf("missing %s in\n%s", want, blk)
		}
	}
	if strings.Contains(blk, "host") || strings.Contains(blk, "reconnect") {
		t.Errorf("a block disk with NBD parts:\n%s", blk)
	}
	dom := "<domain><devices><disk type='file' device='disk'><target dev='vda'/></disk>" + x + "</devices></domain>"
	elem, ok, err := diskElement(dom, "vdb")
	if err != nil || !ok || !strings.Contains(elem, `socket="/run/koala/vol-1.sock"`) || !strings.HasPrefix(elem, `<disk type="network" device="disk">`) {
		t.Errorf("diskElement = %q %v %v", elem, ok, err)
	}
	if _, ok, _ := diskElement(dom, "vdc"); ok {
		t.Error("found a disk at vdc")
	}
	if targets, err := parseDiskTargets(dom); err != nil || strings.Join(targets, ",") != "vda,vdb" {
		t.Errorf("targets %v %v", targets, err)
	}
}
