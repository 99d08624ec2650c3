package cmd

import (
	"context"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/allow"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// RevokeOptions are `kubectl mcsa revoke`'s.
type RevokeOptions struct {
	genericiooptions.IOStreams
	ui      *ui.UI
	connect clientsFunc

	ImportingCluster string
	ServiceAccounts  []allow.ServiceAccountRef
}

// NewRevokeOptions are revoke's defaults.
func NewRevokeOptions(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *RevokeOptions {
	return &RevokeOptions{IOStreams: streams, ui: ui.New(streams.ErrOut), connect: clientsFor(configFlags)}
}

// NewCmdRevoke is `kubectl mcsa revoke`.
func NewCmdRevoke(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *cobra.Command {
	o := NewRevokeOptions(streams, configFlags)
	cmd := &cobra.Command{
		Use:   "revoke IMPORTING_CLUSTER NAMESPACE/SERVICEACCOUNT...",
		Short: "Invalidate every token an importing cluster holds of service accounts of this cluster",
		Long: `Run against the cluster imported from: every token of the named service accounts that
IMPORTING_CLUSTER imported stops working within 10 seconds (the API server's token cache), and
the grant stays. Imported tokens are bound to an anchor, an empty Secret named after the
importing cluster and the service account, in the service account's namespace; revoke deletes it
and creates it again. The importer's next refresh gets tokens bound to the new anchor: to refresh
at once, run ` + "`kubectl mcsa rotate IMPORT -n NAMESPACE`" + ` in the importing cluster. To stop the
import too, use disallow, which deletes the anchor.`,
		Example: `  kubectl mcsa revoke cluster1 default/pod-lister --context cluster2`,
		Args:    cobra.MinimumNArgs(2),
		RunE:    runE(o),
	}
	return cmd
}

// Complete reads the arguments.
func (o *RevokeOptions) Complete(_ *cobra.Command, args []string) error {
	o.ImportingCluster = args[0]
	refs, err := allow.ParseRefs(args[1:])
	o.ServiceAccounts = refs
	return err
}

// Validate checks the names before connecting.
func (o *RevokeOptions) Validate() error {
	g := allow.Grant{ImportingCluster: o.ImportingCluster, ServiceAccounts: o.ServiceAccounts}
	return g.Validate(true)
}

// Run replaces the anchors in this cluster, the one imported from.
func (o *RevokeOptions) Run(ctx context.Context) error {
	cl, err := o.connect()
	if err != nil {
		return err
	}
	results, err := allow.Revoke(ctx, cl, o.ImportingCluster, o.ServiceAccounts, o.ui)
	if err := printResults(o.Out, results, false); err != nil {
		return err
	}
	if err != nil {
		return err
	}
	o.ui.Info("Tokens %s held of these service accounts stop working within 10 s; its importer gets new ones at the next refresh (now: `kubectl mcsa rotate IMPORT -n NAMESPACE` in %s)",
		o.ImportingCluster, o.ImportingCluster)
	return nil
}
