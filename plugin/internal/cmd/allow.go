package cmd

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/allow"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// AllowOptions are `kubectl mcsa allow`'s.
type AllowOptions struct {
	genericiooptions.IOStreams
	ui      *ui.UI
	connect clientsFunc

	Grant allow.Grant
}

// NewAllowOptions are allow's defaults.
func NewAllowOptions(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *AllowOptions {
	return &AllowOptions{IOStreams: streams, ui: ui.New(streams.ErrOut), connect: clientsFor(configFlags)}
}

// NewCmdAllow is `kubectl mcsa allow`.
func NewCmdAllow(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *cobra.Command {
	o := NewAllowOptions(streams, configFlags)
	cmd := &cobra.Command{
		Use:   "allow IMPORTING_CLUSTER [NAMESPACE/SERVICEACCOUNT...]",
		Short: "Let an importing cluster import service accounts of this cluster",
		Long: `Run against the cluster imported from: let IMPORTING_CLUSTER (as named by bootstrap) import the
named service accounts, or every service account of a namespace with --namespace-wide. With
--into-namespaces, only those namespaces of the importing cluster may import them.

Tokens imported under the grant live at most --max-token-lifetime (default 1h) and have this
cluster's API server as audience, or one of --audiences: the importer asks for no more, and this
cluster's admission (installed by bootstrap) refuses any other token request by the importer.
Running allow again for a service account replaces its policy.

It refuses the service accounts of the importer namespace, alone or as a whole: they are other
importing clusters' identities. It refuses --namespace-wide of a system namespace, or of one with
a service account that may do anything, read every secret, create pods in kube-system or
impersonate users, unless --i-understand-namespace-wide-risk. It warns when a named service
account has such rights: the importing cluster gets them with it.`,
		Example: `  kubectl mcsa allow cluster1 default/pod-lister --context cluster2
  kubectl mcsa allow cluster1 default/pod-lister --into-namespaces team-a,team-b --context cluster2
  kubectl mcsa allow cluster1 --namespace-wide monitoring --context cluster2
  kubectl mcsa allow cluster1 default/vault-auth --max-token-lifetime 15m --audiences vault --context cluster2`,
		Args: cobra.MinimumNArgs(1),
		RunE: runE(o),
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.Grant.NamespaceWide, "namespace-wide", o.Grant.NamespaceWide, "grant every service account of these namespaces (explicit: prefer named ones)")
	f.StringSliceVar(&o.Grant.IntoNamespaces, "into-namespaces", o.Grant.IntoNamespaces, "only these namespaces of the importing cluster may import the named service accounts (* for all)")
	f.DurationVar(&o.Grant.Policy.MaxLifetime, allow.MaxTokenLifetimeFlag, grant.DefaultMaxTokenLifetime,
		"longest lifetime of the tokens imported under the grant; this cluster refuses longer ones (10m to 24h)")
	f.StringSliceVar(&o.Grant.Policy.Audiences, allow.AudiencesFlag, nil,
		"audiences the imported tokens may have besides this cluster's API server (e.g. vault); this cluster refuses others")
	f.BoolVar(&o.Grant.AcceptNamespaceWideRisk, allow.RiskFlag, o.Grant.AcceptNamespaceWideRisk,
		"let --namespace-wide grant "+strings.Join(grant.SystemNamespaces(), ", ")+" or a namespace with a service account that has broad rights: refused otherwise, as their tokens can take over this cluster")
	return cmd
}

// Complete reads the arguments.
func (o *AllowOptions) Complete(_ *cobra.Command, args []string) error {
	o.Grant.ImportingCluster = args[0]
	refs, err := allow.ParseRefs(args[1:])
	o.Grant.ServiceAccounts = refs
	return err
}

// Validate checks the grant before connecting.
func (o *AllowOptions) Validate() error { return o.Grant.Validate(false) }

// Run writes the grant in this cluster, the one imported from.
func (o *AllowOptions) Run(ctx context.Context) error {
	cl, err := o.connect()
	if err != nil {
		return err
	}
	results, err := allow.Allow(ctx, cl, o.Grant, o.ui)
	if err := printResults(o.Out, results, false); err != nil {
		return err
	}
	if err != nil {
		return err
	}
	if len(o.Grant.IntoNamespaces) > 0 {
		for _, ref := range o.Grant.ServiceAccounts {
			fmt.Fprintf(o.Out, "serviceaccount/%s: namespaces %v of %s may now import it\n", ref, o.Grant.IntoNamespaces, o.Grant.ImportingCluster)
		}
	}
	if len(o.Grant.ServiceAccounts) > 0 {
		ref := o.Grant.ServiceAccounts[0]
		o.ui.Info("Next, in %s: kubectl mcsa import %s/%s/%s --wait", o.Grant.ImportingCluster, sourceNameHint(cl), ref.Namespace, ref.Name)
	}
	return nil
}

// sourceNameHint is how bootstrap named this cluster by default: after its context.
func sourceNameHint(cl *kube.Clients) string {
	if name, err := kube.ObjectName(cl.Context, "--source-name"); err == nil && name != "" {
		return name
	}
	return "THIS_CLUSTER"
}
