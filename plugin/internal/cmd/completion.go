package cmd

import (
	"context"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"

	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/imports"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
)

// noCompletion offers nothing, not even file names, for free-form arguments and flags.
func noCompletion(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return nil, cobra.ShellCompDirectiveNoFileComp
}

// completeNames offers the names list gives in the namespace that kubectl's flags select (one
// connection per completion, no file names): for the first argument only, or with many for
// every argument, less the names already given.
func completeNames(g kube.Getter, many bool, list func(ctx context.Context, cl *kube.Clients) ([]string, error)) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 && !many {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		cl, err := kube.New(g)
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		names, err := list(ctxFor(cmd), cl)
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		return slices.DeleteFunc(names, func(n string) bool { return slices.Contains(args, n) }), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeImportNames offers the imports of the namespace, for one argument or, with many, for
// each.
func completeImportNames(g kube.Getter, many bool) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return completeNames(g, many, func(ctx context.Context, cl *kube.Clients) ([]string, error) {
		l, err := (&imports.Client{Clients: cl}).List(ctx, cl.Namespace)
		var names []string
		for _, sai := range l {
			names = append(names, sai.Name)
		}
		return names, err
	})
}

// completeAnnotatedPods offers the pods of the namespace that ask for imports.
func completeAnnotatedPods(g kube.Getter) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return completeNames(g, false, func(ctx context.Context, cl *kube.Clients) ([]string, error) {
		l, err := cl.Kube.CoreV1().Pods(cl.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		var names []string
		for _, p := range l.Items {
			if _, ok := p.Annotations[v1alpha1.ImportNameKey]; ok {
				names = append(names, p.Name)
			}
		}
		return names, nil
	})
}

// completeServiceAccounts offers the service accounts of the namespace.
func completeServiceAccounts(g kube.Getter) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return completeNames(g, false, func(ctx context.Context, cl *kube.Clients) ([]string, error) {
		l, err := cl.Kube.CoreV1().ServiceAccounts(cl.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		var names []string
		for _, sa := range l.Items {
			names = append(names, sa.Name)
		}
		return names, nil
	})
}

// completeContextPair completes TARGET_CONTEXT SOURCE_CONTEXT (bootstrap, disconnect) from the
// kubeconfig's contexts.
func completeContextPair(g kube.Getter) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) >= 2 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return contextNames(g), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeList completes a comma-separated list flag (--verbs get,li<TAB>): the values not
// given yet, after those given.
func completeList(values func(cmd *cobra.Command) ([]string, error)) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		all, err := values(cmd)
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		given, prefix := "", toComplete
		if i := strings.LastIndex(toComplete, ","); i >= 0 {
			given, prefix = toComplete[:i+1], toComplete[i+1:]
		}
		done := strings.Split(strings.TrimSuffix(given, ","), ",")
		var out []string
		for _, v := range all {
			if strings.HasPrefix(v, prefix) && !slices.Contains(done, v) {
				out = append(out, given+v)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	}
}

// apiResources lists the resources the cluster serves as --resources reads them: RESOURCE for
// the core group, GROUP/RESOURCE otherwise (no subresources).
func apiResources(g kube.Getter) func(*cobra.Command) ([]string, error) {
	return func(*cobra.Command) ([]string, error) {
		cl, err := kube.New(g)
		if err != nil {
			return nil, err
		}
		lists, err := cl.Kube.Discovery().ServerPreferredResources()
		if len(lists) == 0 && err != nil {
			return nil, err
		}
		var names []string
		for _, l := range lists {
			group, _, _ := strings.Cut(l.GroupVersion, "/")
			if !strings.Contains(l.GroupVersion, "/") {
				group = ""
			}
			for _, r := range l.APIResources {
				if strings.Contains(r.Name, "/") {
					continue
				}
				name := r.Name
				if group != "" {
					name = group + "/" + r.Name
				}
				if !slices.Contains(names, name) {
					names = append(names, name)
				}
			}
		}
		slices.Sort(names)
		return names, nil
	}
}
