package ec2query

import (
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

type keyPair struct {
	KeyName        string `xml:"keyName"`
	KeyFingerprint string `xml:"keyFingerprint"`
}

type describeKeyPairs struct {
	KeySet []keyPair `xml:"keySet>item"`
}

type group struct {
	GroupID   string `xml:"groupId"`
	GroupName string `xml:"groupName"`
}

type instance struct {
	InstanceID   string  `xml:"instanceId"`
	LaunchTime   Time    `xml:"launchTime"`
	StoppedAt    *Time   `xml:"stoppedAt,omitempty"`
	EbsOptimized bool    `xml:"ebsOptimized"`
	Monitoring   bool    `xml:"monitoring>state"`
	GroupSet     []group `xml:"groupSet>item"`
	TagSet       []tag   `xml:"tagSet>item"`
}

type tag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

type reservation struct {
	ReservationID string     `xml:"reservationId"`
	OwnerID       string     `xml:"ownerId"`
	Instances     []instance `xml:"instancesSet>item"`
}

type describeInstances struct {
	Reservations []reservation `xml:"reservationSet>item"`
	NextToken    string        `xml:"nextToken,omitempty"`
}

type boolResult struct {
	Return bool `xml:"return"`
}

func TestWriteGolden(t *testing.T) {
	launch := time.Date(2026, 11, 21, 23, 33, 28, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		name    string
		action  string
		version string
		v       any
	}{
		{"describe_key_pairs", "DescribeKeyPairs", "2016-11-15", describeKeyPairs{KeySet: []keyPair{
			{"my-key-pair", "1f:51:ae:28:bf:89:e9:d8:1f:25:5d:37:2d:7d:b8:ca:9f:f5:f1:6f"},
			{"a<b&c", "\"quoted\" 'and' >"},
		}}},
		{"describe_key_pairs_empty", "DescribeKeyPairs", "2016-11-15", &describeKeyPairs{}},
		{"describe_instances_old_version", "DescribeInstances", "2013-02-01", describeInstances{Reservations: []reservation{{
			ReservationID: "r-1234567890abcdef0",
			OwnerID:       "123456789012",
			Instances: []instance{{
				InstanceID: "i-1234567890abcdef0",
				LaunchTime: Time{launch},
				Monitoring: true,
				GroupSet:   []group{{"sg-1", "default"}},
				TagSet:     []tag{{"Name", "web"}},
			}, {
				InstanceID: "i-0fedcba0987654321",
				LaunchTime: Time{launch.Add(629 * time.Millisecond)},
				StoppedAt:  &Time{launch.Add(time.Hour + 5*time.Millisecond)},
			}},
		}}, NextToken: "tok"}},
		{"describe_instances_empty", "DescribeInstances", "", describeInstances{}},
		{"return_true", "DeleteKeyPair", "2016-11-15", boolResult{true}},
		{"nothing", "DeleteTags", "2016-11-15", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			if err := Write(rec, tt.action, tt.version, "7a62c49f-347e-4fc4-9331-6e8eEXAMPLE", tt.v); err != nil {
				t.Fatal(err)
			}
			res := rec.Result()
			if res.StatusCode != http.StatusOK {
				t.Errorf("status %d", res.StatusCode)
			}
			if ct := res.Header.Get("Content-Type"); ct != "text/xml;charset=UTF-8" {
				t.Errorf("Content-Type %q", ct)
			}
			body := rec.Body.Bytes()
			if cl := res.Header.Get("Content-Length"); cl != strconv.Itoa(len(body)) {
				t.Errorf("Content-Length %s for %d bytes", cl, len(body))
			}
			golden := filepath.Join("testdata", tt.name+".xml")
			if *update {
				if err := os.WriteFile(golden, body, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(body, want) {
				t.Fatalf("body\n%s\nwant\n%s", body, want)
			}
			checkWellFormed(t, body, tt.action+"Response", Namespace(tt.version))
		})
	}
}

// checkWellFormed parses body and checks its root element, namespace and
// that requestId comes first.
func checkWellFormed(t *testing.T, body []byte, root, ns string) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(body))
	depth, first := 0, ""
	var rootName xml.Name
	for {
		tok, err := d.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("not well-formed: %v", err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				rootName = e.Name
			}
			if depth == 1 && first == "" {
				first = e.Name.Local
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
	if rootName.Local != root || rootName.Space != ns {
		t.Errorf("root %v, want {%s}%s", rootName, ns, root)
	}
	if first != "requestId" {
		t.Errorf("first child %q, want requestId", first)
	}
}

func TestWriteVersion(t *testing.T) {
	tests := []struct{ version, want string }{
		{"2016-11-15", `xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"`},
		{"2013-02-01", `xmlns="http://ec2.amazonaws.com/doc/2013-02-01/"`},
		{"", `xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"`},
		{`1"><x`, `xmlns="http://ec2.amazonaws.com/doc/1&#34;&gt;&lt;x/"`},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			body, err := Marshal("DescribeRegions", tt.version, "id", nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(body, []byte(tt.want)) {
				t.Fatalf("body %s lacks %s", body, tt.want)
			}
		})
	}
}

func TestWriteEscapesRequestID(t *testing.T) {
	body, err := Marshal("X", "", "<&>", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(body, []byte("<requestId>&lt;&amp;&gt;</requestId>")) {
		t.Fatalf("body %s", body)
	}
}

type withAttr struct {
	ID   string `xml:"id,attr"`
	Name string `xml:"name"`
}

type withXMLName struct {
	XMLName xml.Name `xml:"Ignored"`
	Name    string   `xml:"name"`
}

func TestWriteErrors(t *testing.T) {
	tests := []struct {
		name string
		v    any
	}{
		{"attributes", withAttr{"1", "n"}},
		{"unencodable", struct {
			C chan int `xml:"c"`
		}{make(chan int)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			err := Write(rec, "X", "", "id", tt.v)
			if err == nil {
				t.Fatalf("no error; wrote %s", rec.Body.Bytes())
			}
			if rec.Body.Len() != 0 || rec.Header().Get("Content-Type") != "" {
				t.Errorf("wrote before failing")
			}
			if msg := err.Error(); msg[:1] != strings.ToLower(msg[:1]) {
				t.Errorf("error %q does not start in lower case", msg)
			}
		})
	}
}

func TestWriteIgnoresXMLName(t *testing.T) {
	body, err := Marshal("CreateKeyPair", "", "id", withXMLName{Name: "k"})
	if err != nil {
		t.Fatal(err)
	}
	want := xml.Header + `<CreateKeyPairResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>id</requestId><name>k</name></CreateKeyPairResponse>`
	if string(body) != want {
		t.Fatalf("body %s\nwant %s", body, want)
	}
}

func TestTime(t *testing.T) {
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2026, 11, 21, 23, 33, 28, 629_000_000, time.UTC), "2026-11-21T23:33:28.629Z"},
		{time.Date(2026, 11, 21, 23, 33, 28, 0, time.UTC), "2026-11-21T23:33:28.000Z"},
		{time.Date(2026, 11, 21, 23, 33, 28, 999_999_999, time.UTC), "2026-11-21T23:33:28.999Z"},
		{time.Date(2026, 11, 22, 0, 33, 28, 500_000_000, time.FixedZone("CET", 3600)), "2026-11-21T23:33:28.500Z"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			b, err := Time{tt.in}.MarshalText()
			if err != nil || string(b) != tt.want {
				t.Fatalf("%s, %v; want %s", b, err, tt.want)
			}
			var back Time
			if err := back.UnmarshalText(b); err != nil || !back.Equal(tt.in.Truncate(time.Millisecond)) {
				t.Fatalf("read back %v, %v", back, err)
			}
		})
	}
}
