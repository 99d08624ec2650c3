package cmd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/allow"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/bootstrap"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
)

// BootstrapOptions are `kubectl mcsa bootstrap`'s.
type BootstrapOptions struct {
	*common
	TargetContext, TargetKubeconfig, TargetName string
	SourceContext, SourceKubeconfig, SourceName string
	SourceServer                                string
	AllowAll                                    bool
	TokenTTL                                    time.Duration

	engine bootstrap.Options
}

func newBootstrapCmd(c *common) *cobra.Command {
	o := &BootstrapOptions{common: c}
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

Cluster names default to the kubeconfig cluster names of the contexts.`,
		Example: `  kubectl mcsa bootstrap cluster1 cluster2
  kubectl mcsa bootstrap --target-context cluster1 --source-context gke_proj_zone_c2 --source-name cluster2
  kubectl mcsa bootstrap cluster1 cluster2 --source-server https://cluster2.internal:6443`,
		Args: cobra.RangeArgs(0, 2),
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) >= 2 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return contextNames(c.flags), cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(args); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.TargetContext, "target-context", "", "kubeconfig context of the importing cluster")
	f.StringVar(&o.TargetKubeconfig, "target-kubeconfig", "", "kubeconfig of the importing cluster (default: --kubeconfig or KUBECONFIG)")
	f.StringVar(&o.TargetName, "target-name", "", "name of the importing cluster (default: its kubeconfig cluster name)")
	f.StringVar(&o.SourceContext, "source-context", "", "kubeconfig context of the cluster imported from")
	f.StringVar(&o.SourceKubeconfig, "source-kubeconfig", "", "kubeconfig of the cluster imported from (default: --kubeconfig or KUBECONFIG)")
	f.StringVar(&o.SourceName, "source-name", "", "name of the cluster imported from (default: its kubeconfig cluster name)")
	f.StringVar(&o.SourceServer, "source-server", "", "the source's API URL as the target's pods reach it (default: the kubeconfig's)")
	f.BoolVar(&o.AllowAll, "allow-all-service-accounts", false, "let the target import ANY service account of the source, as the original project did (not recommended)")
	// Long enough to ride out a controller outage (a credential that expires needs a new
	// bootstrap), short enough that a leaked one is soon useless; it can only mint tokens of
	// granted service accounts anyway.
	f.DurationVar(&o.TokenTTL, "token-ttl", 12*time.Hour, "lifetime of the importer's credential tokens, renewed at about 80%")
	for _, name := range []string{"target-context", "source-context"} {
		must(cmd.RegisterFlagCompletionFunc(name, func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return contextNames(c.flags), cobra.ShellCompDirectiveNoFileComp
		}))
	}
	return cmd
}

// Complete resolves contexts, kubeconfigs and cluster names.
func (o *BootstrapOptions) Complete(args []string) error {
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
	defaultKubeconfig := ptr.Deref(o.flags.KubeConfig, "")
	var err error
	resolve := func(kubeconfig, context, name, nameFlag string) (*kube.Clients, string, error) {
		if kubeconfig == "" {
			kubeconfig = defaultKubeconfig
		}
		cl, err := kube.New(kube.ForContext(kubeconfig, context))
		if err != nil {
			return nil, "", fmt.Errorf("context %q: %w", context, err)
		}
		if name == "" {
			if name, err = kube.ObjectName(cl.ClusterName(), nameFlag); err != nil {
				return nil, "", err
			}
			if name != cl.ClusterName() {
				o.ui.Warn("kubeconfig cluster %q is not a valid object name; using %q (set %s to choose)", cl.ClusterName(), name, nameFlag)
			}
		}
		return cl, name, nil
	}
	o.engine = bootstrap.Options{SourceServer: o.SourceServer, AllowAllServiceAccounts: o.AllowAll, TokenTTL: o.TokenTTL, UI: o.ui}
	if o.engine.Target, o.engine.TargetName, err = resolve(o.TargetKubeconfig, o.TargetContext, o.TargetName, "--target-name"); err != nil {
		return err
	}
	o.engine.Source, o.engine.SourceName, err = resolve(o.SourceKubeconfig, o.SourceContext, o.SourceName, "--source-name")
	return err
}

// Run validates everything, then writes in the source and the target.
func (o *BootstrapOptions) Run(ctx context.Context) error {
	e := &o.engine
	if err := e.Validate(ctx); err != nil {
		return err
	}
	res, err := e.Run(ctx)
	for _, r := range res.Applied {
		fmt.Fprintln(o.streams.Out, r.String())
	}
	if err != nil {
		return err
	}
	o.ui.Done("%s can import from %s; the importer renews its credential before %s (in %s)", e.TargetName, e.SourceName,
		res.Expiration.UTC().Format(time.RFC3339), duration.HumanDuration(time.Until(res.Expiration)))
	o.ui.Info(`Next:
  1. in %s, allow the service accounts %s may import:
       %s
  2. in %s, import one:
       kubectl mcsa import %s/NAMESPACE/SERVICEACCOUNT%s --wait`,
		e.SourceName, e.TargetName, grant.AllowCommand(e.TargetName, e.Source.Context, "NAMESPACE", "SERVICEACCOUNT"),
		e.TargetName, e.SourceName, e.Target.ContextFlag())
	return nil
}

