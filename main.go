// Command keydesk is a self-hosted console for the API keys and secret keys
// of an e-mail sending platform. See README.md; the commands live in cli/.
package main

import (
	"context"
	"os"

	"keydesk/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
