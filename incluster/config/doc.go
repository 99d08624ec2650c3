// Package config builds client-go configurations for pods that call Kubernetes APIs: from a
// mounted service account import (a remote cluster's service account), from a kubeconfig
// context, or from the pod's own service account, with the same call.
//
// It keeps the API of the original multicluster-service-account's pkg/config
// (admiralty.io/multicluster-service-account/pkg/config), so client code moves over by changing
// the import path. Unlike the original, configurations built from mounted files follow token
// rotation (see Rotation below).
//
// # Mounted service account imports
//
// The automount webhook mounts the secret of each import named in a pod's
// `multicluster.admiralty.io/service-account-import.name` annotation at
// <root>/<import name>/, with the keys `token`, `ca.crt`, `namespace` (the remote namespace),
// `server` (the remote API's URL) and `config` (a kubeconfig over the other four, for tools
// that take one). The root is /var/run/secrets/admiralty.io/serviceaccountimports
// (v1alpha1.MountPathRoot), or the value of the environment variable
// MCSA_SERVICEACCOUNTIMPORTS_DIR (MountRootEnv) when it is set and not empty: tests and the
// playground use it to run clients outside pods, over a folder holding the same files.
// The variable is read on every call.
//
// An import's configuration is built from `server`, `namespace`, and the paths of `token`
// (rest.Config.BearerTokenFile) and `ca.crt` (rest.Config.TLSClientConfig.CAFile); `config` is
// not read. Only `https` servers are accepted. Entries of the root whose names cannot be import
// names (DNS-1123 subdomains) are ignored, in particular the kubelet's `..data`-style entries.
//
// # Federated imports
//
// A federated import (spec.mode: Federated) is mounted at the same path, as a projected volume
// with the same files and one more, so the same functions serve both kinds and callers need not
// know which one they got:
//
//   - `token` is the pod's own service-account token, issued by the pod's cluster for the
//     audience kubectl-mcsa.admiralty.io/<remote cluster> (v1alpha1.FederatedAudience) and
//     rotated by the kubelet: the remote cluster trusts that issuer, for that audience only;
//   - `server`, `ca.crt`, `namespace` and `config` come from the import's ConfigMap
//     (v1alpha1.FederatedConfigMapName);
//   - `as` (v1alpha1.KeyAs), from the ConfigMap too, names the remote service account to act
//     as: `system:serviceaccount:<namespace>:<name>`.
//
// The configuration authenticates with the token, like a token import's, and impersonates
// that user (rest.Config.Impersonate.UserName: the Impersonate-User header), which the remote
// cluster's RBAC allows the import's namespace. `as` is trimmed like the other files and must
// be a service account's user name whose namespace is a DNS-1123 label and whose name is a
// DNS-1123 subdomain: anything else (another user such as system:masters, extra colons,
// several lines) is an error, as is an `as` link that leads nowhere. Without an `as` file the
// import is a token import and nothing is impersonated. rest.CopyConfig keeps the
// impersonation. A copy without it acts as the pod's own identity, which the remote cluster
// lets impersonate and nothing else.
//
// # Fallbacks
//
// The generic functions (ConfigAndNamespace, NamedConfigAndNamespace,
// AllNamedConfigsAndNamespaces) try, in order:
//
//  1. mounted service account imports;
//  2. kubeconfig contexts, loaded with client-go's default rules (the files listed in
//     KUBECONFIG, else ~/.kube/config);
//  3. the pod's own service account, like rest.InClusterConfig: KUBERNETES_SERVICE_HOST and
//     KUBERNETES_SERVICE_PORT, and the files of
//     /var/run/secrets/kubernetes.io/serviceaccount; the namespace is POD_NAMESPACE if set,
//     else that folder's `namespace` file, else "default"; an unreadable CA is an error rather
//     than a fallback to the system's roots. Only when no name is asked for and no kubeconfig
//     context is current.
//
// ConfigAndNamespace with several imports mounted returns an error, as the original documented
// (its code fell back to the kubeconfig instead): the pod asked for several clusters and must
// say which one to call, with NamedConfigAndNamespace.
//
// When an import and a kubeconfig context share a name, the import wins, in
// NamedConfigAndNamespace and in AllNamedConfigsAndNamespaces alike (the original let the
// context win in the latter). An import that is mounted but unusable (a missing or malformed
// file) is an error, never a silent fallback to an eponymous context.
//
// # Rotation
//
// The importer renews tokens, the kubelet swaps the mounted files atomically (a new
// `..<timestamp>` folder, then a rename of the `..data` symlink), and a client built once keeps
// working:
//
//   - Token: client-go alone re-reads BearerTokenFile only once its cached copy is 50 s old
//     (k8s.io/client-go/transport.NewCachedFileTokenSource: a 1 minute period less 10 s of
//     leeway), and not when a request is refused. Configurations built here also carry a
//     WrapTransport that checks the file on every request (a stat; a read only when it changed)
//     and, when a request is refused with 401 Unauthorized while the file now holds another
//     token, sends it again once with that token (a refused request was not executed; requests
//     that client-go builds from objects or bytes can be replayed, streamed bodies cannot). So
//     the old token may be revoked as soon as the kubelet has swapped the files. Clients that
//     only use the path (kubectl with the mounted `config` kubeconfig, or a copy of the
//     rest.Config without its WrapTransport) need the old token to stay valid for at least one
//     minute after the swap. To add your own WrapTransport, chain it with rest.Config.Wrap
//     rather than replacing the field.
//   - CA: client-go reloads CAFile at most every 5 minutes (feature ClientsAllowCARotation,
//     on by default since client-go 1.36; a new transport for new connections). A remote
//     cluster changing its serving CA should publish a bundle of the old and new CAs at least
//     that long before serving with the new one; otherwise build a new client.
//   - Server, namespace and `as` are read once, when the configuration is built.
//
// The swap itself comes late: the kubelet projects a changed Secret into running pods after its
// sync period plus its cache's propagation delay (a minute or more), so an old token must stay
// valid well beyond that after the Secret is updated; only then is "after the swap" reached.
//
// A federated import's token is followed the same way: the kubelet renews the projected token
// at 80 % of its life (an hour at most, v1alpha1.FederatedExpirationSeconds) and swaps it in
// with the same atomic writer; the remote cluster cannot revoke the old one, which stays valid
// until it expires.
//
// The pod's own service account (fallback 3) is followed the same way; kubeconfig contexts get
// plain client-go behaviour.
//
// # Not kept from the original
//
// The original also exported its loader type (ServiceAccountImportConfigLoader, its
// constructors and LoaderForKubeconfigAndContext), which read the mounted `config` with its
// inline token. They are left out: the functions above cover their uses.
package config
