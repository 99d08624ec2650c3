package cmd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	clientauthv1 "k8s.io/client-go/pkg/apis/clientauthentication/v1"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/config"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/version"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/execcredential"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
)

// CredentialOptions are `kubectl mcsa credential`'s.
type CredentialOptions struct {
	genericiooptions.IOStreams
	now    func() time.Time
	getenv func(string) string
	// mountDir is where an import is mounted in a pod.
	mountDir func(name string) string
	// connect gives a client of the context that kubectl's flags select, without discovery.
	connect clientsFunc
	// namespaceFlag, contextFlag and kubeconfigFlag are kubectl's flags as given ("" when not).
	namespaceFlag, contextFlag, kubeconfigFlag func() string

	Name string
	// Namespace is the import's namespace in the importing cluster: -n, else the exec info's,
	// else the context's (filled in by Run when it reads the secret).
	Namespace string
	// ProviderFile prints the ClusterProfile consumers' provider file that runs this command
	// instead of a credential.
	ProviderFile bool
	// ExecCommand is the program the provider file runs.
	ExecCommand string
}

// NewCredentialOptions are credential's defaults.
func NewCredentialOptions(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *CredentialOptions {
	return &CredentialOptions{
		IOStreams:      streams,
		now:            time.Now,
		getenv:         os.Getenv,
		mountDir:       config.ServiceAccountImportDir,
		connect:        lightClientsFor(configFlags),
		namespaceFlag:  flagValue(configFlags.Namespace),
		contextFlag:    flagValue(configFlags.Context),
		kubeconfigFlag: flagValue(configFlags.KubeConfig),
		ExecCommand:    pluginBinary,
	}
}

// flagValue reads one of kubectl's flags ("" when it is not bound).
func flagValue(p *string) func() string {
	return func() string {
		if p == nil {
			return ""
		}
		return *p
	}
}

// NewCmdCredential is `kubectl mcsa credential`.
func NewCmdCredential(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *cobra.Command {
	o := NewCredentialOptions(streams, configFlags)
	cmd := &cobra.Command{
		Use:   "credential [NAME]",
		Short: "Print an import's token as a client-go exec credential (for kubeconfigs)",
		Long: `Print an import's current token as a client-go exec credential (an ExecCredential of
client.authentication.k8s.io/v1), for the users of kubeconfigs written by
` + "`kubectl mcsa kubeconfig NAME --exec`" + `: clients run it whenever they need a token.

In a pod where the import is mounted, it reads the mounted token (no API call). Elsewhere it
reads the import's secret in the importing cluster, with your kubeconfig and your access
(--context, --kubeconfig, -n).

A federated import (spec.mode: Federated) has no token of its own: its pods present their own
service-account token and impersonate the remote service account, which an exec credential
cannot carry. The command refuses it and names what serves it instead: the kubeconfig mounted
with it (file config), or the Go library incluster/config.

The credential expires at the earliest time the importer may refresh the token (75 % of its
lifetime), so that clients run the command again before the token changes and never hold an
expired one. The import's name comes from NAME, else from the cluster's
client.authentication.k8s.io/exec extension that clients pass in KUBERNETES_EXEC_INFO.

With --provider-file, it prints instead the provider file that consumers of ClusterProfiles
(sigs.k8s.io/cluster-inventory-api/pkg/access: multicluster-runtime, Kueue, Argo CD…) read to
reach the clusters kubectl-mcsa publishes (install --cluster-profiles): it runs this command
with -n, --context and --kubeconfig as given, and each profile names the import, after its
cluster, in the consumer's namespace (docs/cluster-profiles.md).`,
		Example: `  kubectl mcsa credential cluster2-default-pod-lister -n default --context cluster1

  # A provider file for a consumer in a pod, with the plugin at /mcsa/kubectl-mcsa.
  kubectl mcsa credential --provider-file --exec-command /mcsa/kubectl-mcsa > provider.json`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeImportNames(configFlags, false),
		RunE:              runE(o),
	}
	cmd.Flags().BoolVar(&o.ProviderFile, "provider-file", o.ProviderFile, "Print the ClusterProfile access providers file (KEP-5339) that runs this command for the profiles kubectl-mcsa publishes, instead of a credential")
	cmd.Flags().StringVar(&o.ExecCommand, "exec-command", o.ExecCommand, "With --provider-file, the program the consumer runs: kubectl (run as 'kubectl mcsa credential') or a path to kubectl-mcsa")
	return cmd
}

// Complete reads the name and namespace from the arguments, -n and the exec info.
func (o *CredentialOptions) Complete(_ *cobra.Command, args []string) error {
	info, err := execcredential.ParseExecInfo(o.getenv(execcredential.ExecInfoEnv))
	if err != nil {
		return err
	}
	if len(args) > 0 {
		o.Name = args[0]
	}
	o.Namespace = o.namespaceFlag()
	if info != nil {
		if o.Name == "" {
			o.Name = info.Import
		}
		if o.Namespace == "" {
			o.Namespace = info.Namespace
		}
	}
	return nil
}

// Validate checks the name.
func (o *CredentialOptions) Validate() error {
	if o.ProviderFile {
		if o.Name != "" {
			return errors.New("--provider-file takes no NAME: each ClusterProfile names its import")
		}
		return nil
	}
	if o.ExecCommand != "" && o.ExecCommand != pluginBinary {
		return errors.New("--exec-command needs --provider-file")
	}
	if o.Name == "" {
		return errors.New("no import named: pass NAME, write the kubeconfig with `kubectl mcsa kubeconfig NAME --exec`, or read a ClusterProfile published by kubectl-mcsa (docs/cluster-profiles.md)")
	}
	if errs := validation.IsDNS1123Subdomain(o.Name); len(errs) > 0 {
		return fmt.Errorf("%q is not an import name: %s", o.Name, strings.Join(errs, "; "))
	}
	return nil
}

// Run prints the credential of the mounted import, else of the import's secret; or the
// provider file.
func (o *CredentialOptions) Run(ctx context.Context) error {
	if o.ProviderFile {
		return o.printProviderFile()
	}
	ec, err := o.credential(ctx)
	if err != nil {
		return err
	}
	b, err := execcredential.Encode(ec)
	if err != nil {
		return err
	}
	_, err = o.Out.Write(b)
	return err
}

// printProviderFile prints the provider file whose plugin is this command with the flags given
// here: the consumer's kubeconfig, context and namespace when it runs outside a pod, none in a
// pod where the imports are mounted.
func (o *CredentialOptions) printProviderFile() error {
	var args []string
	if filepath.Base(o.ExecCommand) == "kubectl" {
		args = append(args, "mcsa")
	}
	args = append(args, "credential")
	if o.Namespace != "" {
		args = append(args, "-n", o.Namespace)
	}
	if c := o.contextFlag(); c != "" {
		args = append(args, "--context", c)
	}
	if k := o.kubeconfigFlag(); k != "" {
		abs, err := filepath.Abs(k)
		if err != nil {
			return err
		}
		args = append(args, "--kubeconfig", abs)
	}
	b, err := execcredential.ProviderFile(execcredential.Exec{Command: o.ExecCommand, Args: args})
	if err != nil {
		return err
	}
	_, err = o.Out.Write(b)
	return err
}

// federatedAlternative says what serves a federated import instead of an exec credential.
func federatedAlternative(dir string) string {
	return fmt.Sprintf("in a pod that mounts it, use the mounted kubeconfig %s (kubectl --kubeconfig %s, or KUBECONFIG), or in Go the library %s (NamedConfigAndNamespace), which impersonate",
		filepath.Join(dir, v1alpha1.SecretKeyConfig), filepath.Join(dir, v1alpha1.SecretKeyConfig), configLibrary)
}

// configLibrary is the Go library that builds clients of mounted imports.
const configLibrary = "github.com/kubectl-mcsa/kubectl-mcsa/incluster/config"

// errFederated refuses a federated import (spec.mode: Federated): its pods present their own
// service-account token and impersonate the remote service account (as), and an ExecCredential
// carries a token or a client certificate, never impersonation.
func (o *CredentialOptions) errFederated(where, as string) error {
	who := "the remote service account"
	if as != "" {
		who = as
	}
	return fmt.Errorf("import %s %s is federated (secretless): it has no token of its own to print, as its pods authenticate with their own service-account token and act as %s by impersonation, which an exec credential cannot carry: %s",
		o.Name, where, who, federatedAlternative(o.mountDir(o.Name)))
}

func (o *CredentialOptions) credential(ctx context.Context) (*clientauthv1.ExecCredential, error) {
	dir := o.mountDir(o.Name)
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		// A federated import's mount has its `as` file; a token import's has none.
		if as, err := os.ReadFile(filepath.Join(dir, v1alpha1.KeyAs)); err == nil {
			return nil, o.errFederated("mounted at "+dir, strings.TrimSpace(string(as)))
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("import %s mounted at %s: %w", o.Name, dir, err)
		}
		ec, err := execcredential.FromDir(dir, o.now())
		if err != nil {
			return nil, fmt.Errorf("import %s mounted at %s: %w (is the import Ready? kubectl get serviceaccountimport %s -n <the pod's namespace>)", o.Name, dir, err, o.Name)
		}
		return ec, nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("import %s: %w", o.Name, err)
	}
	clients, err := o.connect()
	if err != nil {
		return nil, err
	}
	ns := o.Namespace
	if ns == "" {
		ns = clients.Namespace
	}
	name := v1alpha1.SecretName(o.Name)
	secret, err := clients.Kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		// A federated import has no secret, but a ConfigMap.
		if cm, cmErr := clients.Kube.CoreV1().ConfigMaps(ns).Get(ctx, v1alpha1.FederatedConfigMapName(o.Name), metav1.GetOptions{}); cmErr == nil && cm.Data[v1alpha1.KeyAs] != "" {
			return nil, o.errFederated(fmt.Sprintf("in namespace %s of %s", ns, clients.Describe()), cm.Data[v1alpha1.KeyAs])
		}
		return nil, fmt.Errorf("import %s has no secret %s in namespace %s of %s: check it with `kubectl mcsa get %s -n %s%s`", o.Name, name, ns, clients.Describe(), o.Name, ns, clients.ContextFlag())
	case apierrors.IsForbidden(err):
		return nil, fmt.Errorf("reading the secret of import %s in namespace %s of %s: %w (you need `get secrets` there: kubectl auth can-i get secret/%s -n %s%s)", o.Name, ns, clients.Describe(), err, name, ns, clients.ContextFlag())
	case err != nil:
		return nil, fmt.Errorf("reading the secret of import %s in namespace %s of %s: %w", o.Name, ns, clients.Describe(), err)
	}
	ec, err := execcredential.FromSecretData(secret.Data, o.now())
	if err != nil {
		return nil, fmt.Errorf("secret %s/%s of import %s: %w (is the importer running? kubectl mcsa doctor%s)", ns, name, o.Name, err, clients.ContextFlag())
	}
	return ec, nil
}

// lightClientsFor builds a typed client of the context that kubectl's flags select, without
// the dynamic client and REST mapper of kube.New: commands run by client-go on every
// credential refresh must be fast.
func lightClientsFor(f *genericclioptions.ConfigFlags) clientsFunc {
	return func() (*kube.Clients, error) {
		loader := f.ToRawKubeConfigLoader()
		raw, err := loader.RawConfig()
		if err != nil {
			return nil, fmt.Errorf("reading kubeconfig: %w", err)
		}
		cfg, err := loader.ClientConfig()
		if err != nil {
			return nil, kube.ConfigError(err)
		}
		cfg.UserAgent = "kubectl-mcsa/" + version.Version
		ns, _, err := loader.Namespace()
		if err != nil {
			return nil, err
		}
		kc, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return nil, err
		}
		ctxName := raw.CurrentContext
		if f.Context != nil && *f.Context != "" {
			ctxName = *f.Context
		}
		return &kube.Clients{Context: ctxName, Namespace: ns, Config: cfg, Kube: kc, Raw: raw}, nil
	}
}
