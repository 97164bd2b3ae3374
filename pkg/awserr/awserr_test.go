package awserr

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestFrom(t *testing.T) {
	errGone := errors.New("no such thing")
	rules := []Rule{{Err: errGone, Code: "NoSuchKey", Detail: true}}
	cases := []struct {
		name, code, msg string
		err             error
		status          int
	}{
		{"rule with the sentinel's words dropped", "NoSuchKey", "The thing 'x' does not exist", fmt.Errorf("%w: The thing 'x' does not exist", errGone), 404},
		{"wrapped further", "NoSuchKey", "k: no such thing", fmt.Errorf("k: %w", errGone), 404},
		{"an *Error passes through", "BadDigest", "mine", fmt.Errorf("op: %w", New("BadDigest", "mine")), 400},
		{"deadline", "RequestTimeout", codes["RequestTimeout"].message, fmt.Errorf("x: %w", context.DeadlineExceeded), 400},
		{"unknown", Internal, codes[Internal].message, errors.New("disk on fire"), 500},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := From(tc.err, rules)
			if got.Code != tc.code || got.Message != tc.msg || got.Status != tc.status {
				t.Fatalf("got %+v", got)
			}
		})
	}
	if st, ok := Status("NoSuchCode"); ok || st != 0 {
		t.Fatal("unknown code has a status")
	}
	if New("NoSuchCode", "m").Status != 500 {
		t.Fatal("unknown code is not 500")
	}
}
