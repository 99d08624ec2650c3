package cmd

import (
	"context"
	"fmt"
	"slices"
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

	Grant  allow.Grant
	DryRun string
	Output string
	// tokenFlags are the flags of token grants given on the command line.
	tokenFlags []string
	dryRun     kube.DryRun
}

// NewAllowOptions are allow's defaults.
func NewAllowOptions(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *AllowOptions {
	return &AllowOptions{IOStreams: streams, ui: ui.New(streams.ErrOut), connect: clientsFor(configFlags), DryRun: "none"}
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
account has such rights: the importing cluster gets them with it.

With --federated (secretless: this cluster trusts the importing cluster's service-account
issuer, see federate), nothing is minted: pods of the namespaces --into-namespaces lists (every
namespace by default) present their own tokens and impersonate the named service accounts, for
--verbs on --resources (GROUP/RESOURCE, or RESOURCE of the core group; default all), within what
the service account itself may do. The verbs default to
` + strings.Join(grant.StandardVerbs(), ", ") + `.
It also lets the importing cluster's importer check the grant. Running it again replaces the
grant with the namespaces, verbs and resources given. Constrained impersonation needs Kubernetes
1.36 or later (beta, on by default); on older servers, --unconstrained-impersonation grants the
legacy impersonate verb instead: the importing cluster may then do all that the service account
may do. --namespace-wide, --max-token-lifetime and --audiences do not apply to it.

With -o yaml or json, it prints the objects it wrote (or, with --dry-run, would write) as one
List, for ` + "`kubectl apply -f`" + ` or a Git repository synced to this cluster: the roles, bindings,
anchors and the token policies ConfigMap with every entry it holds, and, with --into-namespaces,
the service account with its allowed-importers annotation only. A dry run reads this cluster (to
merge with what is granted already) and writes nothing; --dry-run=server also sends every write
with dryRun, for the API server to validate.`,
		Example: `  kubectl mcsa allow cluster1 default/pod-lister --context cluster2
  kubectl mcsa allow cluster1 default/pod-lister --into-namespaces team-a,team-b --context cluster2
  kubectl mcsa allow cluster1 --namespace-wide monitoring --context cluster2
  kubectl mcsa allow cluster1 default/vault-auth --max-token-lifetime 15m --audiences vault --context cluster2
  kubectl mcsa allow cluster1 apps/reader --federated --into-namespaces team --verbs get,list,watch --resources pods,apps/deployments --context cluster2
  kubectl mcsa allow cluster1 apps/reader --federated --unconstrained-impersonation --context cluster2
  kubectl mcsa allow cluster1 default/pod-lister --context cluster2 --dry-run=client -o yaml > cluster2/allow-cluster1.yaml`,
		Args: cobra.MinimumNArgs(1),
		RunE: runE(o),
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.Grant.NamespaceWide, "namespace-wide", o.Grant.NamespaceWide, "grant every service account of these namespaces (explicit: prefer named ones)")
	f.StringSliceVar(&o.Grant.IntoNamespaces, "into-namespaces", o.Grant.IntoNamespaces, "only these namespaces of the importing cluster may import the named service accounts, or act as them with --federated (* for all)")
	f.DurationVar(&o.Grant.Policy.MaxLifetime, allow.MaxTokenLifetimeFlag, grant.DefaultMaxTokenLifetime,
		"longest lifetime of the tokens imported under the grant; this cluster refuses longer ones (10m to 24h)")
	f.StringSliceVar(&o.Grant.Policy.Audiences, allow.AudiencesFlag, nil,
		"audiences the imported tokens may have besides this cluster's API server (e.g. vault); this cluster refuses others")
	f.BoolVar(&o.Grant.AcceptNamespaceWideRisk, allow.RiskFlag, o.Grant.AcceptNamespaceWideRisk,
		"let --namespace-wide grant "+strings.Join(grant.SystemNamespaces(), ", ")+" or a namespace with a service account that has broad rights: refused otherwise, as their tokens can take over this cluster")
	f.BoolVar(&o.Grant.Federated, allow.FederatedFlag, o.Grant.Federated,
		"grant federated imports: the importing cluster's pods impersonate the named service accounts with their own tokens (this cluster must trust its issuer: kubectl mcsa federate)")
	f.StringSliceVar(&o.Grant.Verbs, allow.VerbsFlag, o.Grant.Verbs,
		"with --federated, the API verbs the impersonation may be used for (default "+strings.Join(grant.StandardVerbs(), ",")+")")
	f.StringSliceVar(&o.Grant.Resources, allow.ResourcesFlag, o.Grant.Resources,
		"with --federated, the resources the impersonation may be used on, as GROUP/RESOURCE or RESOURCE of the core group, e.g. pods,apps/deployments (default all)")
	f.BoolVar(&o.Grant.Unconstrained, allow.UnconstrainedFlag, o.Grant.Unconstrained,
		"with --federated, grant the legacy impersonate verb, for servers before Kubernetes 1.36: all the service account may do, whatever the verbs and resources")
	addDryRunFlag(cmd, &o.DryRun, `"client" prints what would be written, "server" also sends every write with dryRun; "none" writes`)
	addObjectsOutputFlag(cmd, &o.Output, "yaml or json: print the objects written (or that would be) as a List")
	must(cmd.RegisterFlagCompletionFunc(allow.VerbsFlag, completeList(func(*cobra.Command) ([]string, error) { return grant.StandardVerbs(), nil })))
	must(cmd.RegisterFlagCompletionFunc(allow.ResourcesFlag, completeList(apiResources(configFlags))))
	return cmd
}

// Complete reads the arguments, and which flags of token grants were given (they do not apply
// to federated ones, even set to their defaults).
func (o *AllowOptions) Complete(cmd *cobra.Command, args []string) error {
	o.Grant.ImportingCluster = args[0]
	refs, err := allow.ParseRefs(args[1:])
	o.Grant.ServiceAccounts = refs
	if cmd != nil {
		for _, flag := range []string{allow.MaxTokenLifetimeFlag, allow.AudiencesFlag} {
			if cmd.Flags().Changed(flag) {
				o.tokenFlags = append(o.tokenFlags, flag)
			}
		}
	}
	return err
}

// Validate checks the flags and the grant before connecting.
func (o *AllowOptions) Validate() error {
	var err error
	if o.dryRun, err = kube.ParseDryRun(o.DryRun); err != nil {
		return err
	}
	if err := validateObjectsOutput(o.Output); err != nil {
		return err
	}
	if o.Grant.Federated && len(o.tokenFlags) > 0 {
		return allow.NotFederated(o.tokenFlags[0])
	}
	return o.Grant.Validate(false)
}

// Run writes the grant in this cluster, the one imported from.
func (o *AllowOptions) Run(ctx context.Context) error {
	cl, err := o.connect()
	if err != nil {
		return err
	}
	cl.DryRun = o.dryRun // the engine's writes are dry through its clients
	if o.Grant.Federated {
		return o.runFederated(ctx, cl)
	}
	results, err := allow.Allow(ctx, cl, o.Grant, o.ui)
	if done, err := o.printWritten(results, err); done || err != nil {
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

// runFederated writes federated grants, and says which namespaces of the importing cluster may
// now act as each service account.
func (o *AllowOptions) runFederated(ctx context.Context, cl *kube.Clients) error {
	g := o.Grant
	results, err := allow.Federated(ctx, cl, g, o.ui)
	if done, err := o.printWritten(results, err); done || err != nil {
		return err
	}
	who := "every namespace of " + g.ImportingCluster
	if len(g.IntoNamespaces) > 0 && !slices.Contains(g.IntoNamespaces, grant.AnyNamespace) {
		who = fmt.Sprintf("namespaces %v of %s", g.IntoNamespaces, g.ImportingCluster)
	}
	for _, ref := range g.ServiceAccounts {
		fmt.Fprintf(o.Out, "serviceaccount/%s: %s may now act as it (federated)\n", ref, who)
	}
	if len(g.ServiceAccounts) > 0 {
		ref, source := g.ServiceAccounts[0], sourceNameHint(cl)
		o.ui.Info("Next, if this cluster does not trust %s's issuer yet: %s\nThen, in %s: kubectl mcsa import %s/%s/%s --%s --wait",
			g.ImportingCluster, grant.FederateCommand(g.ImportingCluster, source), g.ImportingCluster, source, ref.Namespace, ref.Name, allow.FederatedFlag)
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

// printWritten prints what the grant wrote, and tells whether that is all there is to say: with
// -o, the objects as a List; in a dry run, each object's would-be action. Otherwise, the
// actions, but for the allowed-importers annotations of service accounts, which Run words itself.
func (o *AllowOptions) printWritten(results []kube.Result, err error) (bool, error) {
	switch {
	case o.Output != "" && err == nil:
		_, err := printStructured(o.Out, o.Output, objectsList(written(results, o.dryRun, o.ui)))
		if err == nil && o.dryRun != kube.NoDryRun {
			o.ui.Info("(dry run) nothing was written")
		}
		return true, err
	case o.Output != "":
		return true, err
	case o.dryRun != kube.NoDryRun:
		if perr := printWritten(o.Out, results, o.dryRun); perr != nil {
			return true, perr
		}
		return true, err
	}
	shown := slices.DeleteFunc(slices.Clone(results), func(r kube.Result) bool { return r.Object.GetKind() == "ServiceAccount" })
	if perr := printResults(o.Out, shown, false); perr != nil {
		return true, perr
	}
	return err != nil, err
}
