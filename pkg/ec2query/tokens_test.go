package ec2query

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func TestTokensRoundTrip(t *testing.T) {
	tk := NewTokens(testKey)
	fp := Fingerprint([]Filter{{"instance-state-name", []string{"running"}}}, "DescribeInstances")
	for _, pos := range []string{"i-0123456789abcdef0", "", "r-1", "snap-é€😀", "a\x00b", strings.Repeat("x", 300)} {
		t.Run(fmt.Sprintf("%.20q", pos), func(t *testing.T) {
			tok := tk.Encode(pos, fp)
			if strings.ContainsAny(tok, "+/=") {
				t.Errorf("token %q is not URL-safe", tok)
			}
			got, err := tk.Decode(tok, fp)
			if err != nil || got != pos {
				t.Fatalf("Decode: %q, %v; want %q", got, err, pos)
			}
			if again := tk.Encode(pos, fp); again != tok {
				t.Errorf("Encode is not deterministic")
			}
		})
	}
}

func TestTokensRefused(t *testing.T) {
	tk := NewTokens(testKey)
	fp := Fingerprint(nil, "DescribeInstances")
	good := tk.Encode("i-0123456789abcdef0", fp)
	raw, _ := base64.RawURLEncoding.DecodeString(good)
	flip := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 0x01
		return base64.RawURLEncoding.EncodeToString(b)
	}
	tests := []struct{ name, token, fp string }{
		{"empty", "", fp},
		{"garbage", "not a token!", fp},
		{"base64 of nothing much", base64.RawURLEncoding.EncodeToString([]byte("hello")), fp},
		{"padded", good + "=", fp},
		{"truncated", good[:len(good)-2], fp},
		{"extended", good + "AA", fp},
		{"other version", flip(0), fp},
		{"position changed", flip(3), fp},
		{"mac changed", flip(len(raw) - 1), fp},
		{"other filters", good, Fingerprint([]Filter{{"instance-state-name", []string{"stopped"}}}, "DescribeInstances")},
		{"other action", good, Fingerprint(nil, "DescribeVolumes")},
		{"other key", NewTokens([]byte("another key, also 32 bytes long!")).Encode("i-0123456789abcdef0", fp), fp},
		{"standard base64", base64.StdEncoding.EncodeToString(raw), fp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pos, err := tk.Decode(tt.token, tt.fp)
			if err == nil {
				t.Fatalf("accepted, position %q", pos)
			}
			wantAWSErr(t, err, "InvalidParameterValue", "Value ( "+tt.token+" ) for parameter NextToken is invalid. The token is invalid.")
		})
	}
	t.Run("every byte matters", func(t *testing.T) {
		for i := range raw {
			if _, err := tk.Decode(flip(i), fp); err == nil {
				t.Errorf("byte %d altered and accepted", i)
			}
		}
	})
}

func TestNewTokensKey(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewTokens(nil) did not panic")
		}
	}()
	NewTokens(nil)
}

func TestNewTokensCopiesKey(t *testing.T) {
	key := append([]byte(nil), testKey...)
	tk := NewTokens(key)
	tok := tk.Encode("x", "")
	key[0] ^= 0xff
	if _, err := tk.Decode(tok, ""); err != nil {
		t.Fatal("changing the caller's key slice changed the codec")
	}
}

