package bundle

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseManifestMalformed(t *testing.T) {
	euca := string(fixtures[0].manifest(t))
	ec2 := string(fixtures[2].manifest(t))
	multi := string(fixtures[1].manifest(t))
	rep := func(doc, old, new string) string {
		if !strings.Contains(doc, old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return strings.Replace(doc, old, new, 1)
	}
	cases := []struct {
		name string
		doc  string
	}{
		{"empty", ""},
		{"not xml", "hello"},
		{"truncated", euca[:len(euca)/2]},
		{"too big", euca + strings.Repeat(" ", MaxManifestSize)},
		{"wrong root", rep(euca, "<manifest>", "<manifesto>")},
		{"wrong version", rep(euca, "<version>2007-10-10</version>", "<version>2007-08-29</version>")},
		{"no version", rep(euca, "<version>2007-10-10</version>", "")},
		{"two images", rep(euca, "<signature>", "<image><name>x</name></image><signature>")},
		{"two machine configurations", rep(euca, "<image>", "<machine_configuration><architecture>i386</architecture></machine_configuration><image>")},
		{"no machine configuration", rep(euca, "<machine_configuration><architecture>x86_64</architecture></machine_configuration>", "")},
		{"no signature", euca[:strings.Index(euca, "<signature>")] + "</manifest>"},
		{"signature not hex", rep(euca, "<signature>7f", "<signature>zz")},
		{"doctype", rep(euca, "<manifest>", "<!DOCTYPE manifest [<!ENTITY x \"y\">]><manifest>")},
		{"namespace", rep(euca, "<image>", "<i:image xmlns:i=\"urn:x\">")},
		{"second root", euca + "<manifest/>"},
		{"text after root", euca + "junk"},
		{"latin1", rep(euca, "encoding='ASCII'", "encoding='ISO-8859-1'")},
		{"non-ascii in ascii document", rep(euca, "<name>disk.img</name>", "<name>disk\u00e9.img</name>")},
		{"no architecture", rep(euca, "<architecture>x86_64</architecture>", "")},
		{"empty name", rep(euca, "<name>disk.img</name>", "<name> </name>")},
		{"two names", rep(euca, "<name>disk.img</name>", "<name>disk.img</name><name>b</name>")},
		{"bad type", rep(euca, "<type>machine</type>", "<type>disk</type>")},
		{"md5 digest", rep(euca, `<digest algorithm="SHA1">7217`, `<digest algorithm="MD5">7217`)},
		{"digest without algorithm", rep(euca, `<digest algorithm="SHA1">7217`, `<digest>7217`)},
		{"short digest", rep(euca, "7217617de0d27e1680eb91607aaa26a584a6d67c", "7217617de0d27e1680eb91607aaa26a584a6d6")},
		{"negative size", rep(euca, "<size>25165824</size>", "<size>-1</size>")},
		{"size not a number", rep(euca, "<size>25165824</size>", "<size>24MiB</size>")},
		{"huge size", rep(euca, "<size>25165824</size>", "<size>99999999999999999999</size>")},
		{"no bundled size", rep(euca, "<bundled_size>3032784</bundled_size>", "")},
		{"des key", rep(euca, `<ec2_encrypted_key algorithm="AES-128-CBC">`, `<ec2_encrypted_key algorithm="DES">`)},
		{"key not hex", rep(euca, `<ec2_encrypted_key algorithm="AES-128-CBC">563a`, `<ec2_encrypted_key algorithm="AES-128-CBC">x63a`)},
		{"no ec2 iv", euca[:strings.Index(euca, "<ec2_encrypted_iv>")] + euca[strings.Index(euca, "<user_encrypted_iv>"):]},
		{"no parts", rep(euca, `<parts count="1">`, `<partz count="1">`)},
		{"part count too high", rep(euca, `<parts count="1">`, `<parts count="2">`)},
		{"part count zero", rep(euca, `<parts count="1">`, `<parts count="0">`)},
		{"part count missing", rep(euca, `<parts count="1">`, `<parts>`)},
		{"part index out of range", rep(euca, `<part index="0">`, `<part index="1">`)},
		{"part index repeated", rep(multi, `<part index="1">`, `<part index="0">`)},
		{"part file name repeated", rep(multi, "disk.img.part.01", "disk.img.part.00")},
		{"part path", rep(euca, "<filename>disk.img.part.00", "<filename>../disk.img.part.00")},
		{"part absolute path", rep(euca, "<filename>disk.img.part.00", "<filename>/etc/disk.img.part.00")},
		{"part backslash", rep(euca, "<filename>disk.img.part.00", `<filename>..\disk.img.part.00`)},
		{"part dot dot", rep(euca, "<filename>disk.img.part.00</filename>", "<filename>..</filename>")},
		{"part digest md5", rep(euca, `<digest algorithm="SHA1">83e5`, `<digest algorithm="MD5">83e5`)},
		{"part digest missing", rep(euca, `<digest algorithm="SHA1">83e5ad6ff2004ed5e1c0529927febad33a3973c1</digest>`, "")},
		{"kernel and ramdisk markers", rep(euca, "<architecture>x86_64</architecture>", "<architecture>x86_64</architecture><kernel_id>true</kernel_id><ramdisk_id>true</ramdisk_id>")},
		{"kernel marker on ramdisk", rep(rep(euca, "<type>machine</type>", "<type>ramdisk</type>"), "<architecture>x86_64</architecture>", "<architecture>x86_64</architecture><kernel_id>true</kernel_id>")},
		{"kernel image with kernel id", rep(rep(euca, "<type>machine</type>", "<type>kernel</type>"), "<architecture>x86_64</architecture>", "<architecture>x86_64</architecture><kernel_id>eki-1</kernel_id>")},
		{"mapping without device", rep(ec2, "<architecture>x86_64</architecture>", "<architecture>x86_64</architecture><block_device_mapping><mapping><virtual>ami</virtual></mapping></block_device_mapping>")},
		{"empty product code", rep(ec2, "<architecture>x86_64</architecture>", "<architecture>x86_64</architecture><product_codes><product_code/></product_codes>")},
		{"deep nesting", rep(euca, "<bundler>", strings.Repeat("<x>", 20)+strings.Repeat("</x>", 20)+"<bundler>")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseManifest([]byte(tc.doc))
			if err == nil {
				t.Fatalf("parsed: %+v", m)
			}
			if !errors.Is(err, ErrMalformedManifest) {
				t.Fatalf("err %v does not wrap ErrMalformedManifest", err)
			}
			if !strings.HasPrefix(err.Error(), ErrMalformedManifest.Error()+": ") {
				t.Errorf("message %q does not start with the sentinel's", err)
			}
		})
	}
}

