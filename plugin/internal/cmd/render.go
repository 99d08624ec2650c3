package cmd

import (
	"context"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/install"
)

// RenderOptions are `kubectl mcsa render`'s.
type RenderOptions struct {
	genericiooptions.IOStreams

	Params install.Params
}

// NewRenderOptions are render's defaults.
func NewRenderOptions(streams genericiooptions.IOStreams) *RenderOptions {
	return &RenderOptions{IOStreams: streams}
}

// NewCmdRender is `kubectl mcsa render`.
func NewCmdRender(streams genericiooptions.IOStreams) *cobra.Command {
	o := NewRenderOptions(streams)
	cmd := &cobra.Command{
		Use:   "render",
		Short: "Print the manifests install would apply (same as `install --dry-run=client`)",
		Args:  cobra.NoArgs,
		RunE:  runE(o),
	}
	cmd.Flags().StringVar(&o.Params.Image, "image", o.Params.Image, "controller image (default "+install.DefaultImage+" at the plugin's version)")
	return cmd
}

// Complete has nothing to derive.
func (o *RenderOptions) Complete(*cobra.Command, []string) error { return nil }

// Validate has nothing to check: the image reference is kustomize's to read.
func (o *RenderOptions) Validate() error { return nil }

// Run prints the manifests; no cluster is involved.
func (o *RenderOptions) Run(context.Context) error {
	rendered, err := install.Render(o.Params)
	if err != nil {
		return err
	}
	_, err = o.Out.Write(rendered)
	return err
}
