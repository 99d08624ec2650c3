package inspect

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/credential"
)

// Report is everything inspect found about one credential.
type Report struct {
	// Source says where the credential came from ("import default/x", "token file …").
	Source string  `json:"source"`
	Claims *Claims `json:"claims,omitempty"`
	// ClaimsError says why the token could not be decoded.
	ClaimsError string        `json:"claimsError,omitempty"`
	Server      string        `json:"server,omitempty"`
	CAs         []Certificate `json:"cas,omitempty"`
	// Namespace is where rules are reviewed: the remote service account's namespace.
	Namespace string `json:"namespace,omitempty"`
	Live      *Live  `json:"live,omitempty"`
}

// Live is what the remote API server answered to the token itself.
type Live struct {
	// Error is the server's answer when the token was refused (expired, revoked, unknown).
	Error    string   `json:"error,omitempty"`
	Username string   `json:"username,omitempty"`
	Groups   []string `json:"groups,omitempty"`
	Rules    []Rule   `json:"rules,omitempty"`
	// Incomplete is set when the server could not list every rule (e.g. webhook authorizers).
	Incomplete bool    `json:"incomplete,omitempty"`
	CanI       *Answer `json:"canI,omitempty"`
}

// Rule is one resource rule of a SelfSubjectRulesReview.
type Rule struct {
	Verbs         []string `json:"verbs"`
	APIGroups     []string `json:"apiGroups,omitempty"`
	Resources     []string `json:"resources"`
	ResourceNames []string `json:"resourceNames,omitempty"`
}

// Answer is a SelfSubjectAccessReview's.
type Answer struct {
	Verb      string `json:"verb"`
	Resource  string `json:"resource"`
	Namespace string `json:"namespace"`
	Allowed   bool   `json:"allowed"`
	Reason    string `json:"reason,omitempty"`
}

// FromCredential starts a report from a credential (an import's secret, or files on disk).
// Every value it prints is cleaned of terminal control characters (see stripControls): the
// token, and the files beside a token file, may come from anyone.
func FromCredential(source string, d credential.Data) *Report {
	r := &Report{Source: oneLine(source), Server: oneLine(d.Server), Namespace: oneLine(d.Namespace)}
	if c, err := DecodeToken(d.Token); err != nil {
		r.ClaimsError = oneLine(err.Error())
	} else {
		r.Claims = c
		if r.Namespace == "" {
			r.Namespace = c.Namespace
		}
	}
	if len(d.CAData) > 0 {
		if cas, err := ParseCAs(d.CAData); err == nil {
			r.CAs = cas
		}
	}
	return r
}

// CanI is a question for the live check: may the token VERB RESOURCE (resource or
// resource/subresource, optionally group-qualified: deployments.apps) in the namespace?
type CanI struct{ Verb, Resource string }

// CheckLive asks the remote server, with the credential's token, who it is and what it may do.
// A refused token is reported in Live.Error, not returned as an error.
func (r *Report) CheckLive(ctx context.Context, d credential.Data, canI *CanI) {
	cfg := d.RESTConfig()
	cfg.Timeout = 10 * time.Second
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		r.Live = &Live{Error: oneLine(err.Error())}
		return
	}
	r.checkLive(ctx, client, canI)
}

// checkLive asks through client, which acts with the credential's token. The answers are
// cleaned as the claims are: the server is the one the credential names.
func (r *Report) checkLive(ctx context.Context, client kubernetes.Interface, canI *CanI) {
	live := &Live{}
	r.Live = live
	review, err := client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		live.Error = liveError(err)
		return
	}
	live.Username, live.Groups = oneLine(review.Status.UserInfo.Username), oneLines(review.Status.UserInfo.Groups)
	rules, err := client.AuthorizationV1().SelfSubjectRulesReviews().Create(ctx, &authorizationv1.SelfSubjectRulesReview{
		Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: r.Namespace},
	}, metav1.CreateOptions{})
	if err != nil {
		live.Error = liveError(err)
		return
	}
	live.Incomplete = rules.Status.Incomplete
	for _, rr := range rules.Status.ResourceRules {
		live.Rules = append(live.Rules, Rule{Verbs: oneLines(rr.Verbs), APIGroups: oneLines(rr.APIGroups), Resources: oneLines(rr.Resources), ResourceNames: oneLines(rr.ResourceNames)})
	}
	sort.SliceStable(live.Rules, func(i, j int) bool {
		return strings.Join(live.Rules[i].Resources, ",") < strings.Join(live.Rules[j].Resources, ",")
	})
	if canI != nil {
		resource, group, _ := strings.Cut(canI.Resource, ".")
		resource, sub, _ := strings.Cut(resource, "/")
		ans, err := client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: r.Namespace, Verb: canI.Verb, Group: group, Resource: resource, Subresource: sub,
			}},
		}, metav1.CreateOptions{})
		if err != nil {
			live.Error = liveError(err)
			return
		}
		live.CanI = &Answer{Verb: oneLine(canI.Verb), Resource: oneLine(canI.Resource), Namespace: r.Namespace, Allowed: ans.Status.Allowed, Reason: oneLine(ans.Status.Reason)}
	}
}

