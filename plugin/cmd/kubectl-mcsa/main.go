// Command kubectl-mcsa is the kubectl plugin of kubectl-mcsa: `kubectl mcsa …`.
package main

import (
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	// Client-go's authentication plugins (exec, OIDC), as kubectl links them.
	_ "k8s.io/client-go/plugin/pkg/client/auth"

	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/cmd"
)

func main() {
	os.Exit(cmd.Execute(genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}))
}
