package cmd

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/install"
)

// InstallOptions are `kubectl mcsa install`'s.
type InstallOptions struct {
	*common
	Params  install.Params
	DryRun  string
	Wait    bool
	Timeout time.Duration
}

func newInstallCmd(c *common) *cobra.Command {
	o := &InstallOptions{common: c}
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install the importer and the automount webhook in a cluster",
		Long: `Install the ServiceAccountImport API, the importer controller and the automount webhook in
the cluster of the current (or --context) context, from the manifests built into this plugin,
with server-side apply. Running it again changes nothing unless something drifted.`,
		Example: `  kubectl mcsa install --context cluster1 --wait
  kubectl mcsa install --image registry.example/mcsa-controller:v0.1.0
  kubectl mcsa install --dry-run=client   # print the manifests`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&o.Params.Image, "image", "", "controller image (default "+install.DefaultImage+" at the plugin's version)")
	cmd.Flags().StringVar(&o.DryRun, "dry-run", "none", `"client" prints the manifests, "server" sends them with dryRun so the API server validates them`)
	cmd.Flags().Lookup("dry-run").NoOptDefVal = "client"
	cmd.Flags().BoolVar(&o.Wait, "wait", false, "wait until the controller is available and the webhook has its CA")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 3*time.Minute, "how long --wait waits")
	return cmd
}

// Validate checks the flags.
func (o *InstallOptions) Validate() error {
	switch o.DryRun {
	case "none", "client", "server":
		return nil
	}
	return fmt.Errorf(`--dry-run must be "none", "client" or "server", not %q`, o.DryRun)
}

// Run renders and applies.
func (o *InstallOptions) Run(ctx context.Context) error {
	rendered, err := install.Render(o.Params)
	if err != nil {
		return err
	}
	if o.DryRun == "client" {
		_, err := o.streams.Out.Write(rendered)
		return err
	}
	objs, err := install.Objects(rendered)
	if err != nil {
		return err
	}
	cl, err := o.clients()
	if err != nil {
		return err
	}
	in := &install.Installer{Clients: cl, UI: o.ui, DryRun: o.DryRun == "server"}
	o.ui.Step("installing kubectl-mcsa in %s (%d objects)…", cl.Describe(), len(objs))
	results, err := in.Apply(ctx, objs)
	for _, r := range results {
		suffix := ""
		if in.DryRun {
			suffix = " (server dry run)"
		}
		fmt.Fprintln(o.streams.Out, r.String()+suffix)
	}
	if err != nil {
		return err
	}
	if o.Wait && !in.DryRun {
		if err := in.Wait(ctx, objs, o.Timeout); err != nil {
			return err
		}
	}
	if !in.DryRun {
		o.ui.Done("installed in %s", cl.Describe())
		o.ui.Info("Next: let this cluster import from another one with `kubectl mcsa bootstrap THIS_CLUSTER OTHER_CLUSTER`.")
	}
	return nil
}

// UninstallOptions are `kubectl mcsa uninstall`'s.
type UninstallOptions struct {
	*common
	DeleteImports bool
	DryRun        bool
}

func newUninstallCmd(c *common) *cobra.Command {
	o := &UninstallOptions{common: c}
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove what install created; imports and cluster credentials are kept unless asked",
		Long: `Remove the importer, the webhook and their permissions. The ServiceAccountImport API, the
imports and their secrets, and the namespace ` + v1alpha1.DefaultNamespace + ` (which holds the
cluster credentials) are kept unless --delete-imports is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.Run(cmd.Context()) },
	}
	cmd.Flags().BoolVar(&o.DeleteImports, "delete-imports", false, "also delete the CRD (so every import and its secret) and the namespace with the cluster credentials")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "send the deletions with dryRun: nothing is removed")
	return cmd
}

// Run deletes.
func (o *UninstallOptions) Run(ctx context.Context) error {
	rendered, err := install.Render(install.Params{})
	if err != nil {
		return err
	}
	objs, err := install.Objects(rendered)
	if err != nil {
		return err
	}
	cl, err := o.clients()
	if err != nil {
		return err
	}
	in := &install.Installer{Clients: cl, UI: o.ui, DryRun: o.DryRun}
	imports := in.CountImports(ctx)
	results, err := in.Uninstall(ctx, objs, o.DeleteImports)
	for _, r := range results {
		fmt.Fprintln(o.streams.Out, r.String())
	}
	if err != nil {
		return err
	}
	if !o.DeleteImports {
		what := "the ServiceAccountImport API"
		if imports >= 0 {
			what = fmt.Sprintf("the ServiceAccountImport API with %d import(s) and their secrets", imports)
		}
		o.ui.Info("Kept %s, and namespace %s with the cluster credentials. Remove them too with `kubectl mcsa uninstall --delete-imports%s`.", what, v1alpha1.DefaultNamespace, cl.ContextFlag())
	}
	return nil
}

func newRenderCmd(c *common) *cobra.Command {
	var p install.Params
	cmd := &cobra.Command{
		Use:   "render",
		Short: "Print the manifests install would apply (same as `install --dry-run=client`)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			rendered, err := install.Render(p)
			if err != nil {
				return err
			}
			_, err = c.streams.Out.Write(rendered)
			return err
		},
	}
	cmd.Flags().StringVar(&p.Image, "image", "", "controller image (default "+install.DefaultImage+" at the plugin's version)")
	return cmd
}
