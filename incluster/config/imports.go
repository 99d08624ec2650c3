package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

// MountRootEnv is the environment variable that, when set and not empty, overrides where
// imports are mounted (v1alpha1.MountPathRoot): for clients run outside pods, in tests and the
// playground.
const MountRootEnv = "MCSA_SERVICEACCOUNTIMPORTS_DIR"

// maxFileSize bounds what is read from a mounted file: a secret holds at most 1 MiB.
const maxFileSize = 1 << 20

func mountRoot() string {
	if dir := os.Getenv(MountRootEnv); dir != "" {
		return dir
	}
	return v1alpha1.MountPathRoot
}

// isImportName tells whether name can be an import's name (an object name), which also keeps
// lookups inside the mount root: no "/", no "..", no kubelet dot-entries.
func isImportName(name string) bool {
	return len(validation.IsDNS1123Subdomain(name)) == 0
}

// ServiceAccountImportDir is the folder where the import of the given name is mounted (or would
// be): under v1alpha1.MountPathRoot, or under MCSA_SERVICEACCOUNTIMPORTS_DIR when set. For tools
// that read an import's files themselves, such as `kubectl mcsa credential`.
func ServiceAccountImportDir(name string) string {
	return filepath.Join(mountRoot(), name)
}

// ServiceAccountImportConfigAndNamespace returns a rest.Config and namespace from the mounted
// service account import. If none or several are mounted, an error is returned.
func ServiceAccountImportConfigAndNamespace() (*rest.Config, string, error) {
	return NamedServiceAccountImportConfigAndNamespace("")
}

// NamedServiceAccountImportConfigAndNamespace returns a rest.Config and namespace from the
// mounted service account import with the given name (the single mounted one if name is empty).
// If it is not mounted, or one of its files is missing or malformed, an error is returned.
func NamedServiceAccountImportConfigAndNamespace(name string) (*rest.Config, string, error) {
	return namedImport(mountRoot(), name)
}

// AllServiceAccountImportConfigsAndNamespaces returns the rest.Config and namespace of every
// mounted service account import, by import name. If none is mounted, the map is empty; if one
// is unusable, an error is returned.
func AllServiceAccountImportConfigsAndNamespaces() (map[string]ConfigAndNamespaceTuple, error) {
	root := mountRoot()
	names, err := importNames(root)
	if err != nil {
		return nil, err
	}
	out := make(map[string]ConfigAndNamespaceTuple, len(names))
	for _, name := range names {
		cfg, ns, err := loadImport(root, name)
		if err != nil {
			return nil, err
		}
		out[name] = ConfigAndNamespaceTuple{Config: cfg, Namespace: ns}
	}
	return out, nil
}

// AllServiceAccountImportNames returns the names of the mounted service account imports,
// sorted. If the mount root does not exist, the list is empty.
func AllServiceAccountImportNames() ([]string, error) {
	return importNames(mountRoot())
}

// SingleServiceAccountImportName returns the name of the mounted service account import. If
// none or several are mounted, an error is returned.
func SingleServiceAccountImportName() (string, error) {
	return singleImportName(mountRoot())
}

// ServiceAccountImportMounted tells whether the service account import with the given name is
// mounted. A name that cannot be an import's is never mounted.
func ServiceAccountImportMounted(name string) (bool, error) {
	return importMounted(mountRoot(), name)
}

func namedImport(root, name string) (*rest.Config, string, error) {
	if name == "" {
		single, err := singleImportName(root)
		if err != nil {
			return nil, "", err
		}
		name = single
	}
	mounted, err := importMounted(root, name)
	if err != nil {
		return nil, "", err
	}
	if !mounted {
		return nil, "", fmt.Errorf("service account import %q is not mounted in %s: add it to the pod's %s annotation", name, root, v1alpha1.ImportNameKey)
	}
	return loadImport(root, name)
}

