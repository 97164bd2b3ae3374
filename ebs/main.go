// Command ebs is a daemon of the cloud that later issues build; for now it
// only reports that it is not built yet, so that every binary exists.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "ebs: not built yet")
	os.Exit(2)
}
