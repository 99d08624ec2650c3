package cmd

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// Dry runs and GitOps: the commands that write (bootstrap, allow, import, as federate) take
// kubectl's --dry-run (none, client or server; bare --dry-run is client) and, for -o yaml|json,
// print the objects they write, or would: without the fields the API server sets, so that
// `kubectl apply -f` (or a Git repository synced to the cluster) writes them the same.

// addDryRunFlag binds kubectl's --dry-run to value: none, client (bare --dry-run) or server.
func addDryRunFlag(cmd *cobra.Command, value *string, usage string) {
	cmd.Flags().StringVar(value, "dry-run", *value, usage)
	cmd.Flags().Lookup("dry-run").NoOptDefVal = "client"
	must(cmd.RegisterFlagCompletionFunc("dry-run", cobra.FixedCompletions([]string{"none", "client", "server"}, cobra.ShellCompDirectiveNoFileComp)))
}

// addObjectsOutputFlag binds -o for commands that print the objects they write as a List.
func addObjectsOutputFlag(cmd *cobra.Command, value *string, usage string) {
	cmd.Flags().StringVarP(value, "output", "o", *value, usage)
	must(cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"yaml", "json"}, cobra.ShellCompDirectiveNoFileComp)))
}

// validateObjectsOutput checks -o of those commands.
func validateObjectsOutput(output string) error {
	if output != "" && output != "yaml" && output != "json" {
		return fmt.Errorf("--output must be yaml or json, not %q", output)
	}
	return nil
}

// dryRunMark is what kubectl appends to an operation in a dry run.
func dryRunMark(dryRun kube.DryRun) string {
	switch dryRun {
	case kube.ClientDryRun:
		return " (dry run)"
	case kube.ServerDryRun:
		return " (server dry run)"
	}
	return ""
}

// printWritten prints what a write did to each object, in kubectl's words, marking dry runs as
// kubectl does: "role.rbac.authorization.k8s.io/x created (dry run)".
func printWritten(w io.Writer, results []kube.Result, dryRun kube.DryRun) error {
	for _, r := range results {
		flags := genericclioptions.NewPrintFlags(string(r.Action) + dryRunMark(dryRun)).WithTypeSetter(scheme)
		p, err := flags.ToPrinter()
		if err != nil {
			return err
		}
		if err := p.PrintObj(r.Object, w); err != nil {
			return err
		}
	}
	return nil
}

// written are the objects of results that were (or would be) created or updated, without the
// fields the API server sets; deletions, which no List can express, are named on u.
func written(results []kube.Result, dryRun kube.DryRun, u *ui.UI) []any {
	items := []any{}
	for _, r := range results {
		switch r.Action {
		case kube.Created, kube.Configured, kube.Unchanged:
			items = append(items, kube.WithoutServerFields(r.Object).Object)
		case kube.Deleted:
			u.Warn("%s %s/%s %s%s: the printed objects are only applied; delete it where they are", strings.ToLower(r.Object.GetKind()),
				r.Object.GetNamespace(), r.Object.GetName(), r.Action, dryRunMark(dryRun))
		}
	}
	return items
}

// objectsList is a kubectl List of items.
func objectsList(items []any) map[string]any {
	return map[string]any{"apiVersion": "v1", "kind": "List", "items": items}
}

// ContextAnnotation names, on each List bootstrap prints, the kubeconfig context of the cluster
// its objects are for.
const ContextAnnotation = "kubectl-mcsa.admiralty.io/context"

// clusterList is the List of the objects written in one cluster.
type clusterList struct {
	// Context is the cluster's kubeconfig context, Role what it is to the command.
	Context, Role string
	Items         []any
}

// printClusterLists prints one List per cluster, for `kubectl apply --context CONTEXT -f`
// each: in YAML, documents each under a comment naming the cluster; in JSON, a stream of
// Lists. Each List also names its context in an annotation.
func printClusterLists(w io.Writer, output string, lists []clusterList) error {
	for i, l := range lists {
		list := objectsList(l.Items)
		list["metadata"] = map[string]any{"annotations": map[string]any{ContextAnnotation: l.Context}}
		switch output {
		case "yaml":
			b, err := yaml.Marshal(list)
			if err != nil {
				return err
			}
			sep := ""
			if i > 0 {
				sep = "---\n"
			}
			if _, err := fmt.Fprintf(w, "%s# cluster: %s (%s)\n%s", sep, l.Context, l.Role, b); err != nil {
				return err
			}
		case "json":
			b, err := json.MarshalIndent(list, "", "  ")
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintln(w, string(b)); err != nil {
				return err
			}
		default:
			return fmt.Errorf("--output must be yaml or json, not %q", output)
		}
	}
	return nil
}
