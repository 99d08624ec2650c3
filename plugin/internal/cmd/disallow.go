package cmd

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/allow"
)

// DisallowOptions are `kubectl mcsa disallow`'s.
type DisallowOptions struct {
	genericiooptions.IOStreams
	connect clientsFunc

	Grant allow.Grant
}

// NewDisallowOptions are disallow's defaults.
func NewDisallowOptions(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *DisallowOptions {
	return &DisallowOptions{IOStreams: streams, connect: clientsFor(configFlags)}
}

// NewCmdDisallow is `kubectl mcsa disallow`.
func NewCmdDisallow(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *cobra.Command {
	o := NewDisallowOptions(streams, configFlags)
	cmd := &cobra.Command{
		Use:   "disallow IMPORTING_CLUSTER [NAMESPACE/SERVICEACCOUNT...]",
		Short: "Revoke what allow granted",
		Long: `Run against the cluster imported from: revoke IMPORTING_CLUSTER's right to import the named
service accounts (or namespaces, or, with --all-service-accounts, bootstrap's cluster-wide
grant). It deletes the anchors of the service accounts it no longer grants, so every token
issued under the grant stops working within 10 seconds; the importer's next refresh fails and the
import reports Forbidden or GrantAnchorMissing, its token removed. With --into-namespaces, only
those namespaces of the importing cluster lose it (imports there report NamespaceNotAllowed at
their next refresh); removing its last namespace removes its right altogether, as above, since
a cluster the allowed-importers list does not name is not restricted by it. To invalidate tokens
but keep the right, use revoke.

With --federated, it removes the federated grants of the named service accounts (given by allow
--federated): requests of the importing cluster's pods acting as them are refused as soon as this
cluster's authorizer sees the change, within seconds. With --into-namespaces, only those
namespaces of the importing cluster lose it; removing its last namespace removes the grant. The
role that lets the importing cluster's importer check grants goes with the last federated grant
of a namespace.`,
		Example: `  kubectl mcsa disallow cluster1 default/pod-lister --context cluster2
  kubectl mcsa disallow cluster1 default/pod-lister --into-namespaces team-b --context cluster2
  kubectl mcsa disallow cluster1 --all-service-accounts --context cluster2
  kubectl mcsa disallow cluster1 apps/reader --federated --context cluster2
  kubectl mcsa disallow cluster1 apps/reader --federated --into-namespaces team-b --context cluster2`,
		Args: cobra.MinimumNArgs(1),
		RunE: runE(o),
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.Grant.NamespaceWide, "namespace-wide", o.Grant.NamespaceWide, "take away the right to import every service account of these namespaces (given by allow --namespace-wide)")
	f.StringSliceVar(&o.Grant.IntoNamespaces, "into-namespaces", o.Grant.IntoNamespaces, "remove only these namespaces of the importing cluster from those that may import the named service accounts (its last one: its right goes too)")
	f.BoolVar(&o.Grant.AllServiceAccounts, "all-service-accounts", o.Grant.AllServiceAccounts, "take away the right to import any service account (given by bootstrap --allow-all-service-accounts)")
	f.BoolVar(&o.Grant.Federated, allow.FederatedFlag, o.Grant.Federated, "take away federated grants of the named service accounts (given by allow --federated)")
	return cmd
}

// Complete reads the arguments.
func (o *DisallowOptions) Complete(_ *cobra.Command, args []string) error {
	o.Grant.ImportingCluster = args[0]
	refs, err := allow.ParseRefs(args[1:])
	o.Grant.ServiceAccounts = refs
	return err
}

// Validate checks what to revoke before connecting.
func (o *DisallowOptions) Validate() error { return o.Grant.Validate(true) }

// Run removes the grant from this cluster, the one imported from.
func (o *DisallowOptions) Run(ctx context.Context) error {
	cl, err := o.connect()
	if err != nil {
		return err
	}
	disallow, verb := allow.Disallow, "import it"
	if o.Grant.Federated {
		disallow, verb = allow.DisallowFederated, "act as it (federated)"
	}
	results, err := disallow(ctx, cl, o.Grant)
	if err := printResults(o.Out, results, false); err != nil {
		return err
	}
	if err != nil {
		return err
	}
	if len(o.Grant.IntoNamespaces) > 0 {
		for _, ref := range o.Grant.ServiceAccounts {
			fmt.Fprintf(o.Out, "serviceaccount/%s: namespaces %v of %s may no longer %s\n", ref, o.Grant.IntoNamespaces, o.Grant.ImportingCluster, verb)
		}
	}
	return nil
}