func TestFingerprint(t *testing.T) {
	base := Fingerprint([]Filter{{"a", []string{"1", "2"}}, {"b", []string{"x"}}}, "DescribeImages", "self")
	same := []struct {
		name    string
		filters []Filter
		extra   []string
	}{
		{"filters reordered", []Filter{{"b", []string{"x"}}, {"a", []string{"1", "2"}}}, []string{"DescribeImages", "self"}},
		{"values reordered", []Filter{{"a", []string{"2", "1"}}, {"b", []string{"x"}}}, []string{"DescribeImages", "self"}},
		{"values repeated", []Filter{{"a", []string{"2", "1", "2"}}, {"b", []string{"x", "x"}}}, []string{"DescribeImages", "self"}},
	}
	for _, tt := range same {
		t.Run(tt.name, func(t *testing.T) {
			if got := Fingerprint(tt.filters, tt.extra...); got != base {
				t.Fatalf("%s differs from %s", got, base)
			}
		})
	}
	other := []struct {
		name    string
		filters []Filter
		extra   []string
	}{
		{"value changed", []Filter{{"a", []string{"1", "3"}}, {"b", []string{"x"}}}, []string{"DescribeImages", "self"}},
		{"value moved to other filter", []Filter{{"a", []string{"1"}}, {"b", []string{"2", "x"}}}, []string{"DescribeImages", "self"}},
		{"filter dropped", []Filter{{"a", []string{"1", "2"}}}, []string{"DescribeImages", "self"}},
		{"extra changed", []Filter{{"a", []string{"1", "2"}}, {"b", []string{"x"}}}, []string{"DescribeImages", "amazon"}},
		{"extra reordered", []Filter{{"a", []string{"1", "2"}}, {"b", []string{"x"}}}, []string{"self", "DescribeImages"}},
		{"extra split differently", []Filter{{"a", []string{"1", "2"}}, {"b", []string{"x"}}}, []string{"DescribeImagesself"}},
		{"name and value boundary", []Filter{{"a1", []string{"2"}}, {"b", []string{"x"}}}, []string{"DescribeImages", "self"}},
		{"no filters", nil, []string{"DescribeImages", "self"}},
	}
	for _, tt := range other {
		t.Run(tt.name, func(t *testing.T) {
			if got := Fingerprint(tt.filters, tt.extra...); got == base {
				t.Fatal("same fingerprint")
			}
		})
	}
	t.Run("does not change its input", func(t *testing.T) {
		fs := []Filter{{"b", []string{"z", "y"}}, {"a", []string{"2", "1"}}}
		Fingerprint(fs)
		if !reflect.DeepEqual(fs, []Filter{{"b", []string{"z", "y"}}, {"a", []string{"2", "1"}}}) {
			t.Fatalf("input changed: %v", fs)
		}
	})
}

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("i-%04d", i)
	}
	return out
}

