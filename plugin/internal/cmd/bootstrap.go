package cmd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/utils/ptr"

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

	TargetContext, TargetKubeconfig, TargetName string
	SourceContext, SourceKubeconfig, SourceName string
	SourceServer                                string
	AllowAll                                    bool
	TokenTTL                                    time.Duration

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
	f := cmd.Flags()
	f.StringVar(&o.TargetContext, "target-context", o.TargetContext, "kubeconfig context of the importing cluster")
	f.StringVar(&o.TargetKubeconfig, "target-kubeconfig", o.TargetKubeconfig, "kubeconfig of the importing cluster (default: --kubeconfig or KUBECONFIG)")
	f.StringVar(&o.TargetName, "target-name", o.TargetName, "name of the importing cluster (default: its context's name)")
	f.StringVar(&o.SourceContext, "source-context", o.SourceContext, "kubeconfig context of the cluster imported from")
	f.StringVar(&o.SourceKubeconfig, "source-kubeconfig", o.SourceKubeconfig, "kubeconfig of the cluster imported from (default: --kubeconfig or KUBECONFIG)")
	f.StringVar(&o.SourceName, "source-name", o.SourceName, "name of the cluster imported from (default: its context's name)")
	f.StringVar(&o.SourceServer, "source-server", o.SourceServer, "the source's API URL as the target's pods reach it (default: the kubeconfig's, unless it is loopback)")
	f.BoolVar(&o.AllowAll, "allow-all-service-accounts", o.AllowAll, "let the target import ANY service account of the source, as the original project did (not recommended)")
	f.DurationVar(&o.TokenTTL, "token-ttl", o.TokenTTL, "lifetime of the importer's credential tokens, renewed at about 80%")
	for _, name := range []string{"target-context", "source-context"} {
		must(cmd.RegisterFlagCompletionFunc(name, func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return contextNames(configFlags), cobra.ShellCompDirectiveNoFileComp
		}))
	}
	return cmd
}

// Complete resolves contexts, kubeconfigs and cluster names, and connects to both clusters.
func (o *BootstrapOptions) Complete(_ *cobra.Command, args []string) error {
	if len(args) == 1 {
		return errors.New("give both TARGET_CONTEXT and SOURCE_CONTEXT, or neither with --target-context and --source-context")
	}
	if len(args) == 2 {
		if o.TargetContext != "" || o.SourceContext != "" {
			return errors.New("give the contexts either as arguments or as --target-context/--source-context, not both")
		}
		o.TargetContext, o.SourceContext = args[0], args[1]
	}
	if o.TargetContext == "" || o.SourceContext == "" {
		return errors.New("name the target and source contexts: `kubectl mcsa bootstrap TARGET_CONTEXT SOURCE_CONTEXT`")
	}
	defaultKubeconfig := ptr.Deref(o.configFlags.KubeConfig, "")
	resolve := func(kubeconfig, context, name, nameFlag string) (*kube.Clients, string, error) {
		if kubeconfig == "" {
			kubeconfig = defaultKubeconfig
		}
		cl, err := o.connect(kubeconfig, context)
		if err != nil {
			return nil, "", fmt.Errorf("context %q: %w", context, err)
		}
		if name == "" {
			// The context's name, which the docs and every remedy (`--context NAME`) use.
			if name, err = kube.ObjectName(context, nameFlag); err != nil {
				return nil, "", err
			}
			if name != context {
				o.ui.Warn("context %q is not a valid cluster name; naming that cluster %q (set %s to choose): kubectl-mcsa's messages then say `--context %s` where you use `--context %s`",
					context, name, nameFlag, name, context)
			}
		}
		return cl, name, nil
	}
	o.engine = bootstrap.Options{SourceServer: o.SourceServer, AllowAllServiceAccounts: o.AllowAll, TokenTTL: o.TokenTTL, UI: o.ui}
	var err error
	if o.engine.Target, o.engine.TargetName, err = resolve(o.TargetKubeconfig, o.TargetContext, o.TargetName, "--target-name"); err != nil {
		return err
	}
	o.engine.Source, o.engine.SourceName, err = resolve(o.SourceKubeconfig, o.SourceContext, o.SourceName, "--source-name")
	return err
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
