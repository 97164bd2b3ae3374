package ec2query

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// DefaultMaxBody is the body limit Parse applies when given a limit of zero
// or less: 1 MiB, far above the largest EC2 request (RunInstances with
// 16 KiB of base64 user data and every optional parameter).
const DefaultMaxBody = 1 << 20

// Errors returned by Parse. The API edge maps them to AWS codes.
var (
	// ErrBodyTooLarge reports a POST body longer than the limit given to
	// Parse, whether announced by Content-Length or found while reading.
	ErrBodyTooLarge = errors.New("request body too large")
	// ErrMalformed reports a query string or form body that does not decode:
	// a bad percent escape, or a name or value that is not valid UTF-8.
	ErrMalformed = errors.New("malformed query parameters")
	// ErrContentType reports a POST whose non-empty body is not
	// application/x-www-form-urlencoded.
	ErrContentType = errors.New("unsupported content type")
	// ErrMethod reports a request method other than GET, HEAD or POST, the
	// methods the Query protocol uses.
	ErrMethod = errors.New("unsupported method")
)

// formType is the only body type a Query request carries.
const formType = "application/x-www-form-urlencoded"

// Parse reads the parameters of an EC2 Query request.
//
// For GET and HEAD they are the URL query. For POST they are the
// application/x-www-form-urlencoded body followed by the URL query: both
// are kept, body values first, so that Values.Get and Params see the body's
// value when a name appears in both (the order net/http's ParseForm uses;
// SigV4 signs the query and the body alike, so either place is
// authenticated). A POST body with another Content-Type is refused with
// ErrContentType; a missing Content-Type is read as a form, as older
// clients omit it. At most maxBody bytes of body are read (DefaultMaxBody
// if maxBody <= 0); a longer body is refused with ErrBodyTooLarge. An error
// from reading the body (for example a payload hash mismatch reported by
// the sigv4 reader) is returned wrapped.
//
// A name that occurs more than once keeps all its values in order; Params
// reads the first. EC2 does not document what it does with repeated names,
// and since signatures cover every occurrence, keeping the first is a safe
// and predictable choice. Names are case-sensitive, as in EC2 ("instanceId"
// is not "InstanceId"). "+" decodes to a space, as in any form; ";" is an
// ordinary character, not a separator. Empty segments ("a=1&&b=2") and
// segments with an empty name ("=x") are skipped.
func Parse(r *http.Request, maxBody int64) (url.Values, error) {
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
	}
	v := url.Values{}
	switch r.Method {
	case http.MethodGet, http.MethodHead, "":
	case http.MethodPost:
		body, err := readBody(r, maxBody)
		if err != nil {
			return nil, err
		}
		if len(body) > 0 {
			if err := checkFormType(r.Header.Get("Content-Type")); err != nil {
				return nil, err
			}
			if err := parseInto(v, string(body)); err != nil {
				return nil, fmt.Errorf("body: %w", err)
			}
		}
	default:
		return nil, fmt.Errorf("%w: %s", ErrMethod, r.Method)
	}
	if r.URL != nil {
		if err := parseInto(v, r.URL.RawQuery); err != nil {
			return nil, fmt.Errorf("query: %w", err)
		}
	}
	return v, nil
}

// readBody reads r.Body up to max bytes.
func readBody(r *http.Request, max int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > max {
		return nil, fmt.Errorf("%w: Content-Length %d exceeds %d bytes", ErrBodyTooLarge, r.ContentLength, max)
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, max)
	}
	return b, nil
}

// checkFormType accepts an absent Content-Type or a form type with any
// parameters (clients send "; charset=utf-8" and "; charset=UTF-8").
func checkFormType(ct string) error {
	if strings.TrimSpace(ct) == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || !strings.EqualFold(mt, formType) {
		return fmt.Errorf("%w: %q", ErrContentType, ct)
	}
	return nil
}

// parseInto adds the parameters of the form-encoded string s to v.
func parseInto(v url.Values, s string) error {
	for s != "" {
		var seg string
		seg, s, _ = strings.Cut(s, "&")
		if seg == "" {
			continue
		}
		rawName, rawValue, _ := strings.Cut(seg, "=")
		name, err := url.QueryUnescape(rawName)
		if err != nil {
			return fmt.Errorf("%w: name %q: bad escape", ErrMalformed, truncate(rawName))
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			return fmt.Errorf("%w: value of %q: bad escape", ErrMalformed, truncate(name))
		}
		if !utf8.ValidString(name) || !utf8.ValidString(value) {
			return fmt.Errorf("%w: parameter %q is not valid UTF-8", ErrMalformed, truncate(name))
		}
		if name == "" {
			continue
		}
		v[name] = append(v[name], value)
	}
	return nil
}

// truncate shortens s for an error message.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