const liveErrorUnauthorized = "the server refused the token (401 Unauthorized): it is expired, revoked, or not from this cluster"

func liveError(err error) string {
	if apierrors.IsUnauthorized(err) {
		return liveErrorUnauthorized
	}
	return oneLine(err.Error())
}

// oneLines is oneLine of each value; nil stays nil, for omitempty.
func oneLines(values []string) []string {
	if values == nil {
		return nil
	}
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = oneLine(v)
	}
	return out
}

// Print writes the report for people.
func (r *Report) Print(w io.Writer, now time.Time, mark func(bool) string) {
	fmt.Fprintf(w, "Credential:  %s\n", r.Source)
	fmt.Fprintln(w, "Token (decoded, NOT verified):")
	if r.Claims == nil {
		fmt.Fprintf(w, "  %s %s\n", mark(false), r.ClaimsError)
	} else {
		c := r.Claims
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "  Issuer:\t%s\n", c.Issuer)
		fmt.Fprintf(tw, "  Subject:\t%s\n", c.Subject)
		fmt.Fprintf(tw, "  Audiences:\t%s\n", strings.Join(c.Audiences, ", "))
		if c.BoundObject != "" {
			fmt.Fprintf(tw, "  Bound to:\t%s\n", c.BoundObject)
		}
		if !c.IssuedAt.IsZero() {
			if age := now.Sub(c.IssuedAt); age >= 0 {
				fmt.Fprintf(tw, "  Issued:\t%s (%s ago)\n", c.IssuedAt.Format(time.RFC3339), duration.HumanDuration(age))
			} else {
				// A clock ahead of ours, or a made-up token: HumanDuration reads <invalid> for it.
				fmt.Fprintf(tw, "  Issued:\t%s (in %s)\n", c.IssuedAt.Format(time.RFC3339), duration.HumanDuration(c.IssuedAt.Sub(now)))
			}
		}
		if !c.Expiry.IsZero() {
			left := c.TimeLeft(now)
			if left > 0 {
				fmt.Fprintf(tw, "  Expires:\t%s (%s left)\n", c.Expiry.Format(time.RFC3339), duration.HumanDuration(left))
			} else {
				// now.Sub rather than -left: both saturate, but negating the most negative
				// duration overflows.
				fmt.Fprintf(tw, "  Expires:\t%s %s expired %s ago\n", c.Expiry.Format(time.RFC3339), mark(false), duration.HumanDuration(now.Sub(c.Expiry)))
			}
		}
		tw.Flush()
	}
	if r.Server != "" {
		fmt.Fprintf(w, "Server:      %s\n", r.Server)
	}
	for _, ca := range r.CAs {
		fmt.Fprintf(w, "CA:          %s, expires %s\n", ca.Subject, ca.NotAfter.Format(time.RFC3339))
	}
	if r.Live == nil {
		return
	}
	fmt.Fprintln(w, "Live checks with this token:")
	if r.Live.Error != "" {
		fmt.Fprintf(w, "  %s %s\n", mark(false), r.Live.Error)
		return
	}
	fmt.Fprintf(w, "  %s authenticated as %s (groups %s)\n", mark(true), r.Live.Username, strings.Join(r.Live.Groups, ", "))
	fmt.Fprintf(w, "  May do in namespace %s:\n", r.Namespace)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "    VERBS\tAPI GROUPS\tRESOURCES\tNAMES")
	for _, rule := range r.Live.Rules {
		groups := make([]string, len(rule.APIGroups))
		for i, g := range rule.APIGroups {
			groups[i] = g
			if g == "" {
				groups[i] = `""`
			}
		}
		fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\n", strings.Join(rule.Verbs, ","), strings.Join(groups, ","), strings.Join(rule.Resources, ","), strings.Join(rule.ResourceNames, ","))
	}
	tw.Flush()
	if r.Live.Incomplete {
		fmt.Fprintln(w, "  (incomplete: the server's authorizers cannot list every rule)")
	}
	if a := r.Live.CanI; a != nil {
		answer := "no"
		if a.Allowed {
			answer = "yes"
		}
		fmt.Fprintf(w, "  %s can-i %s %s in %s: %s\n", mark(a.Allowed), a.Verb, a.Resource, a.Namespace, answer)
	}
}
