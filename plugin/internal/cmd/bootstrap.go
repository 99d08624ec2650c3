package cmd

import (
	"context"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/bootstrap"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// BootstrapOptions are `kubectl mcsa bootstrap`'s.
type BootstrapOptions struct {
	genericiooptions.IOStreams
	ui          *ui.UI
	configFlags *genericclioptions.ConfigFlags
	// connect builds the clients of a context of a kubeconfig ("" for the default rules).
	connect func(kubeconfig, context string) (*kube.Clients, error)
	now     func() time.Time

	clusterPair
	SourceServer string
	AllowAll     bool
	TokenTTL     time.Duration

	engine bootstrap.Options
}

// NewBootstrapOptions are bootstrap's defaults.
func NewBootstrapOptions(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *BootstrapOptions {
	return &BootstrapOptions{
		IOStreams:   streams,
		ui:          ui.New(streams.ErrOut),
		configFlags: configFlags,
		connect: func(kubeconfig, context string) (*kube.Clients, error) {
			return kube.New(kube.ForContext(kubeconfig, context))
		},
		now: time.Now,
		// Long enough to ride out a controller outage (a credential that expires needs a new
		// bootstrap), short enough that a leaked one is soon useless; it can only mint tokens
		// of granted service accounts anyway.
		TokenTTL: 12 * time.Hour,
	}
}

// NewCmdBootstrap is `kubectl mcsa bootstrap`.
func NewCmdBootstrap(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *cobra.Command {
	o := NewBootstrapOptions(streams, configFlags)
	cmd := &cobra.Command{
		Use:   "bootstrap [TARGET_CONTEXT SOURCE_CONTEXT]",
		Short: "Let a target cluster import service accounts from a source cluster",
		Long: `Let the target cluster import service accounts from the source cluster (the original's order:
target first, source second).

In the source, it creates the importer's identity (namespace multicluster-service-account, a
service account named after the target) allowed to renew its own token and nothing else. In the
target, it creates the cluster credential: the import named after the source, with a first token
minted through your own access. Service accounts are then granted one by one with
` + "`kubectl mcsa allow`" + `. Running it again repairs drift and never duplicates.

Cluster names default to the contexts' names (made valid object names, with a warning when that
changes them): imports name the source by it (` + "`kubectl mcsa import SOURCE/NS/SA`" + `), and allow names the
target by it. The source's API URL must be one the target's pods reach: a loopback URL (kind,
k3d, minikube) is refused unless --source-server gives the right one.`,
		Example: `  kubectl mcsa bootstrap cluster1 cluster2
  kubectl mcsa bootstrap --target-context cluster1 --source-context gke_proj_zone_c2 --source-name cluster2
  kubectl mcsa bootstrap cluster1 cluster2 --source-server https://cluster2.internal:6443`,
		Args:              cobra.RangeArgs(0, 2),
		ValidArgsFunction: completeContextPair(configFlags),
		RunE:              runE(o),
	}
	o.addFlags(cmd, configFlags)
	f := cmd.Flags()
	f.StringVar(&o.SourceServer, "source-server", o.SourceServer, "the source's API URL as the target's pods reach it (default: the kubeconfig's, unless it is loopback)")
	f.BoolVar(&o.AllowAll, "allow-all-service-accounts", o.AllowAll, "let the target import ANY service account of the source, as the original project did (not recommended)")
	f.DurationVar(&o.TokenTTL, "token-ttl", o.TokenTTL, "lifetime of the importer's credential tokens, renewed at about 80%")
	must(cmd.RegisterFlagCompletionFunc("source-server", noCompletion))
	return cmd
}

// Complete resolves contexts, kubeconfigs and cluster names, and connects to both clusters.
func (o *BootstrapOptions) Complete(_ *cobra.Command, args []string) error {
	if err := o.complete("bootstrap", args, o.configFlags, o.connect, o.ui); err != nil {
		return err
	}
	o.engine = bootstrap.Options{
		Target: o.Target, TargetName: o.TargetName, Source: o.Source, SourceName: o.SourceName,
		SourceServer: o.SourceServer, AllowAllServiceAccounts: o.AllowAll, TokenTTL: o.TokenTTL, UI: o.ui,
	}
	return nil
}

// Validate checks the names and the lifetime before anything is read from the clusters.
func (o *BootstrapOptions) Validate() error { return o.engine.Validate() }

// Run checks the target, then writes in the source and the target.
func (o *BootstrapOptions) Run(ctx context.Context) error {
	e := &o.engine
	res, err := e.Run(ctx)
	if err := printResults(o.Out, res.Applied, false); err != nil {
		return err
	}
	if err != nil {
		return err
	}
	o.ui.Info("names: the target (context %s) is %q, the source (context %s) is %q", e.Target.Context, e.TargetName, e.Source.Context, e.SourceName)
	o.ui.Done("%s can import from %s; the importer renews its credential before %s (in %s)", e.TargetName, e.SourceName,
		res.Expiration.UTC().Format(time.RFC3339), duration.HumanDuration(res.Expiration.Sub(o.now())))
	o.ui.Info(`Next:
  1. in %s, allow the service accounts %s may import:
       %s
  2. in %s, import one:
       kubectl mcsa import %s/NAMESPACE/SERVICEACCOUNT%s --wait`,
		e.SourceName, e.TargetName, grant.AllowCommand(e.TargetName, e.Source.Context, "NAMESPACE", "SERVICEACCOUNT"),
		e.TargetName, e.SourceName, e.Target.ContextFlag())
	return nil
}
