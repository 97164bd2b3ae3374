package ec2query

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// DefaultVersion is the API version whose namespace Write uses when the
// request named none: the current (and long-lived) EC2 API version.
const DefaultVersion = "2016-11-15"

// Namespace returns the XML namespace of EC2 responses for API version
// ("http://ec2.amazonaws.com/doc/VERSION/"), DefaultVersion if version is
// empty.
func Namespace(version string) string {
	if version == "" {
		version = DefaultVersion
	}
	return "http://ec2.amazonaws.com/doc/" + version + "/"
}

// Write writes a successful EC2 Query response: status 200, Content-Type
// text/xml;charset=UTF-8 and the body
//
//	<?xml version="1.0" encoding="UTF-8"?>
//	<ACTIONResponse xmlns="http://ec2.amazonaws.com/doc/VERSION/"><requestId>ID</requestId>...</ACTIONResponse>
//
// where ... are the fields of v, encoded by encoding/xml in field order.
// VERSION echoes the request's Version, whatever it is (EC2 answers in the
// namespace of the version asked for), DefaultVersion if empty.
//
// v is a struct or a pointer to one, or nil for a response with nothing
// but the request ID. Its fields carry encoding/xml tags with EC2's
// lowerCamel element names. A list takes EC2's shape with a tag
// `xml:"fooSet>item"`: <fooSet><item>...</item></fooSet>, and an empty
// <fooSet></fooSet> for an empty or nil slice, as EC2 writes <fooSet/>
// (clients such as botocore read an absent set as a missing key). Booleans
// come out as true and false; use Time for timestamps. v's own XMLName is
// not used, and v may not have attributes.
//
// The body is built before anything is written, so an encoding error is
// returned with the response untouched and the caller can still answer
// with an error.
func Write(w http.ResponseWriter, action, version, requestID string, v any) error {
	body, err := Marshal(action, version, requestID, v)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/xml;charset=UTF-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(body)
	return err
}

// Marshal returns the body Write sends.
func Marshal(action, version, requestID string, v any) ([]byte, error) {
	var inner []byte
	if v != nil {
		var b bytes.Buffer
		e := xml.NewEncoder(&b)
		if err := e.EncodeElement(v, xml.StartElement{Name: xml.Name{Local: "x"}}); err != nil {
			return nil, fmt.Errorf("encode %sResponse: %w", action, err)
		}
		if err := e.Close(); err != nil {
			return nil, fmt.Errorf("encode %sResponse: %w", action, err)
		}
		// The fields of v, without the placeholder element around them.
		// encoding/xml writes an element as "<x>" exactly unless v adds
		// attributes, which an EC2 response element does not have.
		s := b.Bytes()
		if len(s) == 0 {
			s = []byte("<x></x>") // a nil pointer: no fields
		}
		if !bytes.HasPrefix(s, []byte("<x>")) || !bytes.HasSuffix(s, []byte("</x>")) {
			return nil, fmt.Errorf("encode %sResponse: %T is not a struct without attributes", action, v)
		}
		inner = s[len("<x>") : len(s)-len("</x>")]
	}
	// The envelope by hand: a large answer (thousands of instances) is
	// then copied once more, not three times.
	name := action + "Response"
	if !validName(name) {
		return nil, fmt.Errorf("encode %sResponse: bad action name", action)
	}
	var b bytes.Buffer
	b.Grow(len(xml.Header) + 2*len(name) + len(inner) + 160)
	b.WriteString(xml.Header)
	b.WriteString("<" + name + ` xmlns="`)
	_ = xml.EscapeText(&b, []byte(Namespace(version)))
	b.WriteString(`"><requestId>`)
	_ = xml.EscapeText(&b, []byte(requestID))
	b.WriteString("</requestId>")
	b.Write(inner)
	b.WriteString("</" + name + ">")
	return b.Bytes(), nil
}

// validName reports whether s is an XML element name made of ASCII
// letters and digits, as every EC2 action is.
func validName(s string) bool {
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}

// TimeLayout is how EC2 writes timestamps: UTC with milliseconds, e.g.
// 2026-11-21T23:33:28.629Z.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// Time is a timestamp that encodes in EC2's layout (TimeLayout, always in
// UTC) where time.Time would drop trailing zeros of the fraction. Use a
// *Time for an element that may be absent: encoding/xml does not omit
// empty structs.
type Time struct{ time.Time }

// MarshalText writes t in TimeLayout.
func (t Time) MarshalText() ([]byte, error) {
	return []byte(t.UTC().Format(TimeLayout)), nil
}
