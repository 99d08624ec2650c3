package grant

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

// Token policies. A grant caps the lifetime of the tokens minted under it and lists the audiences
// they may have, and cluster B enforces both itself: a ValidatingAdmissionPolicy (TokenPolicy) on
// TokenRequests by importer identities looks the grant up in ConfigMap PoliciesName of the
// service account's namespace, keyed by the grant's anchor name, and refuses a request that is
// not bound to that anchor, asks for a longer lifetime or another audience. The importer reads
// the same entry and asks for no more than it allows, so that B's refusal is a fence, not the
// rule.
//
// Admission sees TokenRequests after the API server has defaulted an empty audience list to its
// own audiences (--api-audiences, else its issuer), which no CEL expression can read: the policy
// carries them, as the plugin learns them from a token B minted without audiences. Entries list
// only further audiences.
//
// An entry's value is "CLUSTER SERVICEACCOUNT MAXSECONDS [AUDIENCE...]" separated by single
// spaces: the policy can split it, and it names its pair so that a truncated anchor name (see
// AnchorName) is still checked against the requester.

// PoliciesName is the ConfigMap, in each namespace of B with granted service accounts (and in
// Namespace for the cluster credentials), holding the token policies of the grants.
const PoliciesName = "mcsa-grants"

// TokenPolicyName names the ValidatingAdmissionPolicy and its binding.
const TokenPolicyName = "mcsa-token-grants"

// Default lifetime caps.
const (
	DefaultMaxTokenLifetime      = time.Hour
	CredentialMaxTokenLifetime   = 12 * time.Hour
	minTokenLifetime             = time.Duration(v1alpha1.MinExpirationSeconds) * time.Second
	maxTokenLifetime             = time.Duration(v1alpha1.MaxExpirationSeconds) * time.Second
	maxAudiences                 = 16
	policyEntryFields            = 3
	maxPolicyEntryLength         = 4096
	policyFieldSeparator         = " "
	policyAudienceForbiddenChars = " \t\n\r,"
)

// Policy is what a grant allows the tokens minted under it.
type Policy struct {
	// MaxLifetime caps the tokens' lifetime (whole seconds, from 10m to 24h).
	MaxLifetime time.Duration
	// Audiences the tokens may have besides B's API server's own (which the importer requests
	// by naming none).
	Audiences []string
}

// DefaultPolicy is a grant's policy unless allow is told otherwise: one hour, B's API server only.
func DefaultPolicy() Policy { return Policy{MaxLifetime: DefaultMaxTokenLifetime} }

// CredentialPolicy is the policy of a cluster credential: it renews itself within 12 hours.
func CredentialPolicy() Policy { return Policy{MaxLifetime: CredentialMaxTokenLifetime} }

// Validate checks the policy is one B can enforce.
func (p Policy) Validate() error {
	if p.MaxLifetime < minTokenLifetime || p.MaxLifetime > maxTokenLifetime || p.MaxLifetime%time.Second != 0 {
		return fmt.Errorf("maximum token lifetime %s: must be whole seconds from %s to %s", p.MaxLifetime, minTokenLifetime, maxTokenLifetime)
	}
	if len(p.Audiences) > maxAudiences {
		return fmt.Errorf("%d audiences: at most %d", len(p.Audiences), maxAudiences)
	}
	for _, a := range p.Audiences {
		if a == "" || strings.ContainsAny(a, policyAudienceForbiddenChars) {
			return fmt.Errorf("audience %q: must be non-empty, without spaces or commas", a)
		}
	}
	return nil
}

// MaxSeconds is MaxLifetime in seconds, as TokenRequests count it.
func (p Policy) MaxSeconds() int64 { return int64(p.MaxLifetime / time.Second) }

// AllowsAudiences tells whether tokens for audiences may be minted under the policy.
func (p Policy) AllowsAudiences(audiences []string) bool {
	for _, a := range audiences {
		if !slices.Contains(p.Audiences, a) {
			return false
		}
	}
	return true
}

