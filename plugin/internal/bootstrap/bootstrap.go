// Package bootstrap lets a target cluster import service accounts from a source cluster: in
// the source, the importer's identity, allowed to renew its own token and to read the CA bundle
// the source publishes (kube-root-ca.crt), nothing else; in the target, the cluster credential
// (the import named after the source) with a first token minted through the operator's own
// access.
package bootstrap

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/credential"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/allow"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/imports"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// Options are one bootstrap.
type Options struct {
	// Target imports from Source.
	Target, Source *kube.Clients
	// TargetName and SourceName are the clusters' names in kubectl-mcsa (DNS labels).
	TargetName, SourceName string
	// SourceServer overrides the source's API URL as the target's pods see it.
	SourceServer string
	// AllowAllServiceAccounts grants the target every service account of the source, as the
	// original project did.
	AllowAllServiceAccounts bool
	// TokenTTL is the lifetime of the importer's credential tokens: the first one, minted here,
	// and those the importer renews for itself (spec.expirationSeconds of the credential).
	TokenTTL time.Duration
	UI       *ui.UI
}

// Validate checks the names and the lifetime; it needs no cluster.
func (o *Options) Validate() error {
	for _, n := range []struct{ flag, value string }{{"--target-name", o.TargetName}, {"--source-name", o.SourceName}} {
		if errs := validation.IsDNS1123Label(n.value); len(errs) > 0 {
			return fmt.Errorf("cluster name %q is not a DNS-1123 label: pass %s", n.value, n.flag)
		}
	}
	if o.TargetName == o.SourceName {
		return fmt.Errorf("target and source are both named %q: a cluster does not import from itself; pass --target-name or --source-name", o.TargetName)
	}
	if shortest, longest := time.Duration(v1alpha1.MinExpirationSeconds)*time.Second, grant.CredentialMaxTokenLifetime; o.TokenTTL < shortest || o.TokenTTL > longest || o.TokenTTL%time.Second != 0 {
		return fmt.Errorf("--token-ttl %s: must be from %s to %s", o.TokenTTL, shortest, longest)
	}
	return nil
}

// checkTarget checks that the target can hold the cluster credential, before anything is
// written anywhere: a refusal then leaves both clusters as they were.
func (o *Options) checkTarget(ctx context.Context) error {
	if err := o.checkSourceServer(); err != nil {
		return err
	}
	// The credential is an import: without the API in the target, Get fails with an error that
	// names the fix (`kubectl mcsa install`); a missing import is the expected answer.
	existing, err := (&imports.Client{Clients: o.Target}).Get(ctx, v1alpha1.DefaultNamespace, o.SourceName)
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return err
	case !v1alpha1.IsClusterCredential(existing, v1alpha1.DefaultNamespace):
		return fmt.Errorf("import %s/%s already exists in %s and imports from cluster %q, not %q: it is not a cluster credential; rename it, or pass --source-name",
			v1alpha1.DefaultNamespace, o.SourceName, o.Target.Describe(), existing.Spec.ClusterName, o.SourceName)
	}
	return nil
}

// Result is what bootstrap did.
type Result struct {
	Applied []kube.Result
	// Expiration is when the first token expires.
	Expiration time.Time
}

// Run checks the target, then writes the grants in the source and the credential in the
// target. Every write is a server-side apply, so a second run repairs drift and never
// duplicates. Call Validate first.
func (o *Options) Run(ctx context.Context) (*Result, error) {
	res := &Result{}
	if err := o.checkTarget(ctx); err != nil {
		return res, err
	}
	apply := func(c *kube.Clients, obj runtime.Object) error {
		r, err := c.Apply(ctx, obj, false)
		if err != nil {
			return err
		}
		res.Applied = append(res.Applied, r)
		return nil
	}

	o.UI.Step("source %s (%s): importer identity %s/%s, allowed to renew its own token and to read the CA bundle the source publishes", o.SourceName, o.Source.Describe(), grant.Namespace, grant.ServiceAccountName(o.TargetName))
	for _, obj := range []runtime.Object{
		grant.ImporterNamespace(),
		grant.ImporterServiceAccount(o.TargetName),
		grant.SelfRenewRole(o.TargetName),
		grant.SelfRenewRoleBinding(o.TargetName),
		// Read access to B's published CA bundle, so that the importer follows B's CA rotations.
		grant.CAReaderRole(o.TargetName),
		grant.CAReaderRoleBinding(o.TargetName),
		// The anchor its tokens are bound to: deleting it cuts the target off.
		grant.ClusterCredentialAnchor(o.TargetName),
	} {
		if err := apply(o.Source, obj); err != nil {
			return res, err
		}
	}
	if err := o.clusterWideGrant(ctx, apply); err != nil {
		return res, err
	}

	server, ca, err := o.Source.ServerAndCA()
	if err != nil {
		return res, err
	}
	if o.SourceServer != "" {
		server = o.SourceServer
	}
	first, err := o.mintFirstToken(ctx) // in a dry run, no token: see dryrun.go
	if err != nil {
		return res, err
	}
	res.Expiration = first.Expiration
	if err := o.tokenPolicy(ctx, first.Audiences, res, apply); err != nil {
		return res, err
	}

	o.UI.Step("target %s (%s): cluster credential %s/%s for %s", o.TargetName, o.Target.Describe(), v1alpha1.DefaultNamespace, o.SourceName, server)
	if err := apply(o.Target, grant.ImporterNamespace()); err != nil {
		return res, err
	}
	sai := &v1alpha1.ServiceAccountImport{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "ServiceAccountImport"},
		ObjectMeta: metav1.ObjectMeta{Name: o.SourceName, Namespace: v1alpha1.DefaultNamespace},
		Spec: v1alpha1.ServiceAccountImportSpec{
			ClusterName:       o.SourceName,
			Namespace:         grant.Namespace,
			Name:              grant.ServiceAccountName(o.TargetName),
			ExpirationSeconds: ptr.To(int64(o.TokenTTL / time.Second)),
		},
	}
	if err := apply(o.Target, sai); err != nil {
		return res, err
	}
	if o.dryRun() != kube.NoDryRun {
		o.UI.Info("%s", o.SkippedSecret())
		return res, nil
	}
	// The secret's owner reference needs the import's UID.
	current, err := (&imports.Client{Clients: o.Target}).Get(ctx, v1alpha1.DefaultNamespace, o.SourceName)
	if err != nil {
		return res, err
	}
	secret, err := credential.NewSecret(current, credential.Data{
		ClusterName: o.SourceName,
		Server:      server,
		CAData:      ca,
		Namespace:   grant.Namespace,
		Token:       first.Token,
	})
	if err != nil {
		return res, err
	}
	secret.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}
	if err := apply(o.Target, secret); err != nil {
		return res, err
	}
	return res, nil
}

