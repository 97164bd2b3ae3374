package netfilter

import (
	"context"
	"strings"
	"testing"
)

func TestRunnerMissingBinary(t *testing.T) {
	err := Runner{Path: "/nonexistent/nft"}.Apply(context.Background(), RemoveScript("br0"))
	if err == nil || !strings.Contains(err.Error(), "apply nft script") {
		t.Fatalf("Apply with a missing nft = %v, want a wrapped exec error", err)
	}
}

func TestRunnerReportsNftErrors(t *testing.T) {
	requireNft(t)
	err := Runner{}.Check(context.Background(), "table inet koala {\n\tchain c { bogus }\n}\n")
	if err == nil {
		t.Fatal("Check accepted a broken script")
	}
	if !strings.Contains(err.Error(), "syntax error") {
		t.Errorf("error %q does not carry nft's message", err)
	}
}
