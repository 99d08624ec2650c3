package cmd

import (
	"context"
	"sort"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/imports"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// GetOptions are `kubectl mcsa get`'s.
type GetOptions struct {
	genericiooptions.IOStreams
	ui         *ui.UI
	printFlags *genericclioptions.PrintFlags
	connect    clientsFunc
	now        func() time.Time

	AllNamespaces bool
	Names         []string

	clients *kube.Clients
}

// NewGetOptions are get's defaults.
func NewGetOptions(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *GetOptions {
	return &GetOptions{
		IOStreams:  streams,
		ui:         ui.New(streams.ErrOut),
		printFlags: genericclioptions.NewPrintFlags("").WithTypeSetter(scheme),
		connect:    clientsFor(configFlags),
		now:        time.Now,
	}
}

// NewCmdGet is `kubectl mcsa get`.
func NewCmdGet(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *cobra.Command {
	o := NewGetOptions(streams, configFlags)
	cmd := &cobra.Command{
		Use:     "get [NAME...]",
		Aliases: []string{"list"},
		Short:   "List imports: cluster, remote service account, readiness, token expiry",
		Example: `  kubectl mcsa get
  kubectl mcsa list -A -o wide
  kubectl mcsa get cluster2-default-pod-lister -o yaml`,
		ValidArgsFunction: completeImportNames(configFlags, true),
		RunE:              runE(o),
	}
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", o.AllNamespaces, "list imports of every namespace")
	o.printFlags.AddFlags(cmd)
	cmd.Flags().Lookup("output").Usage = "one of: wide, yaml, json, name (and kubectl's other printers)"
	return cmd
}

// Complete reads the names and connects.
func (o *GetOptions) Complete(_ *cobra.Command, args []string) error {
	o.Names = args
	var err error
	o.clients, err = o.connect()
	return err
}

// Validate has nothing to check: the printer flags are checked when the printer is made.
func (o *GetOptions) Validate() error { return nil }

// Run lists and prints: a table like kubectl's by default, or any of kubectl's printers.
func (o *GetOptions) Run(ctx context.Context) error {
	ns := o.clients.Namespace
	if o.AllNamespaces {
		ns = ""
	}
	client := &imports.Client{Clients: o.clients}
	var items []v1alpha1.ServiceAccountImport
	if len(o.Names) > 0 {
		for _, name := range o.Names {
			sai, err := client.Get(ctx, ns, name)
			if err != nil {
				return err
			}
			items = append(items, *sai)
		}
	} else {
		var err error
		if items, err = client.List(ctx, ns); err != nil {
			return err
		}
	}
	sort.Slice(items, func(i, j int) bool {
		if items[i].Namespace != items[j].Namespace {
			return items[i].Namespace < items[j].Namespace
		}
		return items[i].Name < items[j].Name
	})
	output := ptr.Deref(o.printFlags.OutputFormat, "")
	if output == "" || output == "wide" {
		if len(items) == 0 {
			where := "namespace " + ns
			if ns == "" {
				where = "any namespace"
			}
			o.ui.Info("No imports found in %s.", where)
			return nil
		}
		p := printers.NewTablePrinter(printers.PrintOptions{Wide: output == "wide", WithNamespace: o.AllNamespaces})
		return p.PrintObj(importTable(items, o.now()), o.Out)
	}
	p, err := o.printFlags.ToPrinter()
	if err != nil {
		return err
	}
	if len(o.Names) == 1 {
		return p.PrintObj(&items[0], o.Out)
	}
	if output == "name" {
		for i := range items {
			if err := p.PrintObj(&items[i], o.Out); err != nil {
				return err
			}
		}
		return nil
	}
	list := &v1alpha1.ServiceAccountImportList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "List"}, Items: items}
	return p.PrintObj(list, o.Out)
}

// importTable is what the table printer shows of imports; columns of priority 1 are -o wide's.
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