func importNames(root string) ([]string, error) {
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return []string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing service account imports: %w", err)
	}
	names := []string{}
	for _, e := range entries { // sorted by os.ReadDir
		if isImportName(e.Name()) && isDir(filepath.Join(root, e.Name())) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

func singleImportName(root string) (string, error) {
	names, err := importNames(root)
	if err != nil {
		return "", err
	}
	switch len(names) {
	case 0:
		return "", fmt.Errorf("no service account import is mounted in %s: annotate the pod with %s: <import name> (outside a pod, set %s)", root, v1alpha1.ImportNameKey, MountRootEnv)
	case 1:
		return names[0], nil
	default:
		return "", fmt.Errorf("several service account imports are mounted in %s (%s): pick one by name, e.g. with NamedConfigAndNamespace", root, strings.Join(names, ", "))
	}
}

func importMounted(root, name string) (bool, error) {
	if !isImportName(name) {
		return false, nil
	}
	fi, err := os.Stat(filepath.Join(root, name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("service account import %q: %w", name, err)
	}
	return fi.IsDir(), nil
}

func isDir(path string) bool {
	fi, err := os.Stat(path) // follows symlinks
	return err == nil && fi.IsDir()
}

// loadImport builds the configuration of the import mounted at root/name. The token and CA
// stay files, so that the client follows their rotation. A federated import, one with an `as`
// file, also impersonates the remote service account that file names.
func loadImport(root, name string) (*rest.Config, string, error) {
	dir := filepath.Join(root, name)
	wrap := func(err error) error {
		return fmt.Errorf("service account import %q (%s): %w", name, dir, err)
	}
	server, err := readImportFile(dir, name, v1alpha1.SecretKeyServer)
	if err != nil {
		return nil, "", wrap(err)
	}
	host, err := parseServer(server)
	if err != nil {
		return nil, "", wrap(err)
	}
	namespace, err := readImportFile(dir, name, v1alpha1.SecretKeyNamespace)
	if err != nil {
		return nil, "", wrap(err)
	}
	if errs := validation.IsDNS1123Label(namespace); len(errs) > 0 {
		return nil, "", wrap(fmt.Errorf("file %q: %q is not a namespace name: %s", v1alpha1.SecretKeyNamespace, namespace, strings.Join(errs, "; ")))
	}
	for _, key := range []string{v1alpha1.SecretKeyToken, v1alpha1.SecretKeyCACert} {
		if _, err := os.Stat(filepath.Join(dir, key)); errors.Is(err, fs.ErrNotExist) {
			return nil, "", wrap(missingFile(name, key))
		}
	}
	as, err := readAs(dir, name)
	if err != nil {
		return nil, "", wrap(err)
	}
	cfg, err := fileConfig(host, filepath.Join(dir, v1alpha1.SecretKeyToken), filepath.Join(dir, v1alpha1.SecretKeyCACert))
	if err != nil {
		return nil, "", wrap(err)
	}
	// A federated import: the token is the pod's own, and the remote cluster lets it act as
	// the service account named in `as`. rest.CopyConfig keeps Impersonate; client-go sets the
	// header outside WrapTransport, so the token file's round tripper keeps it, retries included.
	cfg.Impersonate.UserName = as
	return cfg, namespace, nil
}

// readAs reads the `as` file of a federated import: the remote service account its client
// impersonates. A token import has no such file: "" and no error. Only a service account's
// user name with a valid namespace and name is accepted, so that a tampered or corrupt file
// can neither name another kind of user (system:masters…) nor smuggle anything into a header.
func readAs(dir, name string) (string, error) {
	path := filepath.Join(dir, v1alpha1.KeyAs)
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	// The path exists (a link through ..data, or a file): from here on, missing is an error
	// rather than a token import, e.g. a link left dangling by a broken mount.
	as, err := readImportFile(dir, name, v1alpha1.KeyAs)
	if err != nil {
		return "", err
	}
	namespace, saName, ok := v1alpha1.ParseServiceAccountUser(as)
	var problems []string
	if !ok {
		problems = []string{"it is not a service account's user name"}
	} else {
		for _, e := range validation.IsDNS1123Label(namespace) {
			problems = append(problems, "namespace: "+e)
		}
		for _, e := range validation.IsDNS1123Subdomain(saName) {
			problems = append(problems, "name: "+e)
		}
	}
	if len(problems) > 0 {
		return "", fmt.Errorf("file %q: %s is not %s (%s): a federated import only acts as a service account of the remote cluster; the importer writes this file in ConfigMap %s of the pod's namespace, from the import's spec.namespace and spec.name: check the import (kubectl get serviceaccountimport %s -n <the pod's namespace>) and whether that ConfigMap was edited",
			v1alpha1.KeyAs, quoteShort(as), v1alpha1.ServiceAccountUser("<namespace>", "<name>"), strings.Join(problems, "; "), v1alpha1.FederatedConfigMapName(name), name)
	}
	return as, nil
}

// quoteShort quotes s for an error message, cut short if long: a mounted file may hold up to
// maxFileSize bytes.
func quoteShort(s string) string {
	const maxQuoted = 400 // longer than any valid user name (22 + 63 + 1 + 253 characters)
	if len(s) <= maxQuoted {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q… (%d bytes)", s[:maxQuoted], len(s))
}

func missingFile(name, key string) error {
	return fmt.Errorf("file %q is missing: is the import Ready? (kubectl get serviceaccountimport %s -n <the pod's namespace>)", key, name)
}

// readImportFile reads a small text file of an import, trimmed.
func readImportFile(dir, name, key string) (string, error) {
	b, err := readFile(filepath.Join(dir, key))
	if errors.Is(err, fs.ErrNotExist) {
		return "", missingFile(name, key)
	}
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("file %q is empty", key)
	}
	return s, nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("%s: larger than a secret can be (%d bytes)", path, maxFileSize)
	}
	return b, nil
}

// parseServer checks the remote API's URL: the token must only ever be sent over TLS.
func parseServer(server string) (string, error) {
	u, err := url.Parse(server)
	if err != nil {
		return "", fmt.Errorf("file %q: %w", v1alpha1.SecretKeyServer, err)
	}
	switch {
	case u.Scheme != "https":
		return "", fmt.Errorf("file %q: %q is not an https URL", v1alpha1.SecretKeyServer, server)
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("file %q: %q has no host", v1alpha1.SecretKeyServer, server)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return "", fmt.Errorf("file %q: %q must be scheme, host, port and path only", v1alpha1.SecretKeyServer, server)
	}
	return server, nil
}
