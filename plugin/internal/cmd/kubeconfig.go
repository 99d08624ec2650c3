package cmd

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/credential"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/imports"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// KubeconfigOptions are `kubectl mcsa kubeconfig`'s.
type KubeconfigOptions struct {
	genericiooptions.IOStreams
	ui      *ui.UI
	connect clientsFunc
	now     func() time.Time

	Name string

	clients *kube.Clients
}

// NewKubeconfigOptions are kubeconfig's defaults.
func NewKubeconfigOptions(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *KubeconfigOptions {
	return &KubeconfigOptions{IOStreams: streams, ui: ui.New(streams.ErrOut), connect: clientsFor(configFlags), now: time.Now}
}

// NewCmdKubeconfig is `kubectl mcsa kubeconfig`.
func NewCmdKubeconfig(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *cobra.Command {
	o := NewKubeconfigOptions(streams, configFlags)
	return &cobra.Command{
		Use:   "kubeconfig NAME",
		Short: "Print a self-contained kubeconfig holding an import's current token",
		Long: `Print a kubeconfig for the remote cluster of an import, with its current token and CA inline,
for people and tools outside pods. It stops working when the token expires; pods should use the
mounted import instead, which follows rotation.`,
		Example:           "  kubectl mcsa kubeconfig cluster2-default-pod-lister > /tmp/cluster2.kubeconfig\n  kubectl --kubeconfig /tmp/cluster2.kubeconfig get pods",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeImportNames(configFlags),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(cmd, args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
}

// Complete reads the name and connects.
func (o *KubeconfigOptions) Complete(_ *cobra.Command, args []string) error {
	o.Name = args[0]
	var err error
	o.clients, err = o.connect()
	return err
}

// Validate has nothing to check: the import is looked up in Run.
func (o *KubeconfigOptions) Validate() error { return nil }

// Run reads the import's secret and prints it as a kubeconfig.
func (o *KubeconfigOptions) Run(ctx context.Context) error {
	client := &imports.Client{Clients: o.clients}
	sai, err := client.Get(ctx, o.clients.Namespace, o.Name)
	if err != nil {
		return err
	}
	secret, err := client.Secret(ctx, sai)
	if err != nil {
		return err
	}
	d := credential.Parse(secret.Data)
	d.ClusterName = sai.Spec.ClusterName
	if err := d.Validate(); err != nil {
		return fmt.Errorf("secret %s/%s of import %s is incomplete: %w", secret.Namespace, secret.Name, sai.Name, err)
	}
	b, err := d.InlineKubeconfig()
	if err != nil {
		return err
	}
	if _, err := o.Out.Write(b); err != nil {
		return err
	}
	if sai.Status.ExpirationTimestamp != nil {
		o.ui.Info("The token expires %s.", expiresIn(sai, o.now()))
	}
	return nil
}
