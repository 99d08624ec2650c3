package cmd

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/credential"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/imports"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
)

// ImportOptions are `kubectl mcsa import`'s.
type ImportOptions struct {
	*common
	print *genericclioptions.PrintFlags

	Name      string
	Spec      v1alpha1.ServiceAccountImportSpec
	TTL       time.Duration
	Overwrite bool
	Wait      bool
	Timeout   time.Duration

	clients   *kube.Clients
	namespace string
}

func newImportCmd(c *common) *cobra.Command {
	o := &ImportOptions{common: c, print: genericclioptions.NewPrintFlags("").WithTypeSetter(scheme)}
	cmd := &cobra.Command{
		Use:   "import (NAME --cluster CLUSTER --remote-namespace NAMESPACE --service-account NAME | CLUSTER/NAMESPACE/SERVICEACCOUNT)",
		Short: "Create or update a ServiceAccountImport",
		Long: `Create or update a ServiceAccountImport: the importer keeps, in this namespace, a secret with a
short-lived token of a service account of another cluster, and pods annotated with the import's
name get it mounted. The short form CLUSTER/NAMESPACE/SERVICEACCOUNT names the import
CLUSTER-NAMESPACE-SERVICEACCOUNT.`,
		Example: `  kubectl mcsa import cluster2/default/pod-lister --wait
  kubectl mcsa import cluster2-default-pod-lister --cluster cluster2 --remote-namespace default --service-account pod-lister
  kubectl mcsa import vault-reader --cluster cluster2 --remote-namespace vault --service-account reader --ttl 2h --audience vault`,
		Args: cobra.ExactArgs(1),
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
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
	f := cmd.Flags()
	// A local --cluster shadows kubectl's --cluster (a kubeconfig cluster) for this command:
	// here it is the remote cluster, as in the original CLI.
	f.StringVar(&o.Spec.ClusterName, "cluster", "", "the remote cluster, as named by bootstrap")
	f.StringVar(&o.Spec.Namespace, "remote-namespace", "", "namespace of the remote service account")
	f.StringVar(&o.Spec.Name, "service-account", "", "name of the remote service account")
	f.DurationVar(&o.TTL, "ttl", 0, "requested token lifetime, at least 10m (default: the importer's, 1h)")
	f.StringSliceVar(&o.Spec.Audiences, "audience", nil, "intended audience of the token (repeatable; default: the remote API server)")
	f.BoolVar(&o.Overwrite, "overwrite", false, "repoint an existing import of the same name to another service account")
	f.BoolVar(&o.Wait, "wait", false, "wait until the import is ready, or report why not")
	f.DurationVar(&o.Timeout, "timeout", time.Minute, "how long --wait waits")
	o.print.AddFlags(cmd)
	must(cmd.RegisterFlagCompletionFunc("cluster", o.completeClusters))
	must(cmd.RegisterFlagCompletionFunc("remote-namespace", noCompletion))
	must(cmd.RegisterFlagCompletionFunc("service-account", noCompletion))
	return cmd
}

func noCompletion(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return nil, cobra.ShellCompDirectiveNoFileComp
}

// completeClusters offers the clusters this one can import from: its cluster credentials.
func (o *ImportOptions) completeClusters(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	cl, err := o.common.clients()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	l, err := (&imports.Client{Clients: cl}).List(ctxFor(cmd), v1alpha1.DefaultNamespace)
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var names []string
	for _, sai := range l {
		if sai.Name == sai.Spec.ClusterName {
			names = append(names, sai.Name)
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// Complete reads the arguments and connects.
func (o *ImportOptions) Complete(cmd *cobra.Command, args []string) error {
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
	var err error
	if o.clients, err = o.common.clients(); err != nil {
		return err
	}
	o.namespace = o.clients.Namespace
	return nil
}

// Validate checks the import before it is sent.
func (o *ImportOptions) Validate() error {
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
	client := &imports.Client{Clients: o.clients}
	sai, changed, err := client.Apply(ctx, o.namespace, o.Name, o.Spec, o.Overwrite)
	if err != nil {
		return err
	}
	action := "unchanged"
	if changed {
		action = "configured"
		if sai.Generation == 1 && sai.Status.ObservedGeneration == 0 {
			action = "created"
		}
	}
	if o.Wait {
		o.ui.Step("waiting for the importer to issue a token for %s/%s…", o.namespace, o.Name)
		if sai, err = o.wait(ctx, client, sai, changed); err != nil {
			return err
		}
		o.ui.Done("ready: token expires %s", expiresIn(sai, time.Now()))
	}
	if o.print.OutputFlagSpecified() {
		p, err := o.print.ToPrinter()
		if err != nil {
			return err
		}
		return p.PrintObj(sai, o.streams.Out)
	}
	fmt.Fprintf(o.streams.Out, "serviceaccountimport.multicluster.admiralty.io/%s %s\n", o.Name, action)
	o.ui.Info("Pods in namespace %s get it mounted at %s with the annotation:\n  %s: %s", o.namespace, v1alpha1.MountPath(o.Name), v1alpha1.ImportNameKey, o.Name)
	return nil
}

// wait waits for the importer's answer. An unchanged import that failed before is retried at
// once: the importer backs off between retries and cannot see a grant made in the other cluster
// since, so waiting for its next retry could take minutes.
func (o *ImportOptions) wait(ctx context.Context, client *imports.Client, sai *v1alpha1.ServiceAccountImport, changed bool) (*v1alpha1.ServiceAccountImport, error) {
	if cond := imports.Ready(sai); !changed && cond != nil && cond.Status != metav1.ConditionTrue {
		value, err := client.RequestRefresh(ctx, o.namespace, o.Name, time.Now())
		if err != nil {
			return nil, err
		}
		return client.WaitRefreshed(ctx, o.namespace, o.Name, value, o.Timeout)
	}
	return client.WaitReady(ctx, o.namespace, o.Name, o.Timeout, func(reason, message string) {
		if reason != v1alpha1.ReasonTokenIssued {
			o.ui.Warn("%s: %s", reason, message)
		}
	})
}

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

// GetOptions are `kubectl mcsa get`'s.
type GetOptions struct {
	*common
	print         *genericclioptions.PrintFlags
	AllNamespaces bool
	Names         []string
}

func newGetCmd(c *common) *cobra.Command {
	o := &GetOptions{common: c, print: genericclioptions.NewPrintFlags("").WithTypeSetter(scheme)}
	cmd := &cobra.Command{
		Use:     "get [NAME...]",
		Aliases: []string{"list"},
		Short:   "List imports: cluster, remote service account, readiness, token expiry",
		Example: `  kubectl mcsa get
  kubectl mcsa list -A -o wide
  kubectl mcsa get cluster2-default-pod-lister -o yaml`,
		ValidArgsFunction: completeImportNames(c),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Names = args
			return o.Run(cmd.Context(), time.Now())
		},
	}
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "list imports of every namespace")
	o.print.AddFlags(cmd)
	cmd.Flags().Lookup("output").Usage = "one of: wide, yaml, json, name (and kubectl's other printers)"
	return cmd
}

// Run lists and prints.
func (o *GetOptions) Run(ctx context.Context, now time.Time) error {
	cl, err := o.clients()
	if err != nil {
		return err
	}
	ns := cl.Namespace
	if o.AllNamespaces {
		ns = ""
	}
	client := &imports.Client{Clients: cl}
	var items []v1alpha1.ServiceAccountImport
	if len(o.Names) > 0 {
		for _, name := range o.Names {
			sai, err := client.Get(ctx, ns, name)
			if err != nil {
				return err
			}
			items = append(items, *sai)
		}
	} else if items, err = client.List(ctx, ns); err != nil {
		return err
	}
	sort.Slice(items, func(i, j int) bool {
		if items[i].Namespace != items[j].Namespace {
			return items[i].Namespace < items[j].Namespace
		}
		return items[i].Name < items[j].Name
	})
	output := ptr.Deref(o.print.OutputFormat, "")
	if output == "" || output == "wide" {
		if len(items) == 0 {
			where := "namespace " + ns
			if ns == "" {
				where = "any namespace"
			}
			o.ui.Info("No imports found in %s.", where)
			return nil
		}
		table := importTable(items, now)
		p := printers.NewTablePrinter(printers.PrintOptions{Wide: output == "wide", WithNamespace: o.AllNamespaces})
		return p.PrintObj(table, o.streams.Out)
	}
	p, err := o.print.ToPrinter()
	if err != nil {
		return err
	}
	if len(o.Names) == 1 {
		return p.PrintObj(&items[0], o.streams.Out)
	}
	list := &v1alpha1.ServiceAccountImportList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "List"}}
	list.Items = items
	if output == "name" {
		for i := range items {
			if err := p.PrintObj(&items[i], o.streams.Out); err != nil {
				return err
			}
		}
		return nil
	}
	return p.PrintObj(list, o.streams.Out)
}