// clusterWideGrant writes the original's cluster-wide reach when asked, and otherwise says
// when an earlier run left one.
func (o *Options) clusterWideGrant(ctx context.Context, apply func(*kube.Clients, runtime.Object) error) error {
	if o.AllowAllServiceAccounts {
		o.UI.Warn("--allow-all-service-accounts lets %s import ANY service account of %s, kube-system's included; prefer `kubectl mcsa allow` for the ones it needs", o.TargetName, o.SourceName)
		if err := apply(o.Source, grant.ClusterImportRole(o.TargetName)); err != nil {
			return err
		}
		return apply(o.Source, grant.ClusterImportRoleBinding(o.TargetName))
	}
	_, err := o.Source.Kube.RbacV1().ClusterRoleBindings().Get(ctx, grant.ClusterImportName(o.TargetName), metav1.GetOptions{})
	if err == nil {
		o.UI.Warn("%s may still import every service account of %s (an earlier --allow-all-service-accounts); revoke it with `kubectl mcsa disallow %s --all-service-accounts%s`",
			o.TargetName, o.SourceName, o.TargetName, o.Source.ContextFlag())
	}
	return nil
}

// tokenPolicy installs in the source the admission policy enforcing grants' token policies
// (grant.TokenPolicy) and the credential's own: its tokens live at most --token-ttl. The API
// server's own audiences, which the policy must know, are those of a token minted without any.
func (o *Options) tokenPolicy(ctx context.Context, audiences []string, res *Result, apply func(*kube.Clients, runtime.Object) error) error {
	o.UI.Step("source %s: token policy admission (the API server's audiences: %s); the credential's tokens live at most %s",
		o.SourceName, strings.Join(audiences, ","), o.TokenTTL)
	for _, obj := range []runtime.Object{grant.TokenPolicy(audiences), grant.TokenPolicyBinding()} {
		if err := apply(o.Source, obj); err != nil {
			return err
		}
	}
	name := grant.ServiceAccountName(o.TargetName)
	r, err := allow.WritePolicies(ctx, o.Source, grant.Namespace, map[string]string{
		grant.PolicyKey(o.TargetName, name): grant.PolicyValue(o.TargetName, name, grant.Policy{MaxLifetime: o.TokenTTL}),
	}, nil)
	if err != nil {
		return err
	}
	res.Applied = append(res.Applied, r)
	return nil
}

// checkSourceServer refuses a source URL that the target's pods cannot reach: a loopback address
// (kind, k3d, minikube and Docker Desktop write one in the kubeconfig) is the pod's own, not the
// source's. --source-server, even with the same URL, says the operator knows (the harness's
// clusters share one host with an importer that runs there too).
func (o *Options) checkSourceServer() error {
	return CheckSourceServer(o.Source, o.SourceName, o.SourceServer)
}

// CheckSourceServer is that check for any command that tells the target's pods where the source
// is (bootstrap, federate): sourceServer is --source-server ("" for the kubeconfig's URL).
func CheckSourceServer(source *kube.Clients, sourceName, sourceServer string) error {
	if sourceServer != "" {
		u, err := url.Parse(sourceServer)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("--source-server %q: want https://HOST[:PORT]", sourceServer)
		}
		return nil
	}
	server, _, err := source.ServerAndCA()
	if err != nil {
		return err
	}
	u, err := url.Parse(server)
	if err != nil || !IsLoopback(u.Hostname()) {
		return nil
	}
	return fmt.Errorf("the source's API server is %s in your kubeconfig, a loopback address: the target's pods would call themselves, not %s. "+
		"Pass the URL they reach it at with --source-server: for kind, `https://%s-control-plane:6443` when both clusters share kind's Docker network (`docker network inspect kind`); "+
		"for k3d, the server container on the shared network (`k3d cluster create --network` for both); for minikube, `https://$(minikube ip -p PROFILE):8443`. "+
		"If the importer does run on this host, repeat the URL: --source-server %s",
		server, sourceName, sourceName, server)
}

// IsLoopback tells whether host (a name or an IP) is this machine's own.
func IsLoopback(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
