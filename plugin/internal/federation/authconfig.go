package federation

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
)

// MaxConfigSize bounds the AuthenticationConfiguration file read: 64 authenticators with their
// CA bundles fit well within it.
const MaxConfigSize = 1 << 20

// NewConfig is an AuthenticationConfiguration with these authenticators.
func NewConfig(jwt ...apiserverv1.JWTAuthenticator) *apiserverv1.AuthenticationConfiguration {
	if jwt == nil {
		jwt = []apiserverv1.JWTAuthenticator{}
	}
	return &apiserverv1.AuthenticationConfiguration{
		TypeMeta: metav1.TypeMeta{APIVersion: apiserverv1.SchemeGroupVersion.String(), Kind: "AuthenticationConfiguration"},
		JWT:      jwt,
	}
}

// ConfigFile is B's kube-apiserver --authentication-config file, as read.
type ConfigFile struct {
	Path   string
	Config *apiserverv1.AuthenticationConfiguration
	raw    []byte
}

// ReadConfigFile reads and checks an AuthenticationConfiguration file. Fields this plugin does
// not know are refused rather than dropped when the file is written back.
func ReadConfigFile(path string) (*ConfigFile, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s does not exist: give the file B's kube-apiserver reads (its --authentication-config flag); "+
			"to start one, write `{apiVersion: %s, kind: AuthenticationConfiguration, jwt: []}` there and start kube-apiserver with --authentication-config=%s",
			path, apiserverv1.SchemeGroupVersion, path)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(raw) > MaxConfigSize {
		return nil, fmt.Errorf("%s is larger than %d bytes: not an authentication configuration this plugin edits", path, MaxConfigSize)
	}
	cfg, err := ParseConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &ConfigFile{Path: path, Config: cfg, raw: raw}, nil
}

// ParseConfig decodes an AuthenticationConfiguration of apiserver.config.k8s.io/v1, strictly.
func ParseConfig(raw []byte) (*apiserverv1.AuthenticationConfiguration, error) {
	var cfg apiserverv1.AuthenticationConfiguration
	if err := yaml.UnmarshalStrict(raw, &cfg); err != nil {
		return nil, fmt.Errorf("not an AuthenticationConfiguration this plugin can edit without losing anything (%v): edit it by hand", err)
	}
	if cfg.APIVersion != apiserverv1.SchemeGroupVersion.String() || cfg.Kind != "AuthenticationConfiguration" {
		return nil, fmt.Errorf("apiVersion %q, kind %q: want apiVersion %s, kind AuthenticationConfiguration (for an older version, change apiVersion: the fields are the same)",
			cfg.APIVersion, cfg.Kind, apiserverv1.SchemeGroupVersion)
	}
	if cfg.JWT == nil {
		cfg.JWT = []apiserverv1.JWTAuthenticator{}
	}
	return &cfg, nil
}

// MarshalConfig is the file's content for cfg.
func MarshalConfig(cfg *apiserverv1.AuthenticationConfiguration) ([]byte, error) {
	if cfg.JWT == nil {
		cfg = cfg.DeepCopy()
		cfg.JWT = []apiserverv1.JWTAuthenticator{}
	}
	return yaml.Marshal(cfg)
}

// HasComments tells whether the file has comments, which a rewrite drops.
func (f *ConfigFile) HasComments() bool {
	for line := range strings.Lines(string(f.raw)) {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			return true
		}
	}
	return false
}

// Changed tells whether cfg differs from what the file holds.
func (f *ConfigFile) Changed(cfg *apiserverv1.AuthenticationConfiguration) bool {
	return !reflect.DeepEqual(f.Config, cfg)
}

// Write replaces the file with cfg atomically: a temporary file in the same folder, with the
// file's mode (and owner, where the platform allows), renamed over it, so that B's API server
// never reads half a file. A symbolic link is followed: its target is replaced. f then holds
// cfg.
func (f *ConfigFile) Write(cfg *apiserverv1.AuthenticationConfiguration) error {
	data, err := MarshalConfig(cfg)
	if err != nil {
		return err
	}
	if err := writeAtomic(f.Path, data); err != nil {
		return err
	}
	f.Config, f.raw = cfg.DeepCopy(), data
	return nil
}

// Hash names the file's content as B's kube-apiserver does in LoadedConfigMetric.
func (f *ConfigFile) Hash() string { return ConfigHash(f.raw) }