// AllowOptions are `kubectl mcsa allow`'s and `disallow`'s.
type AllowOptions struct {
	*common
	Grant  allow.Grant
	revoke bool
}

func newAllowCmd(c *common) *cobra.Command    { return newGrantCmd(c, false) }
func newDisallowCmd(c *common) *cobra.Command { return newGrantCmd(c, true) }

func newGrantCmd(c *common, revoke bool) *cobra.Command {
	o := &AllowOptions{common: c, revoke: revoke}
	cmd := &cobra.Command{
		Use:   "allow IMPORTING_CLUSTER [NAMESPACE/SERVICEACCOUNT...]",
		Short: "Let an importing cluster import service accounts of this cluster",
		Long: `Run against the cluster imported from: let IMPORTING_CLUSTER (as named by bootstrap) import the
named service accounts, or every service account of a namespace with --namespace-wide. With
--into-namespaces, only those namespaces of the importing cluster may import them.`,
		Example: `  kubectl mcsa allow cluster1 default/pod-lister --context cluster2
  kubectl mcsa allow cluster1 default/pod-lister --into-namespaces team-a,team-b --context cluster2
  kubectl mcsa allow cluster1 --namespace-wide monitoring --context cluster2`,
	}
	if revoke {
		cmd.Use = "disallow IMPORTING_CLUSTER [NAMESPACE/SERVICEACCOUNT...]"
		cmd.Short = "Revoke what allow granted"
		cmd.Long = `Run against the cluster imported from: revoke IMPORTING_CLUSTER's right to import the named
service accounts (or namespaces, or, with --all-service-accounts, bootstrap's cluster-wide
grant). Tokens already issued stay valid until they expire; the importer's next refresh fails
and the import reports Forbidden. With --into-namespaces, only those namespaces lose it.`
		cmd.Example = `  kubectl mcsa disallow cluster1 default/pod-lister --context cluster2
  kubectl mcsa disallow cluster1 --all-service-accounts --context cluster2`
	}
	cmd.Args = cobra.MinimumNArgs(1)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := o.Complete(args); err != nil {
			return err
		}
		if err := o.Grant.Validate(o.revoke); err != nil {
			return err
		}
		return o.Run(cmd.Context())
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.Grant.NamespaceWide, "namespace-wide", nil, "grant every service account of these namespaces (explicit: prefer named ones)")
	f.StringSliceVar(&o.Grant.IntoNamespaces, "into-namespaces", nil, "only these namespaces of the importing cluster may import the named service accounts (* for all)")
	if revoke {
		f.BoolVar(&o.Grant.AllServiceAccounts, "all-service-accounts", false, "revoke bootstrap's --allow-all-service-accounts")
	}
	return cmd
}

// Complete reads the arguments.
func (o *AllowOptions) Complete(args []string) error {
	o.Grant.ImportingCluster = args[0]
	refs, err := allow.ParseRefs(args[1:])
	o.Grant.ServiceAccounts = refs
	return err
}

// Run writes or removes the grant.
func (o *AllowOptions) Run(ctx context.Context) error {
	cl, err := o.clients()
	if err != nil {
		return err
	}
	var results []kube.Result
	if o.revoke {
		results, err = allow.Disallow(ctx, cl, o.Grant)
	} else {
		results, err = allow.Allow(ctx, cl, o.Grant, o.ui)
	}
	for _, r := range results {
		fmt.Fprintln(o.streams.Out, r.String())
	}
	if err != nil {
		return err
	}
	if len(o.Grant.IntoNamespaces) > 0 {
		verb := "may now import"
		if o.revoke {
			verb = "may no longer import"
		}
		for _, ref := range o.Grant.ServiceAccounts {
			fmt.Fprintf(o.streams.Out, "serviceaccount/%s: namespaces %v of %s %s it\n", ref, o.Grant.IntoNamespaces, o.Grant.ImportingCluster, verb)
		}
	}
	if !o.revoke && len(o.Grant.ServiceAccounts) > 0 {
		ref := o.Grant.ServiceAccounts[0]
		o.ui.Info("Next, in %s: kubectl mcsa import %s/%s/%s --wait", o.Grant.ImportingCluster, sourceNameHint(cl), ref.Namespace, ref.Name)
	}
	return nil
}

// sourceNameHint is how bootstrap named this cluster by default.
func sourceNameHint(cl *kube.Clients) string {
	if name, err := kube.ObjectName(cl.ClusterName(), "--source-name"); err == nil && name != "" {
		return name
	}
	return "THIS_CLUSTER"
}
