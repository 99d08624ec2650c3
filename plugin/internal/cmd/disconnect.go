package cmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/bootstrap"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// DisconnectOptions are `kubectl mcsa disconnect`'s.
type DisconnectOptions struct {
	genericiooptions.IOStreams
	ui          *ui.UI
	configFlags *genericclioptions.ConfigFlags
	connect     func(kubeconfig, context string) (*kube.Clients, error)

	TargetContext, SourceContext string
	TargetName, SourceName       string
	DryRun                       string
	Yes                          bool

	dryRun kube.DryRun
	engine bootstrap.Disconnect
}

// NewDisconnectOptions are disconnect's defaults.
func NewDisconnectOptions(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *DisconnectOptions {
	return &DisconnectOptions{IOStreams: streams, ui: ui.New(streams.ErrOut), configFlags: configFlags, DryRun: "none",
		connect: func(kubeconfig, context string) (*kube.Clients, error) {
			return kube.New(kube.ForContext(kubeconfig, context))
		}}
}

// NewCmdDisconnect is `kubectl mcsa disconnect`.
func NewCmdDisconnect(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *cobra.Command {
	o := NewDisconnectOptions(streams, configFlags)
	cmd := &cobra.Command{
		Use:   "disconnect TARGET_CONTEXT SOURCE_CONTEXT",
		Short: "Undo bootstrap: the target no longer imports anything from the source",
		Long: `Undo bootstrap and every grant since, in both clusters. In the source: the target's importer
identity, its self-renew, named, namespace-wide and cluster-wide grants, their anchors (so every
token minted for the target stops working within 10 seconds), their token policies and the
target's allowed-importers entries. In the target: the imports from the source (after a
confirmation: pods mounting them lose them) and the cluster credential. What other importing
clusters share (the importer namespace, the token policy admission) stays. Running it again
finds nothing to delete.`,
		Example: `  kubectl mcsa disconnect cluster1 cluster2 --dry-run=server
  kubectl mcsa disconnect cluster1 cluster2 --dry-run
  kubectl mcsa disconnect cluster1 cluster2 --yes`,
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: completeContextPair(configFlags),
		RunE:              runE(o),
	}
	f := cmd.Flags()
	f.StringVar(&o.TargetName, "target-name", o.TargetName, "name bootstrap gave the importing cluster (default: its context's name)")
	f.StringVar(&o.SourceName, "source-name", o.SourceName, "name bootstrap gave the cluster imported from (default: its context's name)")
	addDryRunFlag(cmd, &o.DryRun, `"client" reads both clusters and prints what would go, "server" also sends every deletion with dryRun; "none" deletes`)
	f.BoolVarP(&o.Yes, "yes", "y", o.Yes, "delete the target's imports from the source without asking")
	return cmd
}

// Complete connects to both clusters and names them as bootstrap did.
func (o *DisconnectOptions) Complete(_ *cobra.Command, args []string) error {
	o.TargetContext, o.SourceContext = args[0], args[1]
	kubeconfig := ptr.Deref(o.configFlags.KubeConfig, "")
	resolve := func(context, name, flag string) (*kube.Clients, string, error) {
		cl, err := o.connect(kubeconfig, context)
		if err != nil {
			return nil, "", fmt.Errorf("context %q: %w", context, err)
		}
		if name == "" {
			name, err = kube.ObjectName(context, flag)
		}
		return cl, name, err
	}
	var err error
	if o.engine.Target, o.engine.TargetName, err = resolve(o.TargetContext, o.TargetName, "--target-name"); err != nil {
		return err
	}
	o.engine.Source, o.engine.SourceName, err = resolve(o.SourceContext, o.SourceName, "--source-name")
	return err
}

// Validate checks the flags.
func (o *DisconnectOptions) Validate() error {
	dryRun, err := kube.ParseDryRun(o.DryRun)
	if err != nil {
		return err
	}
	o.dryRun, o.engine.DryRun = dryRun, dryRun != kube.NoDryRun
	// A client dry run reads: deletions are dry through the clients.
	o.engine.Target.DryRun, o.engine.Source.DryRun = dryRun, dryRun
	return nil
}

// Run asks before deleting imports, then deletes in the source and the target.
func (o *DisconnectOptions) Run(ctx context.Context) error {
	e := &o.engine
	imps, err := e.Plan(ctx)
	if err != nil {
		return err
	}
	if len(imps) > 0 && !o.Yes && !e.DryRun {
		names := make([]string, len(imps))
		for i, imp := range imps {
			names[i] = imp.Namespace + "/" + imp.Name
		}
		o.ui.Warn("%d imports in %s import from %s and will be deleted, and pods mounting them lose them: %s", len(imps), e.TargetName, e.SourceName, strings.Join(names, ", "))
		fmt.Fprint(o.ErrOut, "Delete them? [y/N] ")
		answer, _ := bufio.NewReader(o.In).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			return errors.New("nothing deleted; pass --yes to delete without asking")
		}
	}
	results, err := e.Run(ctx, imps)
	if err := printWritten(o.Out, results, o.dryRun); err != nil {
		return err
	}
	if err != nil {
		return err
	}
	if !e.DryRun {
		o.ui.Done("%s no longer imports from %s (tokens minted for it stop working within 10 s); to connect them again: kubectl mcsa bootstrap %s %s",
			e.TargetName, e.SourceName, o.TargetContext, o.SourceContext)
	}
	return nil
}
