package federation

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// Unfederate undoes federate: B no longer trusts A's issuer (its authenticator leaves B's file,
// or the operator is told what to remove), and A loses its federated cluster credential for B
// and its federated imports from B. A's discovery binding stays unless Discovery: other
// clusters may trust A too. It is idempotent: a second run finds nothing to remove.
type Unfederate struct {
	A, B                 *kube.Clients
	AName, BName         string
	AuthenticationConfig string
	// Discovery also removes A's discovery binding.
	Discovery bool
	DryRun    DryRun
	// Wait, when positive, is how long Verify waits for B to refuse A's tokens.
	Wait time.Duration
	UI   *ui.UI

	timings timings
}

// Validate checks the names and flags; it needs no cluster.
func (u *Unfederate) Validate() error {
	if err := validateNames(u.AName, u.BName); err != nil {
		return err
	}
	switch u.DryRun {
	case NoDryRun, ClientDryRun, ServerDryRun:
	default:
		return fmt.Errorf("dry run %q: want client or server", u.DryRun)
	}
	if u.Wait < 0 {
		return fmt.Errorf("--timeout %s: must not be negative", u.Wait)
	}
	return nil
}

// UnfederatePlan is what unfederate will remove.
type UnfederatePlan struct {
	// Issuer is A's issuer ("" when A could not tell: entries are then found by the cluster
	// federate marks them with).
	Issuer string
	// Removed are B's authenticators for A: those of the file, or without a file the one to
	// remove by hand.
	Removed []apiserverv1.JWTAuthenticator
	// Config is the file as unfederate leaves it (nil without a file).
	Config *apiserverv1.AuthenticationConfiguration
	// File is B's file (nil without one); FileAction is what Run did to it.
	File       *ConfigFile
	FileAction kube.Action
	// Imports are A's federated imports from B, which stop working and are deleted.
	Imports []v1alpha1.ServiceAccountImport
	// Credential is A's federated cluster credential for B (nil: none, or a token one, which
	// stays: KeptCredential).
	Credential     *v1alpha1.ServiceAccountImport
	KeptCredential bool

	// unreachableA is why A could not be read: Run then undoes B's side only.
	unreachableA error
}

// Plan reads what there is to remove; nothing is written.
func (u *Unfederate) Plan(ctx context.Context) (*UnfederatePlan, error) {
	p := &UnfederatePlan{}
	issuer, err := ReadIssuer(ctx, u.A)
	if err != nil {
		u.UI.Warn("%v: looking for the authenticators federate wrote for %s instead", err, u.AName)
	}
	p.Issuer = issuer
	mine := func(j apiserverv1.JWTAuthenticator) bool {
		return (issuer != "" && j.Issuer.URL == issuer) || isFor(j, u.AName, u.BName)
	}
	if u.AuthenticationConfig != "" {
		if p.File, err = ReadConfigFile(u.AuthenticationConfig); err != nil {
			return nil, err
		}
		p.Config = p.File.Config.DeepCopy()
		p.Config.JWT = slices.DeleteFunc(p.Config.JWT, func(j apiserverv1.JWTAuthenticator) bool {
			if mine(j) {
				p.Removed = append(p.Removed, j)
				return true
			}
			return false
		})
	} else if issuer != "" {
		server, ca, err := u.A.ServerAndCA()
		if err != nil {
			return nil, err
		}
		p.Removed = []apiserverv1.JWTAuthenticator{grant.Authenticator(u.AName, u.BName,
			grant.Issuer{URL: issuer, DiscoveryURL: server + DiscoveryPath, CertificateAuthority: string(ca)})}
	}
	if err := u.planA(ctx, p); err != nil {
		if !isUnreachable(err) {
			return nil, err
		}
		// A gone (decommissioned, or its network down): B's side can still be undone.
		p.unreachableA = err
		u.UI.Warn("%v: removing %s's trust only; run this again once %s is reachable", err, u.BName, u.AName)
	}
	return p, nil
}

// isUnreachable tells whether err means the API server could not be reached.
func isUnreachable(err error) bool {
	var urlErr *url.Error
	var netErr net.Error
	return errors.As(err, &urlErr) || errors.As(err, &netErr)
}

// planA finds A's federated credential for B and federated imports from B.
func (u *Unfederate) planA(ctx context.Context, p *UnfederatePlan) error {
	l, err := u.A.Dynamic.Resource(v1alpha1.Resource).Namespace("").List(ctx, metav1.ListOptions{})
	if kube.IsAPIMissing(err) {
		return nil // no import API, no import
	}
	if err != nil {
		return u.A.APIError(err)
	}
	for _, item := range l.Items {
		var imp v1alpha1.ServiceAccountImport
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(item.Object, &imp); err != nil {
			return err
		}
		switch {
		case imp.Spec.ClusterName != u.BName:
		case v1alpha1.IsClusterCredential(&imp, manifests.Namespace) && imp.Name == u.BName:
			if v1alpha1.IsFederated(&imp) {
				p.Credential = &imp
			} else {
				p.KeptCredential = true
			}
		case v1alpha1.IsFederated(&imp):
			p.Imports = append(p.Imports, imp)
		}
	}
	return nil
}