// PolicyKey is the key of importingCluster's grant of serviceAccount in PoliciesName: the name
// of its anchor, which the policy finds in the TokenRequest's boundObjectRef.
func PolicyKey(importingCluster, serviceAccount string) string {
	return AnchorName(importingCluster, serviceAccount)
}

// PolicyValue is the entry of importingCluster's grant of serviceAccount.
func PolicyValue(importingCluster, serviceAccount string, p Policy) string {
	audiences := slices.Clone(p.Audiences)
	slices.Sort(audiences)
	fields := append([]string{importingCluster, serviceAccount, strconv.FormatInt(p.MaxSeconds(), 10)}, slices.Compact(audiences)...)
	return strings.Join(fields, policyFieldSeparator)
}

// ErrNoPolicy is returned by LookupPolicy when the grant has no entry: it predates token
// policies, or it was disallowed.
var ErrNoPolicy = errors.New("the grant has no token policy")

// LookupPolicy reads importingCluster's grant of serviceAccount in data (of ConfigMap
// PoliciesName). The entry is B's admin's, but bounded and checked all the same: an entry that
// does not name the pair is no entry.
func LookupPolicy(data map[string]string, importingCluster, serviceAccount string) (Policy, error) {
	v, ok := data[PolicyKey(importingCluster, serviceAccount)]
	if !ok {
		return Policy{}, ErrNoPolicy
	}
	if len(v) > maxPolicyEntryLength {
		return Policy{}, &PolicyError{Reason: fmt.Sprintf("longer than %d bytes", maxPolicyEntryLength)}
	}
	fields := strings.Split(v, policyFieldSeparator)
	if len(fields) < policyEntryFields || fields[0] != importingCluster || fields[1] != serviceAccount {
		return Policy{}, &PolicyError{Entry: v, Reason: fmt.Sprintf("not %q", importingCluster+" "+serviceAccount+" MAXSECONDS [AUDIENCE...]")}
	}
	seconds, err := strconv.ParseInt(fields[2], 10, 64)
	if err != nil || seconds <= 0 || seconds > v1alpha1.MaxExpirationSeconds {
		return Policy{}, &PolicyError{Entry: v, Reason: fmt.Sprintf("giving a maximum lifetime %q outside 1 to %d seconds", fields[2], v1alpha1.MaxExpirationSeconds)}
	}
	return Policy{MaxLifetime: time.Duration(seconds) * time.Second, Audiences: fields[policyEntryFields:]}, nil
}

// PolicyError is a grant's token policy entry that cannot be read.
type PolicyError struct{ Entry, Reason string }

func (e *PolicyError) Error() string {
	if e.Entry == "" {
		return "the grant's token policy is " + e.Reason
	}
	return fmt.Sprintf("the grant's token policy %q is %s", e.Entry, e.Reason)
}

// Policies is an empty ConfigMap PoliciesName in namespace: what entries are merged into.
func Policies(namespace string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: PoliciesName, Namespace: namespace, Labels: map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedBy}},
	}
}

// PoliciesPatch is a JSON merge patch of ConfigMap PoliciesName setting the entries of set (key
// to value) and removing the keys of remove: each key is written alone, so that concurrent
// grants of other pairs are kept.
func PoliciesPatch(set map[string]string, remove []string) []byte {
	data := map[string]*string{}
	for k, v := range set {
		data[k] = ptr.To(v)
	}
	for _, k := range remove {
		data[k] = nil
	}
	patch, _ := json.Marshal(map[string]any{"data": data}) // strings only: cannot fail
	return patch
}

