// Package cmd is the thin cobra layer of kubectl-mcsa: flags, arguments and output. Each
// command has an Options type (Complete → Validate → Run) that calls an engine package, which
// knows nothing of cobra.
package cmd

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// scheme knows the kinds the plugin prints.
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

// common is what every command shares: kubectl's connection flags and the IO streams.
type common struct {
	flags   *genericclioptions.ConfigFlags
	streams genericiooptions.IOStreams
	ui      *ui.UI
}

func (c *common) clients() (*kube.Clients, error) { return kube.New(c.flags) }

// NewRootCmd is `kubectl mcsa`. args are the command line without the program name.
func NewRootCmd(streams genericiooptions.IOStreams) *cobra.Command {
	c := &common{
		flags:   genericclioptions.NewConfigFlags(true),
		streams: streams,
		ui:      ui.New(streams.ErrOut),
	}
	root := &cobra.Command{
		Use:   "kubectl-mcsa",
		Short: "Multicluster service accounts: pods in one cluster act as service accounts of another",
		Long: `kubectl mcsa lets pods of one cluster call the Kubernetes API of another cluster as a
service account of that cluster, with short-lived tokens that the other cluster granted.

Getting started, with contexts cluster1 (importing) and cluster2 (imported from):

  kubectl mcsa install --context cluster1 --wait
  kubectl mcsa bootstrap cluster1 cluster2
  kubectl mcsa allow cluster1 default/pod-lister --context cluster2
  kubectl mcsa import cluster2/default/pod-lister --context cluster1 --wait`,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl mcsa"},
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	c.flags.AddFlags(root.PersistentFlags())
	registerConnectionCompletions(root, c)

	root.AddGroup(
		&cobra.Group{ID: "setup", Title: "Set up clusters:"},
		&cobra.Group{ID: "imports", Title: "Work with imports:"},
		&cobra.Group{ID: "debug", Title: "Inspect and debug:"},
	)
	for _, sub := range []*cobra.Command{newInstallCmd(c), newUninstallCmd(c), newRenderCmd(c), newBootstrapCmd(c), newAllowCmd(c), newDisallowCmd(c)} {
		sub.GroupID = "setup"
		root.AddCommand(sub)
	}
	for _, sub := range []*cobra.Command{newImportCmd(c), newGetCmd(c), newRotateCmd(c), newKubeconfigCmd(c), newExportCmd(c)} {
		sub.GroupID = "imports"
		root.AddCommand(sub)
	}
	for _, sub := range []*cobra.Command{newInspectCmd(c), newMountsCmd(c), newDoctorCmd(c)} {
		sub.GroupID = "debug"
		root.AddCommand(sub)
	}
	root.AddCommand(newVersionCmd(c))
	return root
}

// Execute runs the root command with os.Args and returns the process exit code.
func Execute(streams genericiooptions.IOStreams) int {
	root := NewRootCmd(streams)
	if err := root.Execute(); err != nil {
		if err != errSilent {
			fmt.Fprintln(streams.ErrOut, "error:", err)
		}
		return 1
	}
	return 0
}

// registerConnectionCompletions completes --context, --cluster and --namespace from the
// kubeconfig and the cluster.
func registerConnectionCompletions(root *cobra.Command, c *common) {
	must(root.RegisterFlagCompletionFunc("context", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return contextNames(c.flags), cobra.ShellCompDirectiveNoFileComp
	}))
	must(root.RegisterFlagCompletionFunc("cluster", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		raw, err := c.flags.ToRawKubeConfigLoader().RawConfig()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var names []string
		for name := range raw.Clusters {
			names = append(names, name)
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}))
	must(root.RegisterFlagCompletionFunc("namespace", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		cl, err := c.clients()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		l, err := cl.Kube.CoreV1().Namespaces().List(ctxFor(root), listOptions())
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

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// binaryName is how the user called us, for messages: "kubectl mcsa" through kubectl.
func binaryName() string {
	if strings.HasPrefix(filepath.Base(os.Args[0]), "kubectl-") {
		return "kubectl mcsa"
	}
	return filepath.Base(os.Args[0])
}
