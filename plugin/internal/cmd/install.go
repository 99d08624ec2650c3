package cmd

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/install"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// InstallOptions are `kubectl mcsa install`'s.
type InstallOptions struct {
	genericiooptions.IOStreams
	ui      *ui.UI
	connect clientsFunc

	Params  install.Params
	DryRun  string
	Wait    bool
	Timeout time.Duration
}

// NewInstallOptions are install's defaults.
func NewInstallOptions(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *InstallOptions {
	return &InstallOptions{
		IOStreams: streams,
		ui:        ui.New(streams.ErrOut),
		connect:   clientsFor(configFlags),
		DryRun:    "none",
		Timeout:   3 * time.Minute,
	}
}

// NewCmdInstall is `kubectl mcsa install`.
func NewCmdInstall(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *cobra.Command {
	o := NewInstallOptions(streams, configFlags)
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install the importer and the automount webhook in a cluster",
		Long: `Install the ServiceAccountImport API, the importer controller and the automount webhook in
the cluster of the current (or --context) context, from the manifests built into this plugin,
with server-side apply. Running it again changes nothing unless something drifted.`,
		Example: `  kubectl mcsa install --context cluster1 --wait
  kubectl mcsa install --image registry.example/mcsa-controller:v0.1.0
  kubectl mcsa install --dry-run=client   # print the manifests
  kubectl mcsa install --cluster-profiles fleet-system   # also publish ClusterProfiles there`,
		Args: cobra.NoArgs,
		RunE: runE(o),
	}
	f := cmd.Flags()
	f.StringVar(&o.Params.Image, "image", o.Params.Image, "controller image (default "+install.DefaultImage+" at the plugin's version)")
	f.StringVar(&o.Params.ClusterProfiles, "cluster-profiles", o.Params.ClusterProfiles, "publish a ClusterProfile per remote cluster in this existing namespace (docs/cluster-profiles.md): installs the ClusterProfile CRD and the controller's Role there")
	f.StringVar(&o.DryRun, "dry-run", o.DryRun, `"client" prints the manifests, "server" sends them with dryRun so the API server validates them`)
	f.Lookup("dry-run").NoOptDefVal = "client"
	f.BoolVar(&o.Wait, "wait", o.Wait, "wait until the controller is available and the webhook has its CA")
	f.DurationVar(&o.Timeout, "timeout", o.Timeout, "how long --wait waits")
	return cmd
}

// Complete has nothing to derive: install connects in Run, and only when it applies, so that
// --dry-run=client works without a cluster.
func (o *InstallOptions) Complete(*cobra.Command, []string) error { return nil }

// Validate checks the flags.
func (o *InstallOptions) Validate() error {
	if ns := o.Params.ClusterProfiles; ns != "" {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return fmt.Errorf("--cluster-profiles %q is not a namespace name: %s", ns, strings.Join(errs, "; "))
		}
	}
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
		_, err := o.Out.Write(rendered)
		return err
	}
	objs, err := install.Objects(rendered)
	if err != nil {
		return err
	}
	cl, err := o.connect()
	if err != nil {
		return err
	}
	in := &install.Installer{Clients: cl, UI: o.ui, DryRun: o.DryRun == "server"}
	o.ui.Step("installing kubectl-mcsa in %s (%d objects)…", cl.Describe(), len(objs))
	results, err := in.Apply(ctx, objs)
	if err := printResults(o.Out, results, in.DryRun); err != nil {
		return err
	}
	if err != nil {
		return err
	}
	if in.DryRun {
		return nil
	}
	if o.Wait {
		if err := in.Wait(ctx, objs, o.Timeout); err != nil {
			return err
		}
	}
	o.ui.Done("installed in %s", cl.Describe())
	o.ui.Info("Next: let this cluster import from another one with `kubectl mcsa bootstrap THIS_CLUSTER OTHER_CLUSTER`.")
	return nil
}
