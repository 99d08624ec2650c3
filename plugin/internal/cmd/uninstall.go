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
	DryRun        string

	clients *kube.Clients
	dryRun  kube.DryRun
}

// NewUninstallOptions are uninstall's defaults.
func NewUninstallOptions(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *UninstallOptions {
	return &UninstallOptions{IOStreams: streams, ui: ui.New(streams.ErrOut), connect: clientsFor(configFlags), DryRun: "none"}
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
	// A boolean once (a server dry run): bare --dry-run now is kubectl's, client.
	addDryRunFlag(cmd, &o.DryRun, `"client" prints what would be removed, "server" also sends the deletions with dryRun; "none" removes`)
	return cmd
}

// Complete connects.
func (o *UninstallOptions) Complete(*cobra.Command, []string) error {
	var err error
	o.clients, err = o.connect()
	return err
}

// Validate checks --dry-run.
func (o *UninstallOptions) Validate() error {
	var err error
	o.dryRun, err = kube.ParseDryRun(o.DryRun)
	return err
}

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
	o.clients.DryRun = o.dryRun // deletions are dry through the clients
	in := &install.Installer{Clients: o.clients, UI: o.ui}
	imports := in.CountImports(ctx)
	results, err := in.Uninstall(ctx, objs, o.DeleteImports)
	if err := printWritten(o.Out, results, o.dryRun); err != nil {
		return err
	}
	if err != nil {
		return err
	}
	if o.dryRun != kube.NoDryRun {
		return nil
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
