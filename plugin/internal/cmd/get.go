package cmd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/client-go/util/jsonpath"
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
	// Selector, NoHeaders and SortBy are kubectl get's -l, --no-headers and --sort-by.
	Selector  string
	NoHeaders bool
	SortBy    string
	// Watch is kubectl get's -w: after the current imports, every change, until interrupted.
	Watch bool

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
  kubectl mcsa get cluster2-default-pod-lister -o yaml
  kubectl mcsa get -A -l team=payments --sort-by .status.expirationTimestamp --no-headers`,
		ValidArgsFunction: completeImportNames(configFlags, true),
		RunE:              runE(o),
	}
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", o.AllNamespaces, "list imports of every namespace")
	cmd.Flags().StringVarP(&o.Selector, "selector", "l", o.Selector, "label selector to filter on, as kubectl's (e.g. -l key1=value1,key2!=value2)")
	cmd.Flags().BoolVar(&o.NoHeaders, "no-headers", o.NoHeaders, "print the table without its header line")
	cmd.Flags().StringVar(&o.SortBy, "sort-by", o.SortBy, "sort by a JSONPath of the import, as kubectl's (e.g. .status.expirationTimestamp)")
	cmd.Flags().BoolVarP(&o.Watch, "watch", "w", o.Watch, "after listing, print each change to the imports, until interrupted")
	must(cmd.RegisterFlagCompletionFunc("selector", noCompletion))
	must(cmd.RegisterFlagCompletionFunc("sort-by", cobra.FixedCompletions([]string{
		".metadata.name", ".metadata.namespace", ".spec.clusterName", ".status.expirationTimestamp", ".status.lastRefreshTime", ".metadata.creationTimestamp",
	}, cobra.ShellCompDirectiveNoFileComp)))
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

// Validate checks the selector and the sort key; the printer flags are checked when the printer
// is made.
func (o *GetOptions) Validate() error {
	if o.Selector != "" && len(o.Names) > 0 {
		return errors.New("name imports or select them with -l, not both")
	}
	if o.Selector != "" {
		if _, err := labels.Parse(o.Selector); err != nil {
			return fmt.Errorf("-l %q: %w", o.Selector, err)
		}
	}
	if o.SortBy != "" {
		if _, err := sortKeyParser(o.SortBy); err != nil {
			return err
		}
	}
	if o.Watch && len(o.Names) > 1 {
		return errors.New("-w watches one named import, or the imports -l selects")
	}
	return nil
}

// Run lists and prints: a table like kubectl's by default, or any of kubectl's printers.
func (o *GetOptions) Run(ctx context.Context) error {
	if o.Watch {
		return o.watch(ctx)
	}
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
		if items, err = client.ListSelected(ctx, ns, o.Selector); err != nil {
			return err
		}
	}
	sort.Slice(items, func(i, j int) bool {
		if items[i].Namespace != items[j].Namespace {
			return items[i].Namespace < items[j].Namespace
		}
		return items[i].Name < items[j].Name
	})
	if o.SortBy != "" {
		if err := sortByJSONPath(items, o.SortBy); err != nil {
			return err
		}
	}
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
		p := printers.NewTablePrinter(printers.PrintOptions{Wide: output == "wide", WithNamespace: o.AllNamespaces, NoHeaders: o.NoHeaders})
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
		switch {
		case v1alpha1.IsFederated(sai):
			// Nothing imported expires: each pod's own token is renewed by its kubelet.
			expires = "<federated>"
		case sai.Status.ExpirationTimestamp != nil:
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

// sortKeyParser parses a --sort-by JSONPath, with or without kubectl's braces.
func sortKeyParser(expr string) (*jsonpath.JSONPath, error) {
	if !strings.HasPrefix(expr, "{") {
		expr = "{" + expr + "}"
	}
	jp := jsonpath.New("sort-by").AllowMissingKeys(true)
	if err := jp.Parse(expr); err != nil {
		return nil, fmt.Errorf("--sort-by %q: %w", expr, err)
	}
	return jp, nil
}

// sortByJSONPath sorts items (stably: the namespace/name order stays among equals) by the value
// at expr, as kubectl's --sort-by: numbers by value, anything else by its text; an import without
// the field sorts first.
func sortByJSONPath(items []v1alpha1.ServiceAccountImport, expr string) error {
	jp, err := sortKeyParser(expr)
	if err != nil {
		return err
	}
	type key struct {
		num   float64
		isNum bool
		text  string
	}
	keys := make(map[string]key, len(items))
	for i := range items {
		obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&items[i])
		if err != nil {
			return err
		}
		results, err := jp.FindResults(obj)
		if err != nil {
			return fmt.Errorf("--sort-by %q: %w", expr, err)
		}
		var k key
		if len(results) > 0 && len(results[0]) > 0 {
			switch v := results[0][0].Interface().(type) {
			case int64:
				k = key{num: float64(v), isNum: true}
			case float64:
				k = key{num: v, isNum: true}
			default:
				k = key{text: fmt.Sprint(v)}
			}
		}
		keys[items[i].Namespace+"/"+items[i].Name] = k
	}
	slices.SortStableFunc(items, func(a, b v1alpha1.ServiceAccountImport) int {
		ka, kb := keys[a.Namespace+"/"+a.Name], keys[b.Namespace+"/"+b.Name]
		if ka.isNum && kb.isNum {
			return cmp.Compare(ka.num, kb.num)
		}
		return strings.Compare(ka.text, kb.text)
	})
	return nil
}

// watch prints the imports as a watch from "now" delivers them: first one ADDED event for each
// import that exists (the API server's initial state), then every change, one row (or object)
// per event, until ctx ends or the server closes the watch.
func (o *GetOptions) watch(ctx context.Context) error {
	ns := o.clients.Namespace
	if o.AllNamespaces {
		ns = ""
	}
	opts := metav1.ListOptions{LabelSelector: o.Selector}
	if len(o.Names) == 1 {
		opts.FieldSelector = fields.OneTermEqualSelector("metadata.name", o.Names[0]).String()
	}
	w, err := o.clients.Dynamic.Resource(v1alpha1.Resource).Namespace(ns).Watch(ctx, opts)
	if err != nil {
		return o.clients.APIError(err)
	}
	defer w.Stop()
	output := ptr.Deref(o.printFlags.OutputFormat, "")
	table := output == "" || output == "wide"
	var p printers.ResourcePrinter
	if !table {
		if p, err = o.printFlags.ToPrinter(); err != nil {
			return err
		}
	}
	headers := !o.NoHeaders
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.ResultChan():
			if !ok {
				return nil
			}
			if ev.Type == watch.Error {
				return o.clients.APIError(apierrors.FromObject(ev.Object))
			}
			u, ok := ev.Object.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			var sai v1alpha1.ServiceAccountImport
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &sai); err != nil {
				return err
			}
			if !table {
				if err := p.PrintObj(&sai, o.Out); err != nil {
					return err
				}
				continue
			}
			tp := printers.NewTablePrinter(printers.PrintOptions{Wide: output == "wide", WithNamespace: o.AllNamespaces, NoHeaders: !headers})
			if err := tp.PrintObj(importTable([]v1alpha1.ServiceAccountImport{sai}, o.now()), o.Out); err != nil {
				return err
			}
			headers = false
		}
	}
}
