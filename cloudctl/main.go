// Command cloudctl is the cloud controller: the EC2 Query API, accounts and
// credentials, and the internal API the other daemons ask.
//
//	cloudctl serve [-config FILE]
//	cloudctl admin init [-config FILE] [-walrus-key FILE]
//	cloudctl admin account create NAME [-email ADDR] | list | delete NAME
//	cloudctl admin access-key create ACCOUNT | list ACCOUNT | delete KEY-ID
//	cloudctl admin credentials ACCOUNT [-dir DIR]
//	cloudctl admin signing-cert upload ACCOUNT CERT.pem
//	cloudctl admin image-defaults [-kernel aki-...] [-ramdisk ari-...]
//	cloudctl bundle-image | upload-bundle | register | download-bundle | unbundle | delete-bundle | install-image ...
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/koala-cloud/koala/cloudctl/internal/server"
	"github.com/koala-cloud/koala/pkg/daemon"
)

const usage = `usage:
  cloudctl serve [-config FILE]
  cloudctl admin init [-config FILE] [-walrus-key FILE] [-cloud-cert FILE -cloud-key FILE]
  cloudctl admin account create NAME [-email ADDR] [-config FILE]
  cloudctl admin account list [-config FILE]
  cloudctl admin account delete NAME [-config FILE]
  cloudctl admin access-key create ACCOUNT [-config FILE]
  cloudctl admin access-key list ACCOUNT [-config FILE]
  cloudctl admin access-key delete KEY-ID [-config FILE]
  cloudctl admin credentials ACCOUNT [-dir DIR] [-config FILE]
  cloudctl admin signing-cert upload ACCOUNT CERT.pem [-config FILE]
  cloudctl admin image-defaults [-kernel aki-...] [-ramdisk ari-...] [-config FILE]
  cloudctl admin vmtype list [-config FILE]
  cloudctl admin vmtype set NAME -cores N -memory MIB -disk GIB [-config FILE]
  cloudctl admin vmtype delete NAME [-config FILE]
  cloudctl admin cluster register ZONE URL [-config FILE]
  cloudctl admin cluster list [-config FILE]
  cloudctl admin cluster deregister ZONE [-config FILE]
  cloudctl admin cluster ebs ZONE URL [-config FILE]
  cloudctl admin cluster addresses ZONE [ADDR|FIRST-LAST|CIDR ...] [-auto-public-ip] [-config FILE]
  cloudctl admin component-key NAME [-o FILE] [-config FILE]   (a cluster's or node's key)

Image bundles (run a verb with -h for its flags):
  cloudctl bundle-image -i IMAGE [-d DIR] [-r ARCH] [-kernel aki-..|-ramdisk ari-..|-type kernel|ramdisk] [-p NAME] [-part-size SIZE]
  cloudctl upload-bundle -b BUCKET[/PREFIX] -m MANIFEST
  cloudctl register BUCKET/[PREFIX/]NAME.manifest.xml -n NAME [-d DESC] [-a ARCH] [-kernel ..] [-ramdisk ..]
  cloudctl download-bundle -b BUCKET[/PREFIX] -m NAME.manifest.xml [-d DIR]
  cloudctl unbundle -m MANIFEST [-d DIR] [-privatekey KEY]
  cloudctl delete-bundle -b BUCKET[/PREFIX] -m NAME.manifest.xml [-clear]
  cloudctl install-image -i IMAGE -b BUCKET[/PREFIX] -n NAME [-description DESC] [-timeout 30m] [...]

FILE defaults to $CLOUDCTL_CONFIG, else var/cloudctl/config.json when it exists.
The admin verbs talk to the running cloudctl over its admin socket, or
open its database when it is not running.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) >= 1 && args[0] == "serve":
		return serve(ctx, args[1:], stderr)
	case len(args) >= 2 && args[0] == "admin":
		return adminCommand(ctx, args[1:], stdout, stderr)
	case len(args) >= 1 && isToolVerb(args[0]):
		return toolCommand(ctx, args, stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	return 2
}

func serve(ctx context.Context, args []string, stderr io.Writer) int {
	return daemon.ServeCommand[server.Config, *server.Server]{
		Name: "cloudctl", Load: server.Find, New: server.New,
		Level: func(c server.Config) string { return c.LogLevel },
	}.Run(ctx, args, stderr)
}
