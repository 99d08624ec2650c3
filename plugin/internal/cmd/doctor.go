package cmd

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/diagnose"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// DoctorOptions are `kubectl mcsa doctor`'s.
type DoctorOptions struct {
	genericiooptions.IOStreams
	ui          *ui.UI
	configFlags *genericclioptions.ConfigFlags
	// connect builds the clients of each context checked.
	connect func(kube.Getter) (*kube.Clients, error)
	now     func() time.Time

	AllContexts bool
	Output      string

	// getters select the contexts to check.
	getters []kube.Getter
}

// NewDoctorOptions are doctor's defaults.
func NewDoctorOptions(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *DoctorOptions {
	return &DoctorOptions{IOStreams: streams, ui: ui.New(streams.ErrOut), configFlags: configFlags, connect: kube.New, now: time.Now}
}

// NewCmdDoctor is `kubectl mcsa doctor`.
func NewCmdDoctor(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *cobra.Command {
	o := NewDoctorOptions(streams, configFlags)
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check an installation, its remote clusters and imports; every ✗ names its remedy",
		Long: `Check, per context: the ServiceAccountImport API is installed and current; the controller and
webhook are ready; the webhook's CA matches its serving certificate; every remote cluster is
reachable with a non-expired credential and what the importer may do there (for a federated
credential, which holds no token, the importer's report, and that this cluster serves its issuer
discovery to anonymous callers); and which imports are not ready, grouped by reason. Exits
non-zero when any check fails.`,
		Example: `  kubectl mcsa doctor --context cluster1
  kubectl mcsa doctor --all-contexts -o json`,
		Args: cobra.NoArgs,
		RunE: runE(o),
	}
	cmd.Flags().BoolVar(&o.AllContexts, "all-contexts", o.AllContexts, "check every context of the kubeconfig")
	cmd.Flags().StringVarP(&o.Output, "output", "o", o.Output, "json or yaml")
	return cmd
}

// Complete lists the contexts to check: the selected one, or with --all-contexts every one of
// the kubeconfig, in name order.
func (o *DoctorOptions) Complete(*cobra.Command, []string) error {
	if !o.AllContexts {
		o.getters = []kube.Getter{o.configFlags}
		return nil
	}
	names := contextNames(o.configFlags)
	if len(names) == 0 {
		return errors.New("the kubeconfig has no context")
	}
	sort.Strings(names)
	kubeconfig := ptr.Deref(o.configFlags.KubeConfig, "")
	o.getters = nil
	for _, n := range names {
		o.getters = append(o.getters, kube.ForContext(kubeconfig, n))
	}
	return nil
}

// Validate has nothing to check: the output format is checked when printing.
func (o *DoctorOptions) Validate() error { return nil }

// Run checks each context and prints; a context that cannot be reached is a failed check, not
// an error, so that the others are still checked.
func (o *DoctorOptions) Run(ctx context.Context) error {
	now := o.now()
	var checks []diagnose.Check
	for _, g := range o.getters {
		cl, err := o.connect(g)
		if err != nil {
			checks = append(checks, diagnose.Check{Name: "connect", Message: err.Error()})
			continue
		}
		checks = append(checks, diagnose.Doctor(ctx, cl, now)...)
	}
	failed := 0
	for _, c := range checks {
		if !c.OK {
			failed++
		}
	}
	if done, err := printStructured(o.Out, o.Output, checks); done {
		if err == nil && failed > 0 {
			err = errSilent
		}
		return err
	}
	diagnose.PrintChecks(o.Out, checks, o.ui.Mark)
	if failed > 0 {
		return checkFailed{fmt.Sprintf("%d check(s) failed", failed)}
	}
	return nil
}