func importTable(items []v1alpha1.ServiceAccountImport, now time.Time) *metav1.Table {
	t := &metav1.Table{ColumnDefinitions: []metav1.TableColumnDefinition{
		{Name: "Name", Type: "string"},
		{Name: "Cluster", Type: "string"},
		{Name: "Remote", Type: "string", Description: "namespace/name of the remote service account"},
		{Name: "Ready", Type: "string"},
		{Name: "Expires", Type: "string"},
		{Name: "Age", Type: "string"},
		{Name: "Reason", Type: "string", Priority: 1},
		{Name: "Secret", Type: "string", Priority: 1},
		{Name: "Last-Refresh", Type: "string", Priority: 1},
		{Name: "Message", Type: "string", Priority: 1},
	}}
	for i := range items {
		sai := &items[i]
		ready, reason, message := "Unknown", "", ""
		if c := imports.Ready(sai); c != nil {
			ready, reason, message = string(c.Status), c.Reason, c.Message
		}
		secret := "<none>"
		if len(sai.Status.Secrets) > 0 {
			secret = sai.Status.Secrets[0].Name
		}
		lastRefresh := "<never>"
		if sai.Status.LastRefreshTime != nil {
			lastRefresh = duration.HumanDuration(now.Sub(sai.Status.LastRefreshTime.Time)) + " ago"
		}
		expires := "<none>"
		if sai.Status.ExpirationTimestamp != nil {
			expires = expiresIn(sai, now)
		}
		t.Rows = append(t.Rows, metav1.TableRow{
			Cells: []any{sai.Name, sai.Spec.ClusterName, sai.Spec.Namespace + "/" + sai.Spec.Name, ready, expires,
				duration.HumanDuration(now.Sub(sai.CreationTimestamp.Time)), reason, secret, lastRefresh, message},
			Object: runtime.RawExtension{Object: sai},
		})
	}
	return t
}

