package cmd

import (
	"context"
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/version"
)

// VersionOptions are `kubectl mcsa version`'s.
type VersionOptions struct {
	genericiooptions.IOStreams

	Short bool
}

// NewVersionOptions are version's defaults.
func NewVersionOptions(streams genericiooptions.IOStreams) *VersionOptions {
	return &VersionOptions{IOStreams: streams}
}

// NewCmdVersion is `kubectl mcsa version`.
func NewCmdVersion(streams genericiooptions.IOStreams) *cobra.Command {
	o := NewVersionOptions(streams)
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the plugin's version",
		Args:  cobra.NoArgs,
		RunE:  runE(o),
	}
	cmd.Flags().BoolVar(&o.Short, "short", o.Short, "print only the version number")
	return cmd
}

// Complete has nothing to derive.
func (o *VersionOptions) Complete(*cobra.Command, []string) error { return nil }

// Validate has nothing to check.
func (o *VersionOptions) Validate() error { return nil }

// Run prints the version.
func (o *VersionOptions) Run(context.Context) error {
	if o.Short {
		_, err := fmt.Fprintln(o.Out, version.Version)
		return err
	}
	_, err := fmt.Fprintf(o.Out, "kubectl-mcsa %s (%s, %s/%s)\n", version.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err
}
