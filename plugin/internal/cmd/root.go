// Package cmd is the thin cobra layer of kubectl-mcsa: flags, arguments and output. Every
// command lives in its own file with the shape of kubernetes/sample-cli-plugin: an XOptions
// type made by NewXOptions, a NewCmdX that binds its flags, and Complete (arguments, defaults,
// clients) → Validate (no cluster needed) → Run, which calls an engine package that knows
// nothing of cobra. Commands write only to their IOStreams: results to Out, progress,
// warnings and hints to ErrOut (through package ui), so that Out stays pipeable.
package cmd

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
)

// scheme knows the kinds the plugin prints, so that printers can type them.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}()

// NewRootCmd is `kubectl mcsa`. Every command shares one set of kubectl's connection flags.
func NewRootCmd(streams genericiooptions.IOStreams) *cobra.Command {
	configFlags := genericclioptions.NewConfigFlags(true)
	root := &cobra.Command{
		Use:   "kubectl-mcsa",
		Short: "Multicluster service accounts: pods in one cluster act as service accounts of another",
		Long: `kubectl mcsa lets pods of one cluster call the Kubernetes API of another cluster as a
service account of that cluster, with short-lived tokens that the other cluster granted.

Getting started, with contexts cluster1 (importing) and cluster2 (imported from):

  kubectl mcsa install --context cluster1 --wait
  kubectl mcsa bootstrap cluster1 cluster2
  kubectl mcsa allow cluster1 default/pod-lister --context cluster2
  kubectl mcsa import cluster2/default/pod-lister --context cluster1 --wait

` + exitCodesHelp,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl mcsa"},
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	configFlags.AddFlags(root.PersistentFlags())
	registerConnectionCompletions(root, configFlags)

	root.AddGroup(
		&cobra.Group{ID: "setup", Title: "Set up clusters:"},
		&cobra.Group{ID: "imports", Title: "Work with imports:"},
		&cobra.Group{ID: "debug", Title: "Inspect and debug:"},
	)
	groups := []struct {
		id   string
		cmds []*cobra.Command
	}{
		{"setup", []*cobra.Command{
			NewCmdInstall(streams, configFlags),
			NewCmdUninstall(streams, configFlags),
			NewCmdRender(streams),
			NewCmdBootstrap(streams, configFlags),
			NewCmdFederate(streams, configFlags),
			NewCmdAllow(streams, configFlags),
			NewCmdDisallow(streams, configFlags),
			NewCmdRevoke(streams, configFlags),
			NewCmdDisconnect(streams, configFlags),
			NewCmdUnfederate(streams, configFlags),
		}},
		{"imports", []*cobra.Command{
			NewCmdImport(streams, configFlags),
			NewCmdGet(streams, configFlags),
			NewCmdRotate(streams, configFlags),
			NewCmdKubeconfig(streams, configFlags),
			NewCmdCredential(streams, configFlags),
			NewCmdExport(streams, configFlags),
		}},
		{"debug", []*cobra.Command{
			NewCmdInspect(streams, configFlags),
			NewCmdMounts(streams, configFlags),
			NewCmdDoctor(streams, configFlags),
		}},
	}
	for _, g := range groups {
		for _, sub := range g.cmds {
			sub.GroupID = g.id
			root.AddCommand(sub)
		}
	}
	root.AddCommand(NewCmdVersion(streams, configFlags))
	return root
}

// Execute runs the root command with os.Args and returns the process exit code.
func Execute(streams genericiooptions.IOStreams) int {
	root := NewRootCmd(streams)
	markUsageErrors(root)
	err := root.Execute()
	// A check's silent failure: its -o json|yaml output already says why.
	var check checkFailed
	if silent := errors.As(err, &check) && check.msg == ""; err != nil && !silent {
		fmt.Fprintln(streams.ErrOut, "error:", err)
	}
	return exitCode(err)
}

// errSilent fails a check whose output (-o json|yaml) already said why.
var errSilent = checkFailed{}

// clientsFunc builds the clients of the context that kubectl's flags select. Options hold one
// rather than the flags so that tests can hand them fake clients.
type clientsFunc func() (*kube.Clients, error)

func clientsFor(g kube.Getter) clientsFunc {
	return func() (*kube.Clients, error) { return kube.New(g) }
}

// registerConnectionCompletions completes --context, --cluster and --namespace from the
// kubeconfig and the cluster.
func registerConnectionCompletions(root *cobra.Command, configFlags *genericclioptions.ConfigFlags) {
	must(root.RegisterFlagCompletionFunc("context", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return contextNames(configFlags), cobra.ShellCompDirectiveNoFileComp
	}))
	must(root.RegisterFlagCompletionFunc("cluster", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		raw, err := configFlags.ToRawKubeConfigLoader().RawConfig()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var names []string
		for name := range raw.Clusters {
			names = append(names, name)
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}))
	must(root.RegisterFlagCompletionFunc("namespace", func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		cl, err := kube.New(configFlags)
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		l, err := cl.Kube.CoreV1().Namespaces().List(ctxFor(cmd), metav1.ListOptions{})
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var names []string
		for _, ns := range l.Items {
			names = append(names, ns.Name)
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}))
}

func contextNames(g kube.Getter) []string {
	raw, err := g.ToRawKubeConfigLoader().RawConfig()
	if err != nil {
		return nil
	}
	var names []string
	for name := range raw.Contexts {
		names = append(names, name)
	}
	return names
}

// options is the one shape of every command (kubernetes/sample-cli-plugin): read the arguments
// and connect, check, then act. runE is how each command's cobra.Command runs it, so a command
// cannot skip a step or reorder them.
type options interface {
	Complete(cmd *cobra.Command, args []string) error
	Validate() error
	Run(ctx context.Context) error
}

// runE runs o's Complete, Validate and Run, stopping at the first error.
func runE(o options) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := o.Complete(cmd, args); err != nil {
			return err
		}
		if err := o.Validate(); err != nil {
			return err
		}
		return o.Run(ctxFor(cmd))
	}
}

// ctxFor is the command's context; completions run without one.
func ctxFor(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// must panics on errors that only a programming mistake causes (registering a completion for
// a flag that does not exist).
func must(err error) {
	if err != nil {
		panic(err)
	}
}