func TestPage(t *testing.T) {
	tk := NewTokens(testKey)
	fp := Fingerprint(nil, "DescribeInstances")
	all := ids(12)
	tests := []struct {
		name     string
		query    url.Values
		ids      []string
		want     []string
		nextPos  string // position the next token must carry; "" for none
		errorMsg string
	}{
		{"no MaxResults", url.Values{}, all, all, "", ""},
		{"no results", url.Values{"MaxResults": {"5"}}, nil, []string{}, "", ""},
		{"first page", url.Values{"MaxResults": {"5"}}, all, all[:5], "i-0004", ""},
		{"exact fit has no token", url.Values{"MaxResults": {"12"}}, all, all, "", ""},
		{"one more than fits", url.Values{"MaxResults": {"11"}}, all, all[:11], "i-0010", ""},
		{"page beyond all", url.Values{"MaxResults": {"1000"}}, all, all, "", ""},
		{"second page", url.Values{"MaxResults": {"5"}, "NextToken": {tk.Encode("i-0004", fp)}}, all, all[5:10], "i-0009", ""},
		{"last page", url.Values{"MaxResults": {"5"}, "NextToken": {tk.Encode("i-0009", fp)}}, all, all[10:], "", ""},
		{"token at the end", url.Values{"MaxResults": {"5"}, "NextToken": {tk.Encode("i-0011", fp)}}, all, []string{}, "", ""},
		{"position deleted since", url.Values{"MaxResults": {"5"}, "NextToken": {tk.Encode("i-0004x", fp)}}, all, all[5:10], "i-0009", ""},
		{"token without MaxResults", url.Values{"NextToken": {tk.Encode("i-0004", fp)}}, all, all[5:], "", ""},
		{"empty token is none", url.Values{"MaxResults": {"5"}, "NextToken": {""}}, all, all[:5], "i-0004", ""},
		{"MaxResults at minimum", url.Values{"MaxResults": {"5"}}, all[:6], all[:5], "i-0004", ""},
		{"MaxResults below minimum", url.Values{"MaxResults": {"1"}}, all, nil, "", "Value ( 1 ) for parameter maxResults is invalid. Expecting a value greater than 5."},
		{"MaxResults zero", url.Values{"MaxResults": {"0"}}, all, nil, "", "Value ( 0 ) for parameter maxResults is invalid. Expecting a value greater than 5."},
		{"MaxResults negative", url.Values{"MaxResults": {"-5"}}, all, nil, "", "Value ( -5 ) for parameter maxResults is invalid. Expecting a value greater than 5."},
		{"MaxResults above maximum", url.Values{"MaxResults": {"1001"}}, all, nil, "", "Value ( 1001 ) for parameter maxResults is invalid. Expecting a value less than 1000."},
		{"MaxResults not a number", url.Values{"MaxResults": {"ten"}}, all, nil, "", "Value ( ten ) for parameter MaxResults is invalid. Expecting an integer."},
		{"bad token", url.Values{"MaxResults": {"5"}, "NextToken": {"garbage"}}, all, nil, "", "Value ( garbage ) for parameter NextToken is invalid. The token is invalid."},
		{"token for other filters", url.Values{"MaxResults": {"5"}, "NextToken": {tk.Encode("i-0004", Fingerprint([]Filter{{"a", []string{"b"}}}, "DescribeInstances"))}},
			all, nil, "", "Value ( " + tk.Encode("i-0004", Fingerprint([]Filter{{"a", []string{"b"}}}, "DescribeInstances")) + " ) for parameter NextToken is invalid. The token is invalid."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewParams(tt.query)
			page, next, err := tk.Page(p, tt.ids, fp, 5, 1000)
			if tt.errorMsg != "" {
				wantAWSErr(t, err, "InvalidParameterValue", tt.errorMsg)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(page) != len(tt.want) || (len(page) > 0 && !reflect.DeepEqual(page, tt.want)) {
				t.Errorf("page %q, want %q", page, tt.want)
			}
			switch {
			case tt.nextPos == "" && next != "":
				t.Errorf("next token %q, want none", next)
			case tt.nextPos != "":
				pos, err := tk.Decode(next, fp)
				if err != nil || pos != tt.nextPos {
					t.Errorf("next token carries %q, %v; want %q", pos, err, tt.nextPos)
				}
			}
			if u := p.Unused(); len(u) != 0 {
				t.Errorf("unused %q", u)
			}
		})
	}
}

// TestPageWalk pages through every page size and checks that the pages
// cover the IDs exactly once, in order.
func TestPageWalk(t *testing.T) {
	tk := NewTokens(testKey)
	fp := Fingerprint([]Filter{{"tag:env", []string{"prod"}}}, "DescribeVolumes")
	all := ids(23)
	for size := 5; size <= 25; size++ {
		var got []string
		next := ""
		for pages := 0; ; pages++ {
			if pages > len(all) {
				t.Fatalf("size %d: no end", size)
			}
			q := url.Values{"MaxResults": {fmt.Sprint(size)}}
			if next != "" {
				q.Set("NextToken", next)
			}
			page, tok, err := tk.Page(NewParams(q), all, fp, 5, 1000)
			if err != nil {
				t.Fatalf("size %d: %v", size, err)
			}
			if len(page) > size || len(page) == 0 {
				t.Fatalf("size %d: page of %d", size, len(page))
			}
			got = append(got, page...)
			if next = tok; next == "" {
				break
			}
		}
		if !reflect.DeepEqual(got, all) {
			t.Fatalf("size %d: got %q", size, got)
		}
	}
}
