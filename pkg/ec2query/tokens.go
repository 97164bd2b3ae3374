package ec2query

import (
	"bytes"
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
)

// tokenVersion is the first byte of every token, so that the format can
// change without old tokens being misread.
const tokenVersion = 1

// Tokens encodes and checks the NextToken values of paginated Describe
// calls. A token carries a position (the last ID returned) and is
// authenticated with HMAC-SHA256 under a server key, over the position and
// a fingerprint of what the request selects (see Fingerprint), so a client
// can neither forge a position nor reuse a token with other filters. Tokens
// do not expire: a position stays meaningful after the resource it names
// is gone, because the next page starts at the first ID after it.
//
// A token is the URL-safe unpadded base64 of the version, the position and
// the MAC; clients must treat it as opaque. A Tokens is safe for concurrent
// use.
type Tokens struct {
	key []byte
}

// NewTokens returns a codec keyed with key, which should be at least 32
// random bytes kept for as long as tokens should stay valid (a key that
// changes on restart invalidates the tokens clients hold, which they are
// told with InvalidParameterValue). NewTokens panics on an empty key.
func NewTokens(key []byte) *Tokens {
	if len(key) == 0 {
		panic("ec2query: NewTokens with an empty key")
	}
	return &Tokens{key: bytes.Clone(key)}
}

// Encode returns the token for position under fingerprint.
func (t *Tokens) Encode(position, fingerprint string) string {
	b := make([]byte, 0, 1+len(position)+sha256.Size)
	b = append(b, tokenVersion)
	b = append(b, position...)
	b = append(b, t.mac(position, fingerprint)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Decode returns the position a token made by Encode with the same key and
// fingerprint carries. Any other string (garbage, a token altered in any
// byte, one made under another fingerprint or key) is refused with the
// error EC2 gives for a bad NextToken: InvalidParameterValue "Value ( X )
// for parameter NextToken is invalid. The token is invalid."
func (t *Tokens) Decode(token, fingerprint string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) < 1+sha256.Size || b[0] != tokenVersion {
		return "", errToken(token)
	}
	position := string(b[1 : len(b)-sha256.Size])
	if !hmac.Equal(b[len(b)-sha256.Size:], t.mac(position, fingerprint)) {
		return "", errToken(token)
	}
	return position, nil
}

// mac authenticates position under fingerprint; the length prefix keeps
// the boundary between the two unambiguous.
func (t *Tokens) mac(position, fingerprint string) []byte {
	h := hmac.New(sha256.New, t.key)
	var n [binary.MaxVarintLen64 + 1]byte
	n[0] = tokenVersion
	h.Write(binary.AppendUvarint(n[:1], uint64(len(position))))
	h.Write([]byte(position))
	h.Write([]byte(fingerprint))
	return h.Sum(nil)
}

func errToken(token string) error {
	return errValue("NextToken", token, "The token is invalid.")
}

// Page applies EC2's MaxResults and NextToken to ids, the IDs the request
// selects, sorted in ascending order without duplicates. It reads
// MaxResults and NextToken from p.
//
// Without MaxResults every ID after the token's position is returned (all
// of them without a token). With MaxResults, which must lie in [min, max]
// (5 and 1000 for most Describe calls), at most that many are returned, and
// next is a token for the rest when more remain, "" otherwise; EC2 never
// needs an empty last page. A MaxResults out of range is refused as EC2
// does, with InvalidParameterValue "Value ( 1 ) for parameter maxResults is
// invalid. Expecting a value greater than 5." (or "less than MAX"); a token
// that does not decode under fingerprint is refused as Decode says. An
// empty NextToken counts as none.
func (t *Tokens) Page(p *Params, ids []string, fingerprint string, min, max int) (page []string, next string, err error) {
	limit := -1
	if p.Has("MaxResults") {
		n, err := p.Int("MaxResults", 0)
		if err != nil {
			return nil, "", err
		}
		switch {
		case n < min:
			return nil, "", errValue("maxResults", fmt.Sprint(n), fmt.Sprintf("Expecting a value greater than %d.", min))
		case n > max:
			return nil, "", errValue("maxResults", fmt.Sprint(n), fmt.Sprintf("Expecting a value less than %d.", max))
		}
		limit = n
	}
	start := 0
	if tok := p.String("NextToken"); tok != "" {
		pos, err := t.Decode(tok, fingerprint)
		if err != nil {
			return nil, "", err
		}
		// The first ID after pos, whether or not pos itself still exists.
		start = sort.Search(len(ids), func(i int) bool { return ids[i] > pos })
	}
	rest := ids[start:]
	if limit < 0 || len(rest) <= limit {
		return rest, "", nil
	}
	page = rest[:limit]
	return page, t.Encode(page[len(page)-1], fingerprint), nil
}

// Fingerprint returns a digest of what a paginated request selects, for
// Encode and Decode: its filters, taken in any order (filters sorted by
// name and values, duplicate values dropped), and extra strings in the
// order given, such as the action, the account and any other selecting
// parameter (Owner.N, ExecutableBy.N). MaxResults does not belong in it:
// EC2 lets a client change the page size between pages.
func Fingerprint(filters []Filter, extra ...string) string {
	type norm struct {
		name   string
		values []string
	}
	fs := make([]norm, len(filters))
	for i, f := range filters {
		vs := slices.Clone(f.Values)
		slices.Sort(vs)
		fs[i] = norm{f.Name, slices.Compact(vs)}
	}
	slices.SortFunc(fs, func(a, b norm) int {
		return cmp.Or(cmp.Compare(a.name, b.name), slices.Compare(a.values, b.values))
	})
	h := sha256.New()
	var buf []byte
	str := func(s string) {
		buf = binary.AppendUvarint(buf[:0], uint64(len(s)))
		h.Write(buf)
		h.Write([]byte(s))
	}
	count := func(n int) {
		buf = binary.AppendUvarint(buf[:0], uint64(n))
		h.Write(buf)
	}
	count(len(fs))
	for _, f := range fs {
		str(f.name)
		count(len(f.values))
		for _, v := range f.values {
			str(v)
		}
	}
	count(len(extra))
	for _, e := range extra {
		str(e)
	}
	return hex.EncodeToString(h.Sum(nil))
}