func writeAtomic(path string, data []byte) (err error) {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	info, err := os.Stat(target)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".mcsa-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = tmp.Chmod(info.Mode().Perm()); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	keepOwner(tmp, info)
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), target); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(target)); err == nil {
		_ = d.Sync() // the rename is done; a folder that cannot sync loses nothing here
		_ = d.Close()
	}
	return nil
}

// ClusterOf is the importing cluster an authenticator written by federate is for (its
// grant.ClusterExtraKey mapping), "" for any other.
func ClusterOf(j apiserverv1.JWTAuthenticator) string {
	for _, e := range j.ClaimMappings.Extra {
		if e.Key == grant.ClusterExtraKey {
			return strings.Trim(e.ValueExpression, "'")
		}
	}
	return ""
}

// isFor tells whether j is an authenticator federate wrote for importingCluster at source.
func isFor(j apiserverv1.JWTAuthenticator, importingCluster, source string) bool {
	aud := v1alpha1.FederatedAudience(source)
	for _, a := range j.Issuer.Audiences {
		if a == aud {
			return ClusterOf(j) == importingCluster
		}
	}
	return false
}

// DiscoveryURL is where B fetches an issuer's discovery document.
func DiscoveryURL(issuer apiserverv1.Issuer) string {
	if d := ptr.Deref(issuer.DiscoveryURL, ""); d != "" {
		return d
	}
	return strings.TrimSuffix(issuer.URL, "/") + DiscoveryPath
}

// probeError is an issuer B could not fetch, for messages.
type probeError struct {
	index  int
	jwt    apiserverv1.JWTAuthenticator
	status int // the HTTP status when there was an answer
	err    error
}

func (e *probeError) Error() string {
	return fmt.Sprintf("jwt[%d] issuer %s (discovery %s): %v", e.index, e.jwt.Issuer.URL, DiscoveryURL(e.jwt.Issuer), e.err)
}

// probeIssuer fetches an issuer's discovery document as B's authenticator does: anonymously,
// trusting only the entry's CA (the system's roots without one), and checks that it names the
// issuer. It runs from this machine, not from B: it finds dead issuers, not B's network's
// particulars.
func probeIssuer(ctx context.Context, issuer apiserverv1.Issuer, timeout time.Duration) (int, error) {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca := issuer.CertificateAuthority; ca != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(ca)) {
			return 0, errors.New("its certificateAuthority holds no PEM certificate")
		}
		tlsConfig.RootCAs = pool
	}
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: tlsConfig}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, DiscoveryURL(issuer), nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxConfigSize))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("%s (%s)", resp.Status, bytes.TrimSpace(body[:min(len(body), 200)]))
	}
	var doc discoveryDocument
	if err := json.Unmarshal(body, &doc); err != nil {
		return resp.StatusCode, fmt.Errorf("not a discovery document: %v", err)
	}
	if doc.Issuer != issuer.URL {
		return resp.StatusCode, fmt.Errorf("the document names issuer %q, not %q: B would refuse it", doc.Issuer, issuer.URL)
	}
	if doc.JWKSURI == "" {
		return resp.StatusCode, errors.New("the document names no jwks_uri")
	}
	return resp.StatusCode, nil
}

// probeAll probes the issuers of cfg concurrently, retrying those that wait, as long as grace,
// while they answer 401 or 403 (a binding just written takes a moment); the others once. It
// skips issuers that B reaches through an egress selector, which this machine cannot imitate.
func probeAll(ctx context.Context, cfg *apiserverv1.AuthenticationConfiguration, timeout, interval time.Duration, grace func(apiserverv1.Issuer) time.Duration) (failed []*probeError, skipped []string) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, j := range cfg.JWT {
		if j.Issuer.EgressSelectorType != "" {
			skipped = append(skipped, j.Issuer.URL)
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			deadline := time.Now().Add(grace(j.Issuer))
			for {
				status, err := probeIssuer(ctx, j.Issuer, timeout)
				if err == nil {
					return
				}
				if (status == http.StatusForbidden || status == http.StatusUnauthorized) && time.Now().Add(interval).Before(deadline) {
					select {
					case <-time.After(interval):
						continue
					case <-ctx.Done():
					}
				}
				mu.Lock()
				failed = append(failed, &probeError{index: i, jwt: j, status: status, err: err})
				mu.Unlock()
				return
			}
		})
	}
	wg.Wait()
	// In the file's order, for stable messages.
	slices.SortFunc(failed, func(a, b *probeError) int { return a.index - b.index })
	return failed, skipped
}
