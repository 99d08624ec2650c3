package cmd

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/install"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// UninstallOptions are `kubectl mcsa uninstall`'s.
type UninstallOptions struct {
	genericiooptions.IOStreams
	ui      *ui.UI
	connect clientsFunc

	DeleteImports bool
	DryRun        bool

	clients *kube.Clients
}

// NewUninstallOptions are uninstall's defaults.
func NewUninstallOptions(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *UninstallOptions {
	return &UninstallOptions{IOStreams: streams, ui: ui.New(streams.ErrOut), connect: clientsFor(configFlags)}
}

// NewCmdUninstall is `kubectl mcsa uninstall`.
func NewCmdUninstall(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *cobra.Command {
	o := NewUninstallOptions(streams, configFlags)
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove what install created; imports and cluster credentials are kept unless asked",
		Long: `Remove the importer, the webhook and their permissions. The ServiceAccountImport API, the
imports and their secrets, and the namespace ` + v1alpha1.DefaultNamespace + ` (which holds the
cluster credentials) are kept unless --delete-imports is given.`,
		Args: cobra.NoArgs,
		RunE: runE(o),
	}
	cmd.Flags().BoolVar(&o.DeleteImports, "delete-imports", o.DeleteImports, "also delete the CRD (so every import and its secret) and the namespace with the cluster credentials")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", o.DryRun, "send the deletions with dryRun: nothing is removed")
	return cmd
}

// Complete connects.
func (o *UninstallOptions) Complete(*cobra.Command, []string) error {
	var err error
	o.clients, err = o.connect()
	return err
}

// Validate has nothing to check: both flags are booleans.
func (o *UninstallOptions) Validate() error { return nil }

// Run deletes what install applies, in reverse order.
func (o *UninstallOptions) Run(ctx context.Context) error {
	rendered, err := install.Render(install.Params{})
	if err != nil {
		return err
	}
	objs, err := install.Objects(rendered)
	if err != nil {
		return err
	}
	in := &install.Installer{Clients: o.clients, UI: o.ui, DryRun: o.DryRun}
	imports := in.CountImports(ctx)
	results, err := in.Uninstall(ctx, objs, o.DeleteImports)
	if err := printResults(o.Out, results, false); err != nil {
		return err
	}
	if err != nil {
		return err
	}
	if !o.DeleteImports {
		what := "the ServiceAccountImport API"
		if imports >= 0 {
			what = fmt.Sprintf("the ServiceAccountImport API with %d import(s) and their secrets", imports)
		}
		o.ui.Info("Kept %s, and namespace %s with the cluster credentials. Remove them too with `kubectl mcsa uninstall --delete-imports%s`.", what, v1alpha1.DefaultNamespace, o.clients.ContextFlag())
	}
	return nil
}
