package cmd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/imports"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// ImportOptions are `kubectl mcsa import`'s.
type ImportOptions struct {
	genericiooptions.IOStreams
	ui         *ui.UI
	printFlags *genericclioptions.PrintFlags
	connect    clientsFunc
	now        func() time.Time

	Name      string
	Spec      v1alpha1.ServiceAccountImportSpec
	TTL       time.Duration
	Federated bool
	Overwrite bool
	Wait      bool
	Timeout   time.Duration
	DryRun    string

	clients *kube.Clients
	dryRun  kube.DryRun
}

// NewImportOptions are import's defaults.
func NewImportOptions(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *ImportOptions {
	return &ImportOptions{
		IOStreams: streams,
		ui:        ui.New(streams.ErrOut),
		// The operation is set once known: created, configured or unchanged.
		printFlags: genericclioptions.NewPrintFlags("").WithTypeSetter(scheme),
		connect:    clientsFor(configFlags),
		now:        time.Now,
		Timeout:    time.Minute,
		DryRun:     "none",
	}
}

// NewCmdImport is `kubectl mcsa import`.
func NewCmdImport(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *cobra.Command {
	o := NewImportOptions(streams, configFlags)
	cmd := &cobra.Command{
		Use:   "import (NAME --cluster CLUSTER --remote-namespace NAMESPACE --service-account NAME | CLUSTER/NAMESPACE/SERVICEACCOUNT)",
		Short: "Create or update a ServiceAccountImport",
		Long: `Create or update a ServiceAccountImport: the importer keeps, in this namespace, a secret with a
short-lived token of a service account of another cluster, and pods annotated with the import's
name get it mounted. The short form CLUSTER/NAMESPACE/SERVICEACCOUNT names the import
CLUSTER-NAMESPACE-SERVICEACCOUNT.

With --federated (secretless), nothing is copied: the remote cluster trusts this cluster's
service-account issuer (federate) and lets this namespace act as its service account (allow
--federated); the pods get a token of their own, for the remote cluster only and at most an hour
long, and a kubeconfig that impersonates the remote service account. The importer checks that
chain and reports the first broken link with its fix. An import's mode cannot change: to switch,
delete the import and import again.

With --dry-run, nothing is written (--dry-run=server sends the import with dryRun, for the API
server to validate), and -o yaml or json prints the import as it would be written, without the
fields the API server sets, for ` + "`kubectl apply -f`" + ` or a Git repository synced to this cluster.`,
		Example: `  kubectl mcsa import cluster2/default/pod-lister --wait
  kubectl mcsa import cluster2-default-pod-lister --cluster cluster2 --remote-namespace default --service-account pod-lister
  kubectl mcsa import vault-reader --cluster cluster2 --remote-namespace vault --service-account reader --ttl 2h --audience vault
  kubectl mcsa import cluster2/apps/reader --federated --wait
  kubectl mcsa import cluster2/default/pod-lister -n team-a --dry-run=client -o yaml > team-a/import.yaml`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: noCompletion,
		RunE:              runE(o),
	}
	f := cmd.Flags()
	// A local --cluster shadows kubectl's --cluster (a kubeconfig cluster) for this command:
	// here it is the remote cluster, as in the original CLI.
	f.StringVar(&o.Spec.ClusterName, "cluster", o.Spec.ClusterName, "the remote cluster, as named by bootstrap")
	f.StringVar(&o.Spec.Namespace, "remote-namespace", o.Spec.Namespace, "namespace of the remote service account")
	f.StringVar(&o.Spec.Name, "service-account", o.Spec.Name, "name of the remote service account")
	f.DurationVar(&o.TTL, "ttl", o.TTL, "requested token lifetime, at least 10m (default: the importer's, 1h; federated: the pods' tokens', at most 1h)")
	f.StringSliceVar(&o.Spec.Audiences, "audience", o.Spec.Audiences, "intended audience of the token (repeatable; default: the remote API server)")
	f.BoolVar(&o.Federated, "federated", o.Federated, "a federated import: pods use their own tokens, which the remote cluster trusts (see allow --federated); immutable")
	f.BoolVar(&o.Overwrite, "overwrite", o.Overwrite, "repoint an existing import of the same name to another service account")
	f.BoolVar(&o.Wait, "wait", o.Wait, "wait until the import is ready, or report why not")
	f.DurationVar(&o.Timeout, "timeout", o.Timeout, "how long --wait waits")
	addDryRunFlag(cmd, &o.DryRun, `"client" prints the import that would be written, "server" also sends it with dryRun; "none" writes`)
	o.printFlags.AddFlags(cmd)
	must(cmd.RegisterFlagCompletionFunc("cluster", completeClusters(configFlags)))
	must(cmd.RegisterFlagCompletionFunc("remote-namespace", noCompletion))
	must(cmd.RegisterFlagCompletionFunc("service-account", noCompletion))
	return cmd
}

// completeClusters offers the clusters this one can import from: its cluster credentials.
func completeClusters(g kube.Getter) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		cl, err := kube.New(g)
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		l, err := (&imports.Client{Clients: cl}).List(ctxFor(cmd), v1alpha1.DefaultNamespace)
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var names []string
		for _, sai := range l {
			if v1alpha1.IsClusterCredential(&sai, v1alpha1.DefaultNamespace) {
				names = append(names, sai.Name)
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// Complete reads the arguments and connects.
func (o *ImportOptions) Complete(_ *cobra.Command, args []string) error {
	if strings.Contains(args[0], "/") {
		if o.Spec.ClusterName != "" || o.Spec.Namespace != "" || o.Spec.Name != "" {
			return errors.New("give either CLUSTER/NAMESPACE/SERVICEACCOUNT or NAME with --cluster, --remote-namespace and --service-account, not both")
		}
		name, spec, err := imports.ParseShort(args[0])
		if err != nil {
			return err
		}
		o.Name, o.Spec.ClusterName, o.Spec.Namespace, o.Spec.Name = name, spec.ClusterName, spec.Namespace, spec.Name
	} else {
		o.Name = args[0]
	}
	if o.TTL != 0 {
		o.Spec.ExpirationSeconds = ptr.To(int64(o.TTL / time.Second))
	}
	if o.Federated {
		o.Spec.Mode = v1alpha1.ModeFederated
	}
	var err error
	o.clients, err = o.connect()
	return err
}

// Validate checks the import before it is sent.
func (o *ImportOptions) Validate() error {
	var err error
	if o.dryRun, err = kube.ParseDryRun(o.DryRun); err != nil {
		return err
	}
	if o.dryRun != kube.NoDryRun && o.Wait {
		return errors.New("--wait: a dry run writes no import to wait for")
	}
	var missing []string
	if o.Spec.ClusterName == "" {
		missing = append(missing, "--cluster")
	}
	if o.Spec.Namespace == "" {
		missing = append(missing, "--remote-namespace")
	}
	if o.Spec.Name == "" {
		missing = append(missing, "--service-account")
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s (or use the short form CLUSTER/NAMESPACE/SERVICEACCOUNT)", strings.Join(missing, ", "))
	}
	return imports.ValidateSpec(o.Name, o.Spec)
}

// Run applies the import and, with --wait, waits for it.
func (o *ImportOptions) Run(ctx context.Context) error {
	ns := o.clients.Namespace
	client := &imports.Client{Clients: o.clients}
	o.clients.DryRun = o.dryRun // the engine's write is dry through its clients
	applied, err := client.ApplyDesired(ctx, ns, o.Name, o.Spec, o.Overwrite)
	if err != nil {
		return err
	}
	if o.dryRun != kube.NoDryRun {
		return o.printDryRun(applied)
	}
	sai, changed := applied.Live, applied.Action != kube.Unchanged
	action := kube.Unchanged
	if changed {
		action = kube.Configured
		if sai.Generation == 1 && sai.Status.ObservedGeneration == 0 {
			action = kube.Created
		}
	}
	if o.Wait {
		federated := v1alpha1.IsFederated(sai)
		if federated {
			o.ui.Step("waiting for the importer to check the federation of %s/%s…", ns, o.Name)
		} else {
			o.ui.Step("waiting for the importer to issue a token for %s/%s…", ns, o.Name)
		}
		if sai, err = o.wait(ctx, client, sai, changed); err != nil {
			return err
		}
		if federated {
			o.ui.Done("ready: federated, pods act as %s/%s of %s with tokens of their own", sai.Spec.Namespace, sai.Spec.Name, sai.Spec.ClusterName)
		} else {
			o.ui.Done("ready: token expires %s", expiresIn(sai, o.now()))
		}
	}
	// Without -o, the name printer says what happened, as `kubectl apply` does.
	o.printFlags.NamePrintFlags.Operation = string(action)
	p, err := o.printFlags.ToPrinter()
	if err != nil {
		return err
	}
	if err := p.PrintObj(sai, o.Out); err != nil {
		return err
	}
	if !o.printFlags.OutputFlagSpecified() {
		o.ui.Info("Pods in namespace %s get it mounted at %s with the annotation:\n  %s: %s", ns, v1alpha1.MountPath(o.Name), v1alpha1.ImportNameKey, o.Name)
	}
	return nil
}

// printDryRun prints the import a dry run would write, without the fields the API server sets,
// marked as kubectl marks dry runs.
func (o *ImportOptions) printDryRun(applied *imports.Applied) error {
	u, err := kube.ToUnstructured(applied.Desired)
	if err != nil {
		return err
	}
	o.printFlags.NamePrintFlags.Operation = string(applied.Action) + dryRunMark(o.dryRun)
	p, err := o.printFlags.ToPrinter()
	if err != nil {
		return err
	}
	if err := p.PrintObj(kube.WithoutServerFields(u), o.Out); err != nil {
		return err
	}
	if o.printFlags.OutputFlagSpecified() {
		o.ui.Info("(dry run) nothing was written")
	}
	return nil
}

// wait waits for the importer's answer. An unchanged import that failed before is retried at
// once: the importer backs off between retries and cannot see a grant made in the other cluster
// since, so waiting for its next retry could take minutes.
func (o *ImportOptions) wait(ctx context.Context, client *imports.Client, sai *v1alpha1.ServiceAccountImport, changed bool) (*v1alpha1.ServiceAccountImport, error) {
	ns := o.clients.Namespace
	if cond := imports.Ready(sai); !changed && cond != nil && cond.Status != metav1.ConditionTrue {
		value, err := client.RequestRefresh(ctx, ns, o.Name, o.now())
		if err != nil {
			return nil, err
		}
		return client.WaitRefreshed(ctx, ns, o.Name, value, o.Timeout)
	}
	return client.WaitReady(ctx, ns, o.Name, o.Timeout, func(reason, message string) {
		// The ready reasons need no word; the others name what is missing and its fix.
		if reason != v1alpha1.ReasonTokenIssued && reason != v1alpha1.ReasonFederated {
			o.ui.Warn("%s: %s", reason, message)
		}
	})
}

// expiresIn says when an import's token expires, relative to now.
func expiresIn(sai *v1alpha1.ServiceAccountImport, now time.Time) string {
	if sai.Status.ExpirationTimestamp == nil {
		return "<unknown>"
	}
	d := sai.Status.ExpirationTimestamp.Sub(now)
	if d < 0 {
		return "expired " + duration.HumanDuration(-d) + " ago"
	}
	return "in " + duration.HumanDuration(d)
}