func completeImportNames(c *common) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		cl, err := c.clients()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		l, err := (&imports.Client{Clients: cl}).List(ctxFor(cmd), cl.Namespace)
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var names []string
		for _, sai := range l {
			names = append(names, sai.Name)
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

func ctxFor(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

func listOptions() metav1.ListOptions { return metav1.ListOptions{} }

// RotateOptions are `kubectl mcsa rotate`'s.
type RotateOptions struct {
	*common
	Name    string
	Wait    bool
	Timeout time.Duration
}

func newRotateCmd(c *common) *cobra.Command {
	o := &RotateOptions{common: c}
	cmd := &cobra.Command{
		Use:   "rotate NAME",
		Short: "Ask the importer to refresh an import's token now",
		Long: `Ask the importer to mint a new token for an import now. The previous token stays valid until it
expires, so pods have time to pick up the new one (the kubelet updates mounted secrets within a
minute or so).`,
		Example:           "  kubectl mcsa rotate cluster2-default-pod-lister --wait",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeImportNames(c),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().BoolVar(&o.Wait, "wait", false, "wait for the new token and show its expiry")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", time.Minute, "how long --wait waits")
	return cmd
}

// Run requests the refresh.
func (o *RotateOptions) Run(ctx context.Context) error {
	cl, err := o.clients()
	if err != nil {
		return err
	}
	client := &imports.Client{Clients: cl}
	value, err := client.RequestRefresh(ctx, cl.Namespace, o.Name, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(o.streams.Out, "serviceaccountimport.multicluster.admiralty.io/%s refresh requested\n", o.Name)
	if !o.Wait {
		return nil
	}
	o.ui.Step("waiting for the importer…")
	sai, err := client.WaitRefreshed(ctx, cl.Namespace, o.Name, value, o.Timeout)
	if err != nil {
		return err
	}
	o.ui.Done("new token issued; expires %s (%s)", expiresIn(sai, time.Now()), sai.Status.ExpirationTimestamp.UTC().Format(time.RFC3339))
	return nil
}

func newKubeconfigCmd(c *common) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kubeconfig NAME",
		Short: "Print a self-contained kubeconfig holding an import's current token",
		Long: `Print a kubeconfig for the remote cluster of an import, with its current token and CA inline,
for people and tools outside pods. It stops working when the token expires; pods should use the
mounted import instead, which follows rotation.`,
		Example:           "  kubectl mcsa kubeconfig cluster2-default-pod-lister > /tmp/cluster2.kubeconfig\n  kubectl --kubeconfig /tmp/cluster2.kubeconfig get pods",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeImportNames(c),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.clients()
			if err != nil {
				return err
			}
			client := &imports.Client{Clients: cl}
			sai, err := client.Get(cmd.Context(), cl.Namespace, args[0])
			if err != nil {
				return err
			}
			secret, err := client.Secret(cmd.Context(), sai)
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
			_, err = c.streams.Out.Write(b)
			if err == nil && sai.Status.ExpirationTimestamp != nil {
				c.ui.Info("The token expires %s.", expiresIn(sai, time.Now()))
			}
			return err
		},
	}
	return cmd
}