func TestParseManifestVariants(t *testing.T) {
	euca := string(fixtures[0].manifest(t))
	ec2 := string(fixtures[2].manifest(t))
	cases := []struct {
		name  string
		doc   string
		check func(*Manifest) bool
	}{
		{"euca2ools kernel marker", strings.Replace(euca, "<architecture>x86_64</architecture>", "<architecture>x86_64</architecture><kernel_id>true</kernel_id>", 1),
			func(m *Manifest) bool { return m.Type == TypeKernel && m.KernelID == "" }},
		{"euca2ools ramdisk marker", strings.Replace(euca, "<architecture>x86_64</architecture>", "<architecture>x86_64</architecture><ramdisk_id>true</ramdisk_id>", 1),
			func(m *Manifest) bool { return m.Type == TypeRamdisk && m.RamdiskID == "" }},
		{"kernel type and marker", strings.Replace(strings.Replace(euca, "<type>machine</type>", "<type>kernel</type>", 1), "<architecture>x86_64</architecture>", "<architecture>x86_64</architecture><kernel_id>true</kernel_id>", 1),
			func(m *Manifest) bool { return m.Type == TypeKernel }},
		{"ec2 kernel with kernel_name", strings.Replace(ec2, "<type>machine</type>", "<type>kernel</type><kernel_name>vmlinuz</kernel_name>", 1),
			func(m *Manifest) bool { return m.Type == TypeKernel }},
		{"kernel and ramdisk ids", strings.Replace(ec2, "<architecture>x86_64</architecture>", "<architecture>x86_64</architecture><kernel_id>aki-1</kernel_id><ramdisk_id>ari-2</ramdisk_id>", 1),
			func(m *Manifest) bool {
				return m.KernelID == "aki-1" && m.RamdiskID == "ari-2" && m.Type == TypeMachine
			}},
		{"mappings and product codes", strings.Replace(ec2, "<architecture>x86_64</architecture>",
			"<architecture>x86_64</architecture><block_device_mapping><mapping><virtual>ami</virtual><device>sda1</device></mapping><mapping><device>sda2</device><virtual>ephemeral0</virtual></mapping></block_device_mapping><product_codes><product_code>A1</product_code><product_code>B2</product_code></product_codes>", 1),
			func(m *Manifest) bool {
				return slices.Equal(m.BlockDeviceMappings, []Mapping{{"ami", "sda1"}, {"ephemeral0", "sda2"}}) && slices.Equal(m.ProductCodes, []string{"A1", "B2"})
			}},
		{"pretty printed", strings.NewReplacer("><", ">\n  <").Replace(euca),
			func(m *Manifest) bool { return m.Name == "disk.img" && m.Arch == "x86_64" && len(m.Parts) == 1 }},
		{"utf-8 declaration", strings.Replace(euca, "encoding='ASCII'", "encoding='UTF-8'", 1),
			func(m *Manifest) bool { return m.Name == "disk.img" }},
		{"no declaration", euca[strings.Index(euca, "<manifest>"):],
			func(m *Manifest) bool { return m.Name == "disk.img" }},
		{"comments and unknown elements", strings.Replace(euca, "<image>", "<image><!-- c --><ancestry><ancestor_ami_id>ami-1</ancestor_ami_id></ancestry>", 1),
			func(m *Manifest) bool { return m.Name == "disk.img" }},
		{"no user copies", strings.Replace(euca, euca[strings.Index(euca, "<user_encrypted_key"):strings.Index(euca, "<ec2_encrypted_iv>")], "", 1),
			func(m *Manifest) bool { return m.UserEncryptedKey == "" && m.EC2EncryptedKey != "" }},
		{"no bundler", strings.Replace(euca, "<bundler><name>euca2ools</name><version>3.4-devel</version><release>0</release></bundler>", "", 1),
			func(m *Manifest) bool { return m.Bundler == Bundler{} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseManifest([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(m) {
				t.Errorf("unexpected fields: %+v", m)
			}
			if !bytes.HasPrefix(m.Signed, []byte("<machine_configuration>")) || !bytes.HasSuffix(m.Signed, []byte("</image>")) {
				t.Errorf("signed text %q", m.Signed)
			}
		})
	}
}
