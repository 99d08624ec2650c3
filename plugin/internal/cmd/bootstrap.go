package cmd

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
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
	DryRun       string
	Output       string

	dryRun kube.DryRun
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
		DryRun:   "none",
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
service account named after the target) allowed to renew its own token and to read the CA bundle
the source publishes (ConfigMap kube-root-ca.crt of that namespace), nothing else. In the
target, it creates the cluster credential: the import named after the source, with a first token
minted through your own access. Service accounts are then granted one by one with
` + "`kubectl mcsa allow`" + `. Running it again repairs drift and never duplicates.

Cluster names default to the contexts' names (made valid object names, with a warning when that
changes them): imports name the source by it (` + "`kubectl mcsa import SOURCE/NS/SA`" + `), and allow names the
target by it. The source's API URL must be one the target's pods reach: a loopback URL (kind,
k3d, minikube) is refused unless --source-server gives the right one.

With -o yaml or json, it prints what it wrote (or, with --dry-run, would write) as two Lists,
the source's first, then the target's, each for ` + "`kubectl apply --context CONTEXT -f`" + ` (or a Git
repository synced to that cluster): in YAML, two documents, each under a comment
"# cluster: CONTEXT"; in JSON, two Lists one after the other. Each List also names its context
in the annotation ` + ContextAnnotation + `. Apply each to its own cluster only.
The credential's Secret, which holds a token, is never printed.

A dry run writes nothing (--dry-run=server sends every write with dryRun, for the API servers
to validate) and mints no credential: the credential's Secret, which holds its first token, is
neither written nor printed. Once the Lists are applied, the credential reports ClusterUnknown
until bootstrap runs once with the same arguments, without --dry-run, to mint that token; keep
the Secret out of Git, as the importer renews the token in it. To learn the audiences of the
source's API server (for its token policy), a dry run requests a 10-minute token of
default/default in the source and discards it or, if that is refused, reads them from the token
policy an earlier bootstrap installed there.`,
		Example: `  kubectl mcsa bootstrap cluster1 cluster2
  kubectl mcsa bootstrap --target-context cluster1 --source-context gke_proj_zone_c2 --source-name cluster2
  kubectl mcsa bootstrap cluster1 cluster2 --source-server https://cluster2.internal:6443
  kubectl mcsa bootstrap cluster1 cluster2 --dry-run=client -o yaml > bootstrap.yaml   # two Lists: the source's, the target's`,
		Args:              cobra.RangeArgs(0, 2),
		ValidArgsFunction: completeContextPair(configFlags),
		RunE:              runE(o),
	}
	o.addFlags(cmd, configFlags)
	f := cmd.Flags()
	f.StringVar(&o.SourceServer, "source-server", o.SourceServer, "the source's API URL as the target's pods reach it (default: the kubeconfig's, unless it is loopback)")
	f.BoolVar(&o.AllowAll, "allow-all-service-accounts", o.AllowAll, "let the target import ANY service account of the source, as the original project did (not recommended)")
	f.DurationVar(&o.TokenTTL, "token-ttl", o.TokenTTL, "lifetime of the importer's credential tokens, renewed at about 80%")
	addDryRunFlag(cmd, &o.DryRun, `"client" prints what would be written, "server" also sends every write with dryRun; neither mints the credential's token nor writes its Secret; "none" writes`)
	addObjectsOutputFlag(cmd, &o.Output, "yaml or json: print the objects written (or that would be) as a List per cluster, the source's then the target's, without the credential's Secret")
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

// Validate checks the flags, names and lifetime before anything is read from the clusters.
func (o *BootstrapOptions) Validate() error {
	var err error
	if o.dryRun, err = kube.ParseDryRun(o.DryRun); err != nil {
		return err
	}
	if err := validateObjectsOutput(o.Output); err != nil {
		return err
	}
	// The engine's writes are dry through its clients.
	o.Target.DryRun, o.Source.DryRun = o.dryRun, o.dryRun
	return o.engine.Validate()
}

// Run checks the target, then writes in the source and the target.
func (o *BootstrapOptions) Run(ctx context.Context) error {
	e := &o.engine
	res, err := e.Run(ctx)
	if o.Output == "" {
		if err := printWritten(o.Out, res.Applied, o.dryRun); err != nil {
			return err
		}
	}
	if err != nil && o.dryRun == kube.ServerDryRun && apierrors.IsNotFound(err) {
		// The API server stores nothing of a dry run, not even the namespace the rest needs.
		return fmt.Errorf("%w: a server dry run needs the namespaces it writes in to exist already (%s, in a source bootstrapped for the first time); --dry-run=client needs none", err, grant.Namespace)
	}
	if err != nil {
		return err
	}
	if o.Output != "" {
		if err := o.printLists(res.Applied); err != nil {
			return err
		}
	}
	if o.dryRun != kube.NoDryRun {
		o.ui.Info("(dry run) nothing was written in %s or %s", e.Target.Describe(), e.Source.Describe())
		return nil
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

// printLists prints the objects written in each cluster as its List, the source's first, without
// the credential's Secret: it holds a token, which the importer renews in place.
func (o *BootstrapOptions) printLists(results []kube.Result) error {
	var source, target []kube.Result
	for _, r := range results {
		switch {
		case r.In == o.Source:
			source = append(source, r)
		case r.In == o.Target && r.Object.GetKind() == "Secret" && r.Object.GetName() == v1alpha1.SecretName(o.SourceName):
			o.ui.Info("not printed: the credential's Secret %s/%s, which holds a token", r.Object.GetNamespace(), r.Object.GetName())
		case r.In == o.Target:
			target = append(target, r)
		}
	}
	return printClusterLists(o.Out, o.Output, []clusterList{
		{Context: o.SourceContext, Role: "the source, " + o.SourceName, Items: written(source, o.dryRun, o.ui)},
		{Context: o.TargetContext, Role: "the target, " + o.TargetName, Items: written(target, o.dryRun, o.ui)},
	})
}
