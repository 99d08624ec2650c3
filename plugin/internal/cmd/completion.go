package cmd

import (
	"github.com/spf13/cobra"

	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/imports"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
)

// noCompletion offers nothing, not even file names, for free-form arguments and flags.
func noCompletion(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return nil, cobra.ShellCompDirectiveNoFileComp
}

// completeImportNames offers the imports of the namespace.
func completeImportNames(g kube.Getter) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		cl, err := kube.New(g)
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
