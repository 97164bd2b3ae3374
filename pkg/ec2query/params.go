package ec2query

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/koala-cloud/koala/pkg/awserr"
)

// CommonParams are the parameters every Query request may carry for the
// protocol and for authentication rather than for the action: the action
// and version, the SigV2 fields and the presigned SigV4 fields. The API
// edge reads Action and Version and Skips the rest once the signature is
// verified, so that they are not reported as unknown. DryRun is not among
// them: an action that honours it reads it.
var CommonParams = []string{
	"Action", "Version",
	"AWSAccessKeyId", "Signature", "SignatureMethod", "SignatureVersion", "Timestamp", "Expires", "SecurityToken",
	"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature",
	"X-Amz-Security-Token",
}

// maxIndex is the largest N accepted in a list member name X.N: EC2's
// indexes are Java ints.
const maxIndex = 1<<31 - 1

// Params gives typed, validated access to the parameters of one request and
// remembers which names were read, so that the caller can refuse the rest
// with UnknownParameter (see Unused and Unknown).
//
// The Params returned by Structs share that memory with their parent and
// see only their own fields, without the "Prefix.N." part. A Params is not
// safe for concurrent use.
type Params struct {
	st     *state
	prefix string // "" at the root, "IpPermissions.1." below it
}

// state is what a root Params and all its Structs share.
type state struct {
	vals  url.Values
	names []string // every name in vals, sorted
	read  map[string]bool
}

// NewParams returns a Params over v, as Parse returns it. v is not copied
// and must not change while the Params is in use.
func NewParams(v url.Values) *Params {
	names := make([]string, 0, len(v))
	for n := range v {
		names = append(names, n)
	}
	sort.Strings(names)
	return &Params{st: &state{vals: v, names: names, read: map[string]bool{}}}
}

// full returns the name of the parameter as the client sent it.
func (p *Params) full(name string) string { return p.prefix + name }

// lookup marks name read and returns its first value.
func (p *Params) lookup(name string) (string, bool) {
	n := p.full(name)
	p.st.read[n] = true
	vs, ok := p.st.vals[n]
	if !ok || len(vs) == 0 {
		return "", false
	}
	return vs[0], true
}

// String returns the first value of the parameter name, or "" if the
// request does not have it, and marks it read.
func (p *Params) String(name string) string {
	v, _ := p.lookup(name)
	return v
}

// Has reports whether the request has the parameter name, empty or not,
// and marks it read.
func (p *Params) Has(name string) bool {
	_, ok := p.lookup(name)
	return ok
}

// Required returns the parameter name, or a MissingParameter error ("The
// request must contain the parameter NAME", NAME as the client would send
// it) if the request does not have it. A parameter sent with an empty value
// is present: the action decides whether empty is valid.
func (p *Params) Required(name string) (string, error) {
	v, ok := p.lookup(name)
	if !ok {
		return "", errMissing(p.full(name))
	}
	return v, nil
}

// Int returns the parameter name as an integer, def if the request does not
// have it, or an InvalidParameterValue error if it is not a decimal integer
// that fits in 32 bits (EC2's integers are Java ints). A sign is allowed;
// spaces are not.
func (p *Params) Int(name string, def int) (int, error) {
	v, ok := p.lookup(name)
	if !ok {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0, errValue(p.full(name), v, "Expecting an integer.")
	}
	return int(n), nil
}

// Bool returns the parameter name as a boolean: "true" or "false" in any
// case, false if the request does not have it, and an InvalidParameterValue
// error for anything else (including an empty value).
func (p *Params) Bool(name string) (bool, error) {
	v, ok := p.lookup(name)
	switch {
	case !ok:
		return false, nil
	case strings.EqualFold(v, "true"):
		return true, nil
	case strings.EqualFold(v, "false"):
		return false, nil
	}
	return false, errValue(p.full(name), v, "Expecting 'true' or 'false'.")
}

// List returns the members of the list parameter prefix: the values of
// prefix.1, prefix.2, ... (EC2's "X.N" form, e.g. InstanceId.1), ordered by
// N. Gaps are allowed (InstanceId.3 and InstanceId.7 give two members).
// Every member returned is marked read.
//
// N must be a positive decimal integer without leading zeros; prefix.0,
// prefix.01 and an N beyond 2^31-1 give an InvalidParameterValue error.
// Names whose suffix is not all digits (prefix.x, prefix.1.Foo) and the
// bare name prefix are not members: they stay unread, so the caller answers
// UnknownParameter, as EC2 does when a client sends InstanceId instead of
// InstanceId.1.
func (p *Params) List(prefix string) ([]string, error) {
	type member struct {
		n     int
		value string
	}
	var ms []member
	head := p.full(prefix) + "."
	for _, name := range p.st.withPrefix(head) {
		idx := name[len(head):]
		if !allDigits(idx) {
			continue
		}
		n, err := parseIndex(p.full(prefix), name, idx)
		if err != nil {
			return nil, err
		}
		p.st.read[name] = true
		ms = append(ms, member{n, p.st.vals[name][0]})
	}
	slices.SortFunc(ms, func(a, b member) int { return a.n - b.n })
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.value
	}
	return out, nil
}

