package walkthrough

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// podLister is the identity the scenario imports from cluster2 and cluster3.
const podLister = "system:serviceaccount:default:pod-lister"

// auditPolicy records the imported identity's calls in cluster2, at the Metadata level: enough
// for the token's ID, which the API server adds to the user's extra fields.
//
// With federation it also records the calls of cluster1's service accounts (cluster1 is their
// authenticated identity; the impersonated one is in impersonatedUser) and every TokenRequest,
// so that the scenario can show none is made for a federated import.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  users: ["` + podLister + `"]
- level: Metadata
  userGroups: ["` + Cluster1 + `:system:serviceaccounts"]
- level: Metadata
  resources: [{group: "", resources: ["serviceaccounts/token"]}]
- level: None
`

// credentialIDKey is where the API server puts the ID of the credential a request
// authenticated with (k8s.io/apiserver/pkg/authentication/user.CredentialIDKey); for service
// account tokens, "JTI=" and the token's jti claim.
const credentialIDKey = "authentication.kubernetes.io/credential-id"

// auditEvent is the part of an audit.k8s.io/v1 Event the scenario reads.
type auditEvent struct {
	Stage          string `json:"stage"`
	Verb           string `json:"verb"`
	RequestURI     string `json:"requestURI"`
	UserAgent      string `json:"userAgent"`
	StageTimestamp string `json:"stageTimestamp"`
	User           struct {
		Username string              `json:"username"`
		Extra    map[string][]string `json:"extra"`
	} `json:"user"`
	ImpersonatedUser *struct {
		Username string `json:"username"`
	} `json:"impersonatedUser"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// jti is the token ID the call authenticated with, "" when none.
func (ev *auditEvent) jti() string {
	for _, id := range ev.User.Extra[credentialIDKey] {
		if v, ok := strings.CutPrefix(id, "JTI="); ok {
			return v
		}
	}
	return ""
}

// tokenUse is what the audit log says about one token.
type tokenUse struct {
	// Calls that completed with a 2xx status, and others.
	OK, Failed int
	// First is when the first successful call completed.
	First time.Time
}

// auditReader follows an audit log, tallying the calls of the pod-lister identity by token ID
// and user agent prefix.
type auditReader struct {
	path   string
	user   string // the authenticated user of the calls to count
	agent  string // user agent prefix of the calls to count, e.g. "generic-client/"
	offset int64
	rest   []byte // an incomplete last line
	uses   map[string]*tokenUse
}

func newAuditReader(path, agent string) *auditReader {
	return newAuditReaderFor(path, podLister, agent)
}

// newAuditReaderFor tallies the calls of another user (authenticated, before impersonation).
func newAuditReaderFor(path, user, agent string) *auditReader {
	return &auditReader{path: path, user: user, agent: agent, uses: map[string]*tokenUse{}}
}

// Update reads what the log gained since the last call.
func (a *auditReader) Update() error {
	f, err := os.Open(a.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(a.offset, io.SeekStart); err != nil {
		return err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	a.offset += int64(len(b))
	return a.feed(b)
}

// feed tallies complete lines of b (with what was left over from the last call).
func (a *auditReader) feed(b []byte) error {
	b = append(a.rest, b...)
	last := bytes.LastIndexByte(b, '\n')
	a.rest = append([]byte(nil), b[last+1:]...)
	sc := bufio.NewScanner(bytes.NewReader(b[:last+1]))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		var ev auditEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("audit log %s: %w", a.path, err)
		}
		if ev.Stage != "ResponseComplete" || ev.User.Username != a.user || !strings.HasPrefix(ev.UserAgent, a.agent) {
			continue
		}
		jti := ev.jti()
		u := a.uses[jti]
		if u == nil {
			u = &tokenUse{}
			a.uses[jti] = u
		}
		if ev.ResponseStatus != nil && ev.ResponseStatus.Code/100 == 2 {
			u.OK++
			if u.First.IsZero() {
				u.First, _ = time.Parse(time.RFC3339Nano, ev.StageTimestamp)
			}
		} else {
			u.Failed++
		}
	}
	return sc.Err()
}

// Use is the tally of token jti.
func (a *auditReader) Use(jti string) tokenUse {
	if u := a.uses[jti]; u != nil {
		return *u
	}
	return tokenUse{}
}

// Tokens are the IDs of the tokens with successful calls, in the order of their first one.
func (a *auditReader) Tokens() []string {
	var ids []string
	for id, u := range a.uses {
		if u.OK > 0 {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(x, y string) int { return a.uses[x].First.Compare(a.uses[y].First) })
	return ids
}

// Failed counts the calls that did not succeed, whatever their token.
func (a *auditReader) Failed() int {
	n := 0
	for _, u := range a.uses {
		n += u.Failed
	}
	return n
}

// claims are the JWT claims of a service account token the scenario shows.
type claims struct {
	ID        string `json:"jti"`
	Subject   string `json:"sub"`
	Issuer    string `json:"iss"`
	ExpiresAt int64  `json:"exp"`
}

// parseToken decodes (without verifying: the API server does that) a JWT's claims.
func parseToken(token string) (claims, error) {
	parts := strings.Split(strings.TrimSpace(token), ".")
	if len(parts) != 3 {
		return claims{}, fmt.Errorf("not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return claims{}, fmt.Errorf("JWT payload: %w", err)
	}
	var c claims
	if err := json.Unmarshal(b, &c); err != nil {
		return claims{}, fmt.Errorf("JWT claims: %w", err)
	}
	if c.ID == "" {
		return c, errors.New("the token has no jti claim")
	}
	return c, nil
}

// summaryLine is generic-client's last line with -loop.
var summaryLine = regexp.MustCompile(`(?m)^generic-client: summary: successes=(\d+) failures=(\d+)$`)

// parseSummary reads generic-client's summary from its log.
func parseSummary(log string) (successes, failures int, err error) {
	m := summaryLine.FindAllStringSubmatch(log, -1)
	if len(m) != 1 {
		return 0, 0, fmt.Errorf("%d summary lines in the client's log, want 1", len(m))
	}
	successes, _ = strconv.Atoi(m[0][1])
	failures, _ = strconv.Atoi(m[0][2])
	return successes, failures, nil
}
