package cmd

import (
	"context"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/imports"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// RotateOptions are `kubectl mcsa rotate`'s.
type RotateOptions struct {
	genericiooptions.IOStreams
	ui      *ui.UI
	connect clientsFunc
	now     func() time.Time

	Name    string
	Wait    bool
	Timeout time.Duration

	clients *kube.Clients
}

// NewRotateOptions are rotate's defaults.
func NewRotateOptions(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *RotateOptions {
	return &RotateOptions{IOStreams: streams, ui: ui.New(streams.ErrOut), connect: clientsFor(configFlags), now: time.Now, Timeout: time.Minute}
}

// NewCmdRotate is `kubectl mcsa rotate`.
func NewCmdRotate(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *cobra.Command {
	o := NewRotateOptions(streams, configFlags)
	cmd := &cobra.Command{
		Use:   "rotate NAME",
		Short: "Ask the importer to refresh an import's token now",
		Long: `Ask the importer to mint a new token for an import now. The previous token stays valid until it
expires, so pods have time to pick up the new one (the kubelet updates mounted secrets within a
minute or so).`,
		Example:           "  kubectl mcsa rotate cluster2-default-pod-lister --wait",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeImportNames(configFlags, false),
		RunE:              runE(o),
	}
	cmd.Flags().BoolVar(&o.Wait, "wait", o.Wait, "wait for the new token and show its expiry")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", o.Timeout, "how long --wait waits")
	return cmd
}

// Complete reads the name and connects.
func (o *RotateOptions) Complete(_ *cobra.Command, args []string) error {
	o.Name = args[0]
	var err error
	o.clients, err = o.connect()
	return err
}

// Validate has nothing to check: the import is looked up in Run.
func (o *RotateOptions) Validate() error { return nil }

// Run requests the refresh and, with --wait, waits for the importer's answer.
func (o *RotateOptions) Run(ctx context.Context) error {
	ns := o.clients.Namespace
	client := &imports.Client{Clients: o.clients}
	value, err := client.RequestRefresh(ctx, ns, o.Name, o.now())
	if err != nil {
		return err
	}
	p, err := genericclioptions.NewPrintFlags("refresh requested").WithTypeSetter(scheme).ToPrinter()
	if err != nil {
		return err
	}
	if err := p.PrintObj(&v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Name: o.Name, Namespace: ns}}, o.Out); err != nil {
		return err
	}
	if !o.Wait {
		return nil
	}
	o.ui.Step("waiting for the importer…")
	sai, err := client.WaitRefreshed(ctx, ns, o.Name, value, o.Timeout)
	if err != nil {
		return err
	}
	o.ui.Done("new token issued; expires %s (%s)", expiresIn(sai, o.now()), sai.Status.ExpirationTimestamp.UTC().Format(time.RFC3339))
	return nil
}
