package config

import (
	"errors"
	"fmt"
	"sort"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ConfigAndNamespaceTuple combines a rest.Config and a namespace. It is the value of the maps
// returned by the All… functions.
type ConfigAndNamespaceTuple struct {
	Config    *rest.Config
	Namespace string
}

// ConfigAndNamespace returns a rest.Config and namespace from the mounted service account
// import. If several are mounted, an error is returned. If none is mounted, it falls back to
// the current kubeconfig context, then to the pod's own service account.
func ConfigAndNamespace() (*rest.Config, string, error) {
	return NamedConfigAndNamespace("")
}

// NamedConfigAndNamespace returns a rest.Config and namespace from the mounted service account
// import with the given name or, if no import of that name is mounted, from the kubeconfig
// context of that name. An empty name behaves like ConfigAndNamespace.
func NamedConfigAndNamespace(name string) (*rest.Config, string, error) {
	root := mountRoot()
	if name == "" {
		names, err := importNames(root)
		if err != nil {
			return nil, "", err
		}
		if len(names) > 0 {
			// One import: use it. Several: the documented error.
			return namedImport(root, "")
		}
		cfg, ns, err := ConfigAndNamespaceForContext("")
		if err != nil {
			return nil, "", fmt.Errorf("no service account import is mounted in %s, and %w", root, err)
		}
		return cfg, ns, nil
	}
	mounted, err := importMounted(root, name)
	if err != nil {
		return nil, "", err
	}
	if mounted {
		return loadImport(root, name)
	}
	cfg, ns, err := ConfigAndNamespaceForContext(name)
	if err != nil {
		return nil, "", fmt.Errorf("no service account import %q is mounted in %s, and %w", name, root, err)
	}
	return cfg, ns, nil
}

// AllNamedConfigsAndNamespaces returns the rest.Config and namespace of every mounted service
// account import and every context of the default kubeconfig, by name; an import hides a
// context of the same name. The pod's own service account, having no name, is not included.
// If nothing is found, the map is empty.
func AllNamedConfigsAndNamespaces() (map[string]ConfigAndNamespaceTuple, error) {
	out, err := AllServiceAccountImportConfigsAndNamespaces()
	if err != nil {
		return nil, err
	}
	rules := loadingRules("")
	raw, err := loadKubeconfig(rules)
	if err != nil {
		return nil, err
	}
	for name := range raw.Contexts {
		if _, ok := out[name]; ok {
			continue
		}
		cfg, ns, err := contextConfig(raw, rules, name)
		if err != nil {
			return nil, err
		}
		out[name] = ConfigAndNamespaceTuple{Config: cfg, Namespace: ns}
	}
	return out, nil
}

// ConfigAndNamespaceForContext returns a rest.Config and namespace from the context of the
// default kubeconfig (KUBECONFIG, else ~/.kube/config) with the given name. An empty name means
// the current context, or the pod's own service account if there is none. If the context does
// not exist, an error is returned.
func ConfigAndNamespaceForContext(context string) (*rest.Config, string, error) {
	return ConfigAndNamespaceForKubeconfigAndContext("", context)
}

// ConfigAndNamespaceForKubeconfigAndContext returns a rest.Config and namespace from the
// context with the given name (the current one if empty) of the given kubeconfig file. An empty
// kubeconfig means the default one, as for ConfigAndNamespaceForContext; a file that was given
// must exist, and there is no in-cluster fallback for it.
func ConfigAndNamespaceForKubeconfigAndContext(kubeconfig, context string) (*rest.Config, string, error) {
	rules := loadingRules(kubeconfig)
	raw, err := loadKubeconfig(rules)
	if err != nil {
		return nil, "", err
	}
	if context == "" && raw.CurrentContext == "" && kubeconfig == "" {
		cfg, ns, err := inClusterConfigAndNamespace()
		if errors.Is(err, rest.ErrNotInCluster) {
			return nil, "", fmt.Errorf("no kubeconfig context is current (KUBECONFIG, else ~/.kube/config) and this is not a pod (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset): set KUBECONFIG or its current context, or run in a pod")
		}
		return cfg, ns, err
	}
	return contextConfig(raw, rules, context)
}

// AllContextsForKubeconfig returns the names of the contexts of the given kubeconfig file (the
// default one if empty), sorted.
func AllContextsForKubeconfig(kubeconfig string) ([]string, error) {
	raw, err := loadKubeconfig(loadingRules(kubeconfig))
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(raw.Contexts))
	for name := range raw.Contexts {
		out = append(out, name)
	}
	sort.Strings(out)
	return out, nil
}

func loadingRules(kubeconfig string) *clientcmd.ClientConfigLoadingRules {
	if kubeconfig == "" {
		return clientcmd.NewDefaultClientConfigLoadingRules()
	}
	return &clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}
}

func loadKubeconfig(rules *clientcmd.ClientConfigLoadingRules) (*clientcmdapi.Config, error) {
	raw, err := rules.Load()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	return raw, nil
}

// contextConfig builds the configuration of a context of raw (the current one if empty).
func contextConfig(raw *clientcmdapi.Config, rules *clientcmd.ClientConfigLoadingRules, context string) (*rest.Config, string, error) {
	name := context
	if name == "" {
		name = raw.CurrentContext
	}
	if _, ok := raw.Contexts[name]; !ok {
		if context == "" {
			return nil, "", fmt.Errorf("the current kubeconfig context %q does not exist: pick another with `kubectl config use-context`", name)
		}
		return nil, "", fmt.Errorf("no kubeconfig context %q (contexts: %v)", name, sortedKeys(raw.Contexts))
	}
	cc := clientcmd.NewNonInteractiveClientConfig(*raw, name, &clientcmd.ConfigOverrides{}, rules)
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig context %q: %w", name, err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig context %q: %w", name, err)
	}
	return cfg, ns, nil
}

func sortedKeys(m map[string]*clientcmdapi.Context) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
