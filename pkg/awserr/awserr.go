package awserr

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Error is an AWS API error: a code, the HTTP status AWS answers it with,
// and a message for the client.
type Error struct {
	Code    string
	Status  int
	Message string
	// Fields holds extra elements some S3 errors carry (BucketName, Key,
	// ArgumentName, ...), written in the order given.
	Fields []Field
}

// Field is one extra element of an S3 error document.
type Field struct{ Name, Value string }

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// New returns the error for code with the status from the code table and
// the given message; an empty message takes the table's default.
func New(code, message string) *Error {
	st, ok := codes[code]
	if !ok {
		st = status{http.StatusInternalServerError, "We encountered an internal error. Please try again."}
	}
	if message == "" {
		message = st.message
	}
	return &Error{Code: code, Status: st.code, Message: message}
}

// Newf is New with a formatted message.
func Newf(code, format string, args ...any) *Error {
	return New(code, fmt.Sprintf(format, args...))
}

// With returns a copy of e with an extra field appended.
func (e *Error) With(name, value string) *Error {
	c := *e
	c.Fields = append(append([]Field(nil), e.Fields...), Field{name, value})
	return &c
}

// Rule maps a domain error to an AWS code. The client message is Message,
// or with Detail the domain error's own text (without the sentinel's words
// when it begins with them, as fmt.Errorf("%w: ...") makes it), or else
// the code's default.
type Rule struct {
	Err     error
	Code    string
	Message string
	Detail  bool
}

// Internal is the code for anything no rule matches.
const Internal = "InternalError"

// From maps err to an *Error: an *Error in the chain is returned as is, then
// the first rule whose Err matches (errors.Is) decides, then context
// deadlines become RequestTimeout; anything else is an InternalError with a
// generic message. The caller logs the cause of an InternalError.
func From(err error, rules []Rule) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	for _, r := range rules {
		if errors.Is(err, r.Err) {
			msg := r.Message
			if r.Detail {
				msg = strings.TrimPrefix(err.Error(), r.Err.Error()+": ")
			}
			return New(r.Code, msg)
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return New("RequestTimeout", "")
	}
	return New(Internal, "")
}
