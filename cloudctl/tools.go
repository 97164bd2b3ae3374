package main

import (
	"context"
	"io"
	"os"

	"github.com/koala-cloud/koala/cloudctl/internal/tools"
)

// isToolVerb reports whether verb is one of the image bundling verbs
// (bundle-image, upload-bundle, register, install-image, ...).
func isToolVerb(verb string) bool { return tools.IsVerb(verb) }

// toolCommand runs `cloudctl VERB ...` for an image bundling verb. The
// settings not given as flags come from the environment an eucarc sets.
func toolCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return tools.Run(ctx, args, os.Getenv, stdout, stderr)
}