// Run removes, B first (so that A's tokens stop working there), then A's imports, credential and,
// with Discovery, binding.
func (u *Unfederate) Run(ctx context.Context, p *UnfederatePlan) ([]kube.Result, error) {
	if err := u.untrust(ctx, p); err != nil {
		return nil, err
	}
	if p.unreachableA != nil {
		return nil, fmt.Errorf("%s's federated credential and imports from %s are left: %w", u.AName, u.BName, p.unreachableA)
	}
	var results []kube.Result
	del := func(obj runtime.Object) error {
		r, err := remove(ctx, u.A, obj, u.DryRun)
		if r != nil {
			results = append(results, *r)
		}
		return err
	}
	gvk := v1alpha1.GroupVersion.WithKind("ServiceAccountImport")
	for i := range p.Imports {
		imp := p.Imports[i].DeepCopy()
		imp.SetGroupVersionKind(gvk)
		if err := del(imp); err != nil {
			return results, err
		}
	}
	if p.KeptCredential {
		u.UI.Info("%s's cluster credential for %s (import %s/%s) is bootstrap's, with a token: it stays (kubectl mcsa disconnect removes it)",
			u.AName, u.BName, manifests.Namespace, u.BName)
	}
	if c := p.Credential; c != nil {
		// Its ConfigMap goes with it (garbage collection), and now for a foreground reader.
		cm, err := u.A.Kube.CoreV1().ConfigMaps(c.Namespace).Get(ctx, v1alpha1.FederatedConfigMapName(c.Name), metav1.GetOptions{})
		switch {
		case err == nil && ownedBy(cm, c.UID):
			cm.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
			if err := del(cm); err != nil {
				return results, err
			}
		case err != nil && !apierrors.IsNotFound(err):
			return results, u.A.APIError(err)
		}
		imp := c.DeepCopy()
		imp.SetGroupVersionKind(gvk)
		if err := del(imp); err != nil {
			return results, err
		}
	}
	if u.Discovery {
		crb, err := u.A.Kube.RbacV1().ClusterRoleBindings().Get(ctx, grant.DiscoveryBindingName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return results, u.A.APIError(err)
		case crb.Labels[v1alpha1.ManagedByLabel] != v1alpha1.ManagedBy:
			u.UI.Warn("ClusterRoleBinding %s of %s is not kubectl-mcsa's (label %s): it stays", grant.DiscoveryBindingName, u.AName, v1alpha1.ManagedByLabel)
		default:
			u.UI.Warn("%s no longer serves its issuer discovery to anonymous callers: every cluster that trusts %s's issuer stops accepting its tokens once its cached keys expire", u.AName, u.AName)
			if err := del(grant.DiscoveryBinding()); err != nil {
				return results, err
			}
		}
	}
	return results, nil
}

// untrust removes A's authenticators from B's file.
func (u *Unfederate) untrust(ctx context.Context, p *UnfederatePlan) error {
	if p.File == nil {
		return nil
	}
	if len(p.Removed) == 0 {
		p.FileAction = kube.Unchanged
		u.UI.Info("%s has no authenticator for %s's issuer %s: %s unchanged", p.File.Path, u.AName, orUnknown(p.Issuer), p.File.Path)
		return nil
	}
	issuers := make([]string, len(p.Removed))
	for i, j := range p.Removed {
		issuers[i] = j.Issuer.URL
	}
	t := u.timings.withDefaults()
	// B reloads all or nothing: an unreachable issuer left in the file keeps A trusted.
	if failed, _ := probeAll(ctx, p.Config, t.probeTimeout, t.interval, func(apiserverv1.Issuer) time.Duration { return 0 }); len(failed) > 0 {
		u.UI.Warn("%s keeps trusting %s until it can reload: %s", u.BName, u.AName, unreachableMessage(p.File.Path, failed, u.BName))
	}
	p.FileAction = kube.Deleted
	if u.DryRun != NoDryRun {
		u.UI.Info("%s would be written (dry run) without the authenticator for %s", p.File.Path, strings.Join(issuers, ", "))
		return nil
	}
	if p.File.HasComments() {
		u.UI.Warn("%s had comments: the rewritten file has none", p.File.Path)
	}
	if err := p.File.Write(p.Config); err != nil {
		return err
	}
	u.UI.Done("%s: removed the authenticator for %s; %s's kube-apiserver reloads the file in about 10 s (up to a minute)", p.File.Path, strings.Join(issuers, ", "), u.BName)
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

// Verify mints a token of A for B's audience and waits until B refuses it (401).
func (u *Unfederate) Verify(ctx context.Context) (time.Duration, error) {
	t := u.timings.withDefaults()
	ns, sa, err := canaryServiceAccount(ctx, u.A)
	if err != nil {
		return 0, err
	}
	tr, err := u.A.MintToken(ctx, ns, sa, CanaryLifetime, []string{v1alpha1.FederatedAudience(u.BName)})
	if err != nil {
		return 0, err
	}
	b, err := bearerClient(u.B, tr.Status.Token)
	if err != nil {
		return 0, err
	}
	u.UI.Step("verifying: does %s refuse a token of %s's service account %s/%s? (up to %s)", u.BName, u.AName, ns, sa, u.Wait)
	start := time.Now()
	var last outcome
	err = wait.PollUntilContextTimeout(ctx, t.interval, u.Wait, true, func(ctx context.Context) (bool, error) {
		o := whoami(ctx, b)
		if ctx.Err() != nil {
			return false, nil // cut short by the deadline: the previous answer stands
		}
		last = o
		return apierrors.IsUnauthorized(o.err), nil
	})
	if err == nil {
		took := time.Since(start)
		u.UI.Done("%s refuses %s's new tokens (after %s); those it accepted in the last 10 s stay accepted until its token cache drops them, within 10 s",
			u.BName, u.AName, took.Round(100*time.Millisecond))
		return took, nil
	}
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	got := "accepted as " + last.user
	if last.err != nil {
		got = last.err.Error()
	}
	return 0, &NotVerifiedError{fmt.Sprintf("%s still answers a token of %s after %s: %s. It keeps its previous configuration while the file is invalid or one of its issuers is unreachable: see its kube-apiserver log; run this again to wait longer",
		u.BName, u.AName, u.Wait, got)}
}
