// Package kube gives the plugin's engines their clients from kubectl's standard flags
// (--kubeconfig, --context, -n, …) and turns common API errors into errors that name the fix.
package kube

import (
	"errors"
	"fmt"
	"os"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/version"
)

// Clients are the clients of one kubeconfig context.
type Clients struct {
	// Context is the context's name ("" when the kubeconfig has none, e.g. in cluster).
	Context string
	// Namespace is -n, else the context's namespace, else "default".
	Namespace string
	Config    *rest.Config
	Kube      kubernetes.Interface
	Dynamic   dynamic.Interface
	Mapper    meta.RESTMapper
	// Raw is the merged kubeconfig the context comes from.
	Raw clientcmdapi.Config
	// DryRun makes the writes of the engines through these clients dry (kubectl's --dry-run):
	// Apply and Delete honour it, and so must every other write.
	DryRun DryRun
}

// Getter is where the clients come from: kubectl's flags, or anything in tests.
type Getter interface {
	genericclioptions.RESTClientGetter
}

// New builds the clients for the context selected by g.
func New(g Getter) (*Clients, error) {
	loader := g.ToRawKubeConfigLoader()
	raw, err := loader.RawConfig()
	if err != nil {
		return nil, kubeconfigError{fmt.Errorf("reading kubeconfig: %w", err)}
	}
	if len(raw.Contexts) == 0 && !explicitServer(g) && os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		// client-go would fall back to http://localhost:8080, which is never what is meant.
		return nil, fmt.Errorf("%w: set KUBECONFIG or pass --kubeconfig (or --server)", ErrNoKubeconfig)
	}
	cfg, err := g.ToRESTConfig()
	if err != nil {
		return nil, ConfigError(err)
	}
	cfg.UserAgent = "kubectl-mcsa/" + version.Version
	ns, _, err := loader.Namespace()
	if err != nil {
		return nil, err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	mapper, err := g.ToRESTMapper()
	if err != nil {
		return nil, err
	}
	ctxName := raw.CurrentContext
	if cf, ok := g.(*genericclioptions.ConfigFlags); ok && cf.Context != nil && *cf.Context != "" {
		ctxName = *cf.Context
	}
	return &Clients{Context: ctxName, Namespace: ns, Config: cfg, Kube: kube, Dynamic: dyn, Mapper: mapper, Raw: raw}, nil
}

func explicitServer(g Getter) bool {
	cf, ok := g.(*genericclioptions.ConfigFlags)
	return ok && cf.APIServer != nil && *cf.APIServer != ""
}

// ForContext is a Getter for a context of a kubeconfig file ("" for the default loading
// rules), as bootstrap's --target-* and --source-* flags name them.
func ForContext(kubeconfig, context string) *genericclioptions.ConfigFlags {
	f := genericclioptions.NewConfigFlags(true)
	f.KubeConfig = &kubeconfig
	f.Context = &context
	return f
}

// ErrNoKubeconfig and ErrKubeconfig mark errors of the kubeconfig (none found, or one that
// names a context, cluster or user it lacks), which the command line cannot connect with.
var (
	ErrNoKubeconfig = errors.New("no kubeconfig found")
	ErrKubeconfig   = errors.New("kubeconfig")
)

// kubeconfigError is an error of the kubeconfig: errors.Is(err, ErrKubeconfig).
type kubeconfigError struct{ error }

func (e kubeconfigError) Unwrap() []error { return []error{e.error, ErrKubeconfig} }

// ConfigError explains kubeconfig problems in kubectl's words, with the fix.
func ConfigError(err error) error {
	switch {
	case clientcmd.IsEmptyConfig(err):
		return fmt.Errorf("%w: set KUBECONFIG or pass --kubeconfig", ErrNoKubeconfig)
	// client-go has a predicate for a missing --context only; a missing context named by the
	// kubeconfig, --cluster or --user fails with a plain `… "x" does not exist`.
	case clientcmd.IsContextNotFound(err), strings.Contains(err.Error(), "does not exist"):
		return kubeconfigError{fmt.Errorf("%w (list contexts with `kubectl config get-contexts`)", err)}
	}
	return err
}

// ClusterName is the kubeconfig cluster name of a context ("" if unknown).
func (c *Clients) ClusterName() string {
	if ctx, ok := c.Raw.Contexts[c.Context]; ok {
		return ctx.Cluster
	}
	return ""
}

// Describe names the context for messages: `context "x"`, or "the current context".
func (c *Clients) Describe() string {
	if c.Context == "" {
		return "the current context"
	}
	return fmt.Sprintf("context %q", c.Context)
}

// ContextFlag is the flag to repeat in a suggested command for this context.
func (c *Clients) ContextFlag() string {
	if c.Context == "" {
		return ""
	}
	return " --context " + c.Context
}

// IsAPIMissing reports whether err means the ServiceAccountImport API (CRD) is not installed.
func IsAPIMissing(err error) bool {
	if meta.IsNoMatchError(err) {
		return true
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) && apierrors.IsNotFound(err) {
		d := status.Status().Details
		// A missing resource type is a NotFound without an object name.
		return d == nil || d.Name == ""
	}
	return false
}

// APIError rewrites errors from calls on ServiceAccountImports so that they name the fix.
func (c *Clients) APIError(err error) error {
	switch {
	case err == nil:
		return nil
	case IsAPIMissing(err):
		return fmt.Errorf("the ServiceAccountImport API is not installed in %s: run `kubectl mcsa install%s`", c.Describe(), c.ContextFlag())
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%w (ask a cluster admin for access, or check `kubectl auth can-i --list%s`)", err, c.ContextFlag())
	}
	return err
}
