package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/credential"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/execcredential"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/imports"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// KubeconfigOptions are `kubectl mcsa kubeconfig`'s.
type KubeconfigOptions struct {
	genericiooptions.IOStreams
	ui      *ui.UI
	connect clientsFunc
	now     func() time.Time
	// kubeconfigFlag is --kubeconfig as given ("" when not).
	kubeconfigFlag func() string
	// lookPath and executable find the default --exec-command.
	lookPath   func(string) (string, error)
	executable func() (string, error)

	Name string
	// Exec writes a kubeconfig whose user runs `kubectl mcsa credential` rather than holding the
	// token.
	Exec bool
	// ExecCommand is the program that kubeconfig runs: kubectl-mcsa (its path), or kubectl.
	ExecCommand string

	clients *kube.Clients
}

// NewKubeconfigOptions are kubeconfig's defaults.
func NewKubeconfigOptions(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *KubeconfigOptions {
	return &KubeconfigOptions{IOStreams: streams, ui: ui.New(streams.ErrOut), connect: clientsFor(configFlags), now: time.Now,
		kubeconfigFlag: func() string {
			if configFlags.KubeConfig == nil {
				return ""
			}
			return *configFlags.KubeConfig
		},
		lookPath: exec.LookPath, executable: os.Executable}
}

// NewCmdKubeconfig is `kubectl mcsa kubeconfig`.
func NewCmdKubeconfig(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *cobra.Command {
	o := NewKubeconfigOptions(streams, configFlags)
	cmd := &cobra.Command{
		Use:   "kubeconfig NAME",
		Short: "Print a kubeconfig for an import's remote cluster",
		Long: `Print a kubeconfig for the remote cluster of an import, with its current token and CA inline,
for people and tools outside pods. It stops working when the token expires; pods should use the
mounted import instead, which follows rotation.

With --exec, the kubeconfig holds no token: its user runs ` + "`kubectl mcsa credential NAME`" + `
(a client-go exec credential plugin) with your kubeconfig and context, and gets the import's
current token whenever it needs one. It keeps working as long as the import lives, across
rotations, for whoever may read the import's secret.

A federated import (spec.mode: Federated) has no secret: its pods present their own token and
impersonate the remote service account, with the kubeconfig mounted with it (file config). The
command refuses it, with or without --exec.`,
		Example: `  kubectl mcsa kubeconfig cluster2-default-pod-lister > /tmp/cluster2.kubeconfig
  kubectl --kubeconfig /tmp/cluster2.kubeconfig get pods

  # A kubeconfig that never expires while the import lives.
  (umask 077; kubectl mcsa kubeconfig cluster2-default-pod-lister --exec --context cluster1 > ~/.kube/cluster2)`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeImportNames(configFlags, false),
		RunE:              runE(o),
	}
	cmd.Flags().BoolVar(&o.Exec, "exec", o.Exec, "Write a kubeconfig whose user runs 'kubectl mcsa credential NAME' for each fresh token instead of holding the current one")
	cmd.Flags().StringVar(&o.ExecCommand, "exec-command", o.ExecCommand, "With --exec, the program the kubeconfig runs: kubectl (run as 'kubectl mcsa credential') or a path to kubectl-mcsa (default: kubectl-mcsa if it is in PATH, else this binary's path)")
	return cmd
}

// Complete reads the name and connects.
func (o *KubeconfigOptions) Complete(_ *cobra.Command, args []string) error {
	o.Name = args[0]
	var err error
	o.clients, err = o.connect()
	return err
}

// Validate checks the flags; the import is looked up in Run.
func (o *KubeconfigOptions) Validate() error {
	if o.ExecCommand != "" && !o.Exec {
		return errors.New("--exec-command needs --exec")
	}
	return nil
}

// Run reads the import's secret and prints it as a kubeconfig.
func (o *KubeconfigOptions) Run(ctx context.Context) error {
	client := &imports.Client{Clients: o.clients}
	sai, err := client.Get(ctx, o.clients.Namespace, o.Name)
	if err != nil {
		return err
	}
	if v1alpha1.IsFederated(sai) {
		return o.errFederated(sai)
	}
	secret, err := client.Secret(ctx, sai)
	if err != nil {
		return err
	}
	d := credential.Parse(secret.Data)
	d.ClusterName = sai.Spec.ClusterName
	if err := d.Validate(); err != nil {
		return fmt.Errorf("secret %s/%s of import %s is incomplete: %w", secret.Namespace, secret.Name, sai.Name, err)
	}
	if o.Exec {
		e, err := o.execConfig(sai.Namespace)
		if err != nil {
			return err
		}
		b, err := execcredential.Kubeconfig(d, e)
		if err != nil {
			return err
		}
		if _, err := o.Out.Write(b); err != nil {
			return err
		}
		o.ui.Info("The kubeconfig runs `%s` for each token: it works as long as import %s/%s does.", shellJoin(append([]string{e.Command}, e.Args...)), sai.Namespace, sai.Name)
		return nil
	}
	b, err := d.InlineKubeconfig()
	if err != nil {
		return err
	}
	if _, err := o.Out.Write(b); err != nil {
		return err
	}
	if sai.Status.ExpirationTimestamp != nil {
		o.ui.Info("The token expires %s.", expiresIn(sai, o.now()))
	}
	return nil
}

// errFederated refuses a federated import: it has no secret, and no token of its own. Its pods
// present their own service-account token and impersonate the remote service account, which
// neither a token in a kubeconfig nor an exec credential (--exec) carries.
func (o *KubeconfigOptions) errFederated(sai *v1alpha1.ServiceAccountImport) error {
	as := v1alpha1.ServiceAccountUser(sai.Spec.Namespace, sai.Spec.Name)
	why := "it has no secret and no token to put in a kubeconfig"
	if o.Exec {
		why = "`kubectl mcsa credential` cannot serve it, as an exec credential carries a token and never the impersonation it needs"
	}
	return fmt.Errorf("import %s/%s is federated (secretless): %s. Its pods present their own service-account token to %s and act as %s by impersonation: %s",
		sai.Namespace, sai.Name, why, sai.Spec.ClusterName, as, federatedAlternative(v1alpha1.MountPath(sai.Name)))
}

// execConfig is the command line of `kubectl mcsa credential` for the import in namespace ns,
// as the kubeconfig's user runs it: with the context (and kubeconfig file, when given) that
// reached the import.
func (o *KubeconfigOptions) execConfig(ns string) (execcredential.Exec, error) {
	command := o.ExecCommand
	if command == "" {
		if _, err := o.lookPath(pluginBinary); err == nil {
			command = pluginBinary
		} else if command, err = o.executable(); err != nil {
			return execcredential.Exec{}, fmt.Errorf("finding kubectl-mcsa's path for --exec: %w (pass --exec-command)", err)
		}
	}
	var args []string
	if filepath.Base(command) == "kubectl" {
		args = append(args, "mcsa")
	}
	args = append(args, "credential", o.Name, "-n", ns)
	if o.clients.Context != "" {
		args = append(args, "--context", o.clients.Context)
	}
	if k := o.kubeconfigFlag(); k != "" {
		abs, err := filepath.Abs(k)
		if err != nil {
			return execcredential.Exec{}, err
		}
		args = append(args, "--kubeconfig", abs)
	}
	return execcredential.Exec{Command: command, Args: args, Cluster: execcredential.ClusterConfig{Import: o.Name, Namespace: ns}}, nil
}

// pluginBinary is the plugin's program name, as kubectl finds it in PATH.
const pluginBinary = "kubectl-mcsa"

// shellJoin quotes args for a message that people may paste into a shell.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`;&|<>()*?[]#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
