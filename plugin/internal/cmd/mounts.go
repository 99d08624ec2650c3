package cmd

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/diagnose"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// MountsOptions are `kubectl mcsa mounts`'s.
type MountsOptions struct {
	genericiooptions.IOStreams
	ui      *ui.UI
	connect clientsFunc
	now     func() time.Time

	Pod    string
	Output string

	clients *kube.Clients
}

// NewMountsOptions are mounts' defaults.
func NewMountsOptions(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *MountsOptions {
	return &MountsOptions{IOStreams: streams, ui: ui.New(streams.ErrOut), connect: clientsFor(configFlags), now: time.Now}
}

// NewCmdMounts is `kubectl mcsa mounts`.
func NewCmdMounts(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *cobra.Command {
	o := NewMountsOptions(streams, configFlags)
	cmd := &cobra.Command{
		Use:   "mounts POD",
		Short: "Show which imports a pod asks for, what the webhook mounted, and what is wrong",
		Example: `  kubectl mcsa mounts multicluster-client-abcde
  kubectl mcsa mounts my-pod -n team-a -o json`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeAnnotatedPods(configFlags),
		RunE:              runE(o),
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", o.Output, "yaml or json")
	return cmd
}

// Complete reads the pod's name and connects.
func (o *MountsOptions) Complete(_ *cobra.Command, args []string) error {
	o.Pod = args[0]
	var err error
	o.clients, err = o.connect()
	return err
}

// Validate has nothing to check: the output format is checked when printing.
func (o *MountsOptions) Validate() error { return nil }

// Run inspects and prints; problems make the command fail, so scripts can test it.
func (o *MountsOptions) Run(ctx context.Context) error {
	now := o.now()
	r, err := diagnose.Mounts(ctx, o.clients, o.clients.Namespace, o.Pod, now)
	if err != nil {
		return err
	}
	if done, err := printStructured(o.Out, o.Output, r); done {
		if err == nil && len(r.Problems) > 0 {
			err = errSilent
		}
		return err
	}
	r.Print(o.Out, now, o.ui.Mark)
	if len(r.Problems) > 0 {
		return checkFailed{fmt.Sprintf("%d problem(s) found", len(r.Problems))}
	}
	return nil
}