// Structs returns the members of the list of structures prefix: one Params
// per N among the names prefix.N.Field..., ordered by N, each seeing its
// fields without the "prefix.N." part. Lists nest: for
// IpPermissions.1.IpRanges.2.CidrIp, Structs("IpPermissions")[0] has
// Structs("IpRanges"), whose member reads String("CidrIp").
//
// Structs marks nothing read by itself: a field is read when a member reads
// it, so a field the caller does not know stays in Unused. N is checked as
// in List.
func (p *Params) Structs(prefix string) ([]*Params, error) {
	type member struct {
		n    int
		head string
	}
	var ms []member
	head := p.full(prefix) + "."
	seen := map[string]bool{}
	for _, name := range p.st.withPrefix(head) {
		idx, field, ok := strings.Cut(name[len(head):], ".")
		if !ok || field == "" || !allDigits(idx) || seen[idx] {
			continue
		}
		n, err := parseIndex(p.full(prefix), name, idx)
		if err != nil {
			return nil, err
		}
		seen[idx] = true
		ms = append(ms, member{n, head + idx + "."})
	}
	slices.SortFunc(ms, func(a, b member) int { return a.n - b.n })
	out := make([]*Params, len(ms))
	for i, m := range ms {
		out[i] = &Params{st: p.st, prefix: m.head}
	}
	return out, nil
}

// Filter is one Filter.N of a Describe request: a name, and values of which
// any one may match.
type Filter struct {
	Name   string
	Values []string
}

// maxFilterValue is the longest filter value EC2 accepts, in characters.
const maxFilterValue = 255

// Filters returns the request's filters, Filter.N.Name with its values
// Filter.N.Value.M, in the order of N and M. A filter without Name is a
// MissingParameter error; a value longer than 255 characters is refused
// with FilterLimitExceeded, as EC2 does ("The maximum length for a filter
// value is 255 characters"). A filter may have no values. Whether a name is
// valid for the action is for the caller to decide (EC2 answers
// InvalidParameterValue "The filter 'NAME' is invalid").
func (p *Params) Filters() ([]Filter, error) {
	subs, err := p.Structs("Filter")
	if err != nil {
		return nil, err
	}
	out := make([]Filter, 0, len(subs))
	for _, s := range subs {
		name, err := s.Required("Name")
		if err != nil {
			return nil, err
		}
		values, err := s.List("Value")
		if err != nil {
			return nil, err
		}
		for _, v := range values {
			if utf8.RuneCountInString(v) > maxFilterValue {
				return nil, newError("FilterLimitExceeded", fmt.Sprintf("The maximum length for a filter value is %d characters", maxFilterValue))
			}
		}
		out = append(out, Filter{Name: name, Values: values})
	}
	return out, nil
}

// Skip marks the given parameters read without reading them, for names the
// caller has dealt with elsewhere (see CommonParams).
func (p *Params) Skip(names ...string) {
	for _, n := range names {
		p.st.read[p.full(n)] = true
	}
}

// Unused returns, sorted, the names this Params sees that were never read,
// as it sees them (without the "prefix.N." part of a Structs member).
func (p *Params) Unused() []string {
	var out []string
	for _, name := range p.st.withPrefix(p.prefix) {
		if !p.st.read[name] {
			out = append(out, name[len(p.prefix):])
		}
	}
	return out
}

// Unknown returns nil when every parameter was read, and otherwise the
// UnknownParameter error EC2 answers: "The parameter NAME is not
// recognized", where NAME is the first dotted segment of the first unread
// name. EC2 names the top-level parameter it could not bind: it answers
// "The parameter Filter is not recognized" for Filter.1.Value sent without
// ".M", and "The parameter Item is not recognized" for Item.1.ToPort.
func (p *Params) Unknown() error {
	unused := p.Unused()
	if len(unused) == 0 {
		return nil
	}
	top, _, _ := strings.Cut(p.full(unused[0]), ".")
	return awserr.New("UnknownParameter", "The parameter "+top+" is not recognized")
}

// withPrefix returns the sorted names that start with prefix.
func (s *state) withPrefix(prefix string) []string {
	i := sort.SearchStrings(s.names, prefix)
	j := i
	for j < len(s.names) && strings.HasPrefix(s.names[j], prefix) {
		j++
	}
	return s.names[i:j]
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseIndex checks idx, the all-digit index of the parameter name, a
// member of the list named list.
func parseIndex(list, name, idx string) (int, error) {
	if idx[0] == '0' || len(idx) > 10 {
		return 0, errIndex(list, name)
	}
	n, err := strconv.Atoi(idx)
	if err != nil || n > maxIndex {
		return 0, errIndex(list, name)
	}
	return n, nil
}

// errMissing is EC2's answer for a required parameter that is absent.
func errMissing(name string) error {
	return awserr.New("MissingParameter", "The request must contain the parameter "+name)
}

// errValue is EC2's answer for a value that does not parse, in the wording
// EC2 uses for maxResults ("Value ( 1 ) for parameter maxResults is
// invalid. Expecting a value greater than 5.").
func errValue(name, value, reason string) error {
	return awserr.New("InvalidParameterValue", fmt.Sprintf("Value ( %s ) for parameter %s is invalid. %s", clip(value), name, reason))
}

// errIndex refuses the member name of the list named list for its index.
func errIndex(list, name string) error {
	return errValue(list, name, "List indexes must be positive integers without leading zeros.")
}

// newError returns an *awserr.Error for code. A code missing from awserr's
// table would be answered as a 500 by awserr.New; it is a client error
// here, so it gets 400 until the table has it.
func newError(code, message string) error {
	if _, ok := awserr.Status(code); ok {
		return awserr.New(code, message)
	}
	return &awserr.Error{Code: code, Status: 400, Message: message}
}

// clip shortens a client value echoed in a message.
func clip(s string) string {
	const max = 256
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}
