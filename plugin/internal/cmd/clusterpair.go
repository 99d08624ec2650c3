package cmd

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// clusterPair is how bootstrap and federate name their two clusters: the importing target and
// the source it imports from, as TARGET_CONTEXT SOURCE_CONTEXT arguments or as flags, each with
// its own kubeconfig if need be, and named after its context unless a flag names it.
type clusterPair struct {
	TargetContext, TargetKubeconfig, TargetName string
	SourceContext, SourceKubeconfig, SourceName string

	// Target and Source are the clusters' clients after complete.
	Target, Source *kube.Clients
}

// addFlags binds the pair's flags, with completion of the contexts.
func (p *clusterPair) addFlags(cmd *cobra.Command, configFlags *genericclioptions.ConfigFlags) {
	f := cmd.Flags()
	f.StringVar(&p.TargetContext, "target-context", p.TargetContext, "kubeconfig context of the importing cluster")
	f.StringVar(&p.TargetKubeconfig, "target-kubeconfig", p.TargetKubeconfig, "kubeconfig of the importing cluster (default: --kubeconfig or KUBECONFIG)")
	f.StringVar(&p.TargetName, "target-name", p.TargetName, "name of the importing cluster (default: its context's name)")
	f.StringVar(&p.SourceContext, "source-context", p.SourceContext, "kubeconfig context of the cluster imported from")
	f.StringVar(&p.SourceKubeconfig, "source-kubeconfig", p.SourceKubeconfig, "kubeconfig of the cluster imported from (default: --kubeconfig or KUBECONFIG)")
	f.StringVar(&p.SourceName, "source-name", p.SourceName, "name of the cluster imported from (default: its context's name)")
	for _, name := range []string{"target-context", "source-context"} {
		must(cmd.RegisterFlagCompletionFunc(name, func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return contextNames(configFlags), cobra.ShellCompDirectiveNoFileComp
		}))
	}
	for _, name := range []string{"target-kubeconfig", "source-kubeconfig"} {
		must(cmd.MarkFlagFilename(name))
	}
	for _, name := range []string{"target-name", "source-name"} {
		must(cmd.RegisterFlagCompletionFunc(name, noCompletion))
	}
}

// complete resolves the contexts (arguments or flags, not both), connects to both clusters and
// names them: a context's name made a valid object name, with a warning when that changes it.
func (p *clusterPair) complete(command string, args []string, configFlags *genericclioptions.ConfigFlags,
	connect func(kubeconfig, context string) (*kube.Clients, error), u *ui.UI) error {
	if len(args) == 1 {
		return errors.New("give both TARGET_CONTEXT and SOURCE_CONTEXT, or neither with --target-context and --source-context")
	}
	if len(args) == 2 {
		if p.TargetContext != "" || p.SourceContext != "" {
			return errors.New("give the contexts either as arguments or as --target-context/--source-context, not both")
		}
		p.TargetContext, p.SourceContext = args[0], args[1]
	}
	if p.TargetContext == "" || p.SourceContext == "" {
		return fmt.Errorf("name the target and source contexts: `kubectl mcsa %s TARGET_CONTEXT SOURCE_CONTEXT`", command)
	}
	defaultKubeconfig := ptr.Deref(configFlags.KubeConfig, "")
	resolve := func(kubeconfig, context string, name *string, nameFlag string) (*kube.Clients, error) {
		if kubeconfig == "" {
			kubeconfig = defaultKubeconfig
		}
		cl, err := connect(kubeconfig, context)
		if err != nil {
			return nil, fmt.Errorf("context %q: %w", context, err)
		}
		if *name == "" {
			// The context's name, which the docs and every remedy (`--context NAME`) use.
			if *name, err = kube.ObjectName(context, nameFlag); err != nil {
				return nil, err
			}
			if *name != context {
				u.Warn("context %q is not a valid cluster name; naming that cluster %q (set %s to choose): kubectl-mcsa's messages then say `--context %s` where you use `--context %s`",
					context, *name, nameFlag, *name, context)
			}
		}
		return cl, nil
	}
	var err error
	if p.Target, err = resolve(p.TargetKubeconfig, p.TargetContext, &p.TargetName, "--target-name"); err != nil {
		return err
	}
	p.Source, err = resolve(p.SourceKubeconfig, p.SourceContext, &p.SourceName, "--source-name")
	return err
}
