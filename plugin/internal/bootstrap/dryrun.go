package bootstrap

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/inspect"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
)

// A dry run (the clients' DryRun: kubectl's --dry-run=client or server) writes nothing and
// mints no credential. Everything bootstrap writes is made dry by the clients but two things,
// which need the credential's first token: the token policy, which must know the source API
// server's own audiences (those of a token minted without any), and the credential's Secret in
// the target, which holds that token. A dry run learns the audiences from a token it mints and
// discards, of a service account that exists anyway (DryRunServiceAccount, 10 minutes, bound to
// nothing), or, if the source refuses it, from the token policy an earlier bootstrap of any
// pair installed there; and it does not write the Secret (SkippedSecret says so).

// DryRunServiceAccount is the service account of the source whose throwaway token tells a dry
// run the source API server's audiences: one every namespace gets.
var DryRunServiceAccount = struct{ Namespace, Name string }{"default", "default"}

// dryRunTokenSeconds is the throwaway token's lifetime: the shortest the API server grants.
const dryRunTokenSeconds = 600

// dryRun is the clients' dry run (both clusters are given the same).
func (o *Options) dryRun() kube.DryRun {
	if o.Source.DryRun != kube.NoDryRun {
		return o.Source.DryRun
	}
	return o.Target.DryRun
}

// firstToken is what the credential's first token is and tells.
type firstToken struct {
	// Token is the credential's first token; "" in a dry run.
	Token string
	// Audiences are the source API server's own: those of a token minted without any.
	Audiences  []string
	Expiration time.Time
}

// mintFirstToken mints the credential's first token, bound to its anchor; in a dry run, it only
// learns the source API server's audiences.
func (o *Options) mintFirstToken(ctx context.Context) (*firstToken, error) {
	if o.dryRun() != kube.NoDryRun {
		auds, err := o.dryRunAudiences(ctx)
		if err != nil {
			return nil, err
		}
		return &firstToken{Audiences: auds, Expiration: time.Now().Add(o.TokenTTL)}, nil
	}
	name := grant.ServiceAccountName(o.TargetName)
	seconds := int64(o.TokenTTL / time.Second)
	tr, err := o.Source.Kube.CoreV1().ServiceAccounts(grant.Namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &seconds, BoundObjectRef: grant.BoundObjectRef(o.TargetName, name),
	}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("minting a token for service account %s/%s in %s: %w", grant.Namespace, name, o.Source.Describe(), o.Source.APIError(err))
	}
	claims, err := inspect.DecodeToken(tr.Status.Token)
	if err != nil || len(claims.Audiences) == 0 {
		return nil, fmt.Errorf("reading the audiences of the token %s minted: %v", o.Source.Describe(), err)
	}
	return &firstToken{Token: tr.Status.Token, Audiences: claims.Audiences, Expiration: tr.Status.ExpirationTimestamp.Time}, nil
}

// dryRunAudiences are the source API server's audiences for a dry run: those of a throwaway
// token, else those of the installed token policy.
func (o *Options) dryRunAudiences(ctx context.Context) ([]string, error) {
	sa := DryRunServiceAccount
	tr, mintErr := o.Source.Kube.CoreV1().ServiceAccounts(sa.Namespace).CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: ptr.To[int64](dryRunTokenSeconds),
	}}, metav1.CreateOptions{})
	if mintErr == nil {
		claims, err := inspect.DecodeToken(tr.Status.Token)
		if err == nil && len(claims.Audiences) > 0 {
			o.UI.Info("(dry run) the API server audiences of %s, for its token policy, are those of a 10-minute token of %s/%s, minted and discarded: %s",
				o.SourceName, sa.Namespace, sa.Name, strings.Join(claims.Audiences, ","))
			return claims.Audiences, nil
		}
		mintErr = fmt.Errorf("reading its audiences: %v", err)
	}
	vap, err := o.Source.Kube.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, grant.TokenPolicyName, metav1.GetOptions{})
	if err == nil {
		if auds := PolicyAudiences(vap.Spec.Variables); len(auds) > 0 {
			o.UI.Info("(dry run) the API server audiences of %s, for its token policy, are those its token policy holds (a token of %s/%s to check them was refused: %v): %s",
				o.SourceName, sa.Namespace, sa.Name, o.Source.APIError(mintErr), strings.Join(auds, ","))
			return auds, nil
		}
	} else if !apierrors.IsNotFound(err) {
		return nil, o.Source.APIError(err)
	}
	return nil, fmt.Errorf("a dry run mints no credential, but it needs the API server audiences of %s for its token policy: it learns them from a throwaway token of service account %s/%s, which failed (%v), or from the token policy %s an earlier bootstrap installed, which %s lacks",
		o.SourceName, sa.Namespace, sa.Name, o.Source.APIError(mintErr), grant.TokenPolicyName, o.Source.Describe())
}

// PolicyAudiences reads the API server audiences that grant.TokenPolicy holds in its variables
// (nil if it holds none that can be read).
func PolicyAudiences(variables []admissionregistrationv1.Variable) []string {
	for _, v := range variables {
		if v.Name != "apiAudiences" {
			continue
		}
		// A CEL list of strconv.Quote'd strings: JSON for any audience but those with control or
		// non-ASCII characters, which then read as none.
		var auds []string
		if err := json.Unmarshal([]byte(v.Expression), &auds); err != nil {
			return nil
		}
		return auds
	}
	return nil
}

// SkippedSecret says, in a dry run, why the credential's Secret is not written and what writes
// it: the import then reports ClusterUnknown, naming bootstrap, until it exists.
func (o *Options) SkippedSecret() string {
	return fmt.Sprintf("(dry run) not written: the credential's Secret %s/%s in %s, which holds the credential's first token; only bootstrap itself mints that token, "+
		"and the Secret belongs in no Git repository (the importer renews the token in it). Once the objects are applied, the credential (import %s/%s) reports %s until bootstrap runs once with the same arguments, without --dry-run, to write it",
		v1alpha1.DefaultNamespace, v1alpha1.SecretName(o.SourceName), o.Target.Describe(), v1alpha1.DefaultNamespace, o.SourceName, v1alpha1.ReasonClusterUnknown)
}