// TokenPolicy is the ValidatingAdmissionPolicy of B enforcing the grants' token policies on
// every TokenRequest by an importer identity (a service account of Namespace): the token must be
// bound to the anchor of the grant of its requester and service account, within its lifetime and
// audiences. Other callers are not matched.
//
// apiAudiences are B's API server's own audiences, those of a token requested without any.
func TokenPolicy(apiAudiences []string) *admissionregistrationv1.ValidatingAdmissionPolicy {
	importer := "system:serviceaccount:" + Namespace + ":"
	quoted := make([]string, len(apiAudiences))
	for i, a := range apiAudiences {
		quoted[i] = strconv.Quote(a)
	}
	return &admissionregistrationv1.ValidatingAdmissionPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "ValidatingAdmissionPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: TokenPolicyName, Labels: map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedBy}},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			ParamKind:     &admissionregistrationv1.ParamKind{APIVersion: "v1", Kind: "ConfigMap"},
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
						Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"},
							Resources: []string{tokenResource}, Scope: ptr.To(admissionregistrationv1.NamespacedScope)},
					},
				}},
			},
			MatchConditions: []admissionregistrationv1.MatchCondition{{
				Name: "importer-identity", Expression: fmt.Sprintf("request.userInfo.username.startsWith(%q)", importer),
			}},
			Variables: []admissionregistrationv1.Variable{
				{Name: "cluster", Expression: fmt.Sprintf("request.userInfo.username.substring(%d)", len(importer))},
				// Every field tested: an unset boundObjectRef reaches admission as an empty object.
				{Name: "anchor", Expression: "has(object.spec.boundObjectRef) && has(object.spec.boundObjectRef.kind) && has(object.spec.boundObjectRef.apiVersion) && " +
					"has(object.spec.boundObjectRef.name) && object.spec.boundObjectRef.kind == 'Secret' && object.spec.boundObjectRef.apiVersion == 'v1' ? " +
					"object.spec.boundObjectRef.name : ''"},
				{Name: "apiAudiences", Expression: "[" + strings.Join(quoted, ", ") + "]"},
				{Name: "entry", Expression: "variables.anchor != '' && has(params.data) && variables.anchor in params.data ? " +
					"params.data[variables.anchor].split(' ') : []"},
			},
			Validations: []admissionregistrationv1.Validation{
				{
					Expression: fmt.Sprintf("size(variables.entry) >= %d && variables.entry[0] == variables.cluster && variables.entry[1] == request.name", policyEntryFields),
					MessageExpression: "'cluster ' + variables.cluster + ' may request tokens of ' + request.namespace + '/' + request.name + " +
						"' only bound to the anchor of its grant (kubectl mcsa allow ' + variables.cluster + ' ' + request.namespace + '/' + request.name + ')'",
					Reason: ptr.To(metav1.StatusReasonForbidden),
				},
				{
					Expression: fmt.Sprintf("size(variables.entry) < %d || object.spec.expirationSeconds <= int(variables.entry[%d])", policyEntryFields, policyEntryFields-1),
					MessageExpression: fmt.Sprintf("'expirationSeconds ' + string(object.spec.expirationSeconds) + ' exceeds the maximum of the grant of ' + "+
						"request.namespace + '/' + request.name + ' to cluster ' + variables.cluster + ', ' + variables.entry[%d] + ' s'", policyEntryFields-1),
					Reason: ptr.To(metav1.StatusReasonForbidden),
				},
				{
					Expression: fmt.Sprintf("size(variables.entry) < %d || !has(object.spec.audiences) || object.spec.audiences.all(a, a in variables.apiAudiences || a in variables.entry.slice(%d, size(variables.entry)))", policyEntryFields, policyEntryFields),
					MessageExpression: "'audiences ' + object.spec.audiences.join(',') + ' are not all allowed by the grant of ' + " +
						"request.namespace + '/' + request.name + ' to cluster ' + variables.cluster",
					Reason: ptr.To(metav1.StatusReasonForbidden),
				},
			},
		},
	}
}

// TokenPolicyBinding binds TokenPolicy to ConfigMap PoliciesName of the request's namespace; a
// namespace without one has no grant, and its TokenRequests by importers are denied.
func TokenPolicyBinding() *admissionregistrationv1.ValidatingAdmissionPolicyBinding {
	return &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "ValidatingAdmissionPolicyBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: TokenPolicyName, Labels: map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedBy}},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName: TokenPolicyName,
			ParamRef: &admissionregistrationv1.ParamRef{
				Name:                    PoliciesName,
				ParameterNotFoundAction: ptr.To(admissionregistrationv1.DenyAction),
			},
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
		},
	}
}
