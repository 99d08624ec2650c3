// Package execcredential turns an import's token into a client-go exec credential
// (client.authentication.k8s.io/v1 ExecCredential), for `kubectl mcsa credential`, and renders
// what runs it: the kubeconfig of `kubectl mcsa kubeconfig --exec`, and the ClusterProfile
// consumers' provider file of `kubectl mcsa credential --provider-file`. It is pure: callers read the
// mounted files or the import's secret and pass the time.
//
// The credential's status.expirationTimestamp is the earliest point at which the importer may
// refresh the token (RefreshFraction of its lifetime after it was issued, see
// incluster/internal/importer/schedule.go), never later than Margin before the token expires.
// client-go caches an exec credential until that time and runs the plugin again on the first
// request after it, so a client never holds a token past the point where a newer one may exist,
// and never sends one that expired: rotation costs it no 401.
package execcredential

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientauthv1 "k8s.io/client-go/pkg/apis/clientauthentication/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	clientcmdv1 "k8s.io/client-go/tools/clientcmd/api/v1"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/credential"
)

// ExecInfoEnv is the environment variable in which client-go passes the ExecCredential request
// (with the cluster when provideClusterInfo is set) to an exec plugin.
const ExecInfoEnv = "KUBERNETES_EXEC_INFO"

// ClusterExtensionKey is the kubeconfig cluster extension that client-go passes to exec plugins
// as spec.cluster.config.
const ClusterExtensionKey = v1alpha1.ExecExtensionKey

// RefreshFraction is the earliest point of a token's lifetime at which the importer refreshes
// it.
const RefreshFraction = v1alpha1.RefreshFractionMin

// Margin is how long before a token expires its credential expires at the latest.
const Margin = 30 * time.Second

// Retry is how long a credential is cached when the token is past its refresh point and the
// importer has not refreshed it yet (it may at any moment): short, but not every request.
const Retry = 10 * time.Second

// ClusterConfig is the cluster extension of a kubeconfig written by `kubectl mcsa kubeconfig
// --exec`, or of a ClusterProfile's access provider: which import the credential is for.
type ClusterConfig = v1alpha1.ExecClusterConfig

// ParseExecInfo reads the ExecCredential request that client-go passes in KUBERNETES_EXEC_INFO
// and returns its cluster extension ("" or no cluster: nil, nil; client-go passes the cluster
// only with provideClusterInfo).
func ParseExecInfo(env string) (*ClusterConfig, error) {
	if strings.TrimSpace(env) == "" {
		return nil, nil
	}
	var ec clientauthv1.ExecCredential
	if err := json.Unmarshal([]byte(env), &ec); err != nil {
		return nil, fmt.Errorf("%s is not an ExecCredential: %w", ExecInfoEnv, err)
	}
	if ec.APIVersion != "" && ec.APIVersion != clientauthv1.SchemeGroupVersion.String() {
		return nil, fmt.Errorf("%s has apiVersion %q; this plugin speaks %s: set the kubeconfig user's exec.apiVersion to it", ExecInfoEnv, ec.APIVersion, clientauthv1.SchemeGroupVersion)
	}
	if ec.Spec.Cluster == nil || len(ec.Spec.Cluster.Config.Raw) == 0 || string(ec.Spec.Cluster.Config.Raw) == "null" {
		return nil, nil
	}
	var cc ClusterConfig
	if err := json.Unmarshal(ec.Spec.Cluster.Config.Raw, &cc); err != nil {
		return nil, fmt.Errorf("%s: the cluster's %s extension is not {\"import\": NAME, \"namespace\": NS}: %w", ExecInfoEnv, ClusterExtensionKey, err)
	}
	return &cc, nil
}

// Claims are the times of a service account token (a JWT), read without verifying it: the
// token is only passed on, the API server verifies it.
type Claims struct {
	IssuedAt, Expiry time.Time
}

// ParseClaims reads iat and exp from a JWT. A token without exp (a legacy secret-based token)
// has a zero Expiry.
func ParseClaims(token string) (Claims, error) {
	parts := strings.Split(strings.TrimSpace(token), ".")
	if len(parts) != 3 {
		return Claims{}, errors.New("the token is not a JWT (want 3 dot-separated parts)")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return Claims{}, fmt.Errorf("the token's payload is not base64url: %w", err)
	}
	var c struct {
		IAT *json.Number `json:"iat"`
		EXP *json.Number `json:"exp"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return Claims{}, fmt.Errorf("the token's payload is not JSON: %w", err)
	}
	var out Claims
	if c.EXP != nil {
		exp, err := c.EXP.Int64()
		if err != nil {
			return Claims{}, fmt.Errorf("the token's exp claim %q is not a time: %w", *c.EXP, err)
		}
		out.Expiry = time.Unix(exp, 0)
	}
	if c.IAT != nil {
		iat, err := c.IAT.Int64()
		if err != nil {
			return Claims{}, fmt.Errorf("the token's iat claim %q is not a time: %w", *c.IAT, err)
		}
		out.IssuedAt = time.Unix(iat, 0)
	}
	if !out.Expiry.IsZero() && out.IssuedAt.IsZero() {
		return Claims{}, errors.New("the token has an exp claim but no iat claim")
	}
	if !out.Expiry.IsZero() && !out.Expiry.After(out.IssuedAt) {
		return Claims{}, fmt.Errorf("the token expires (%s) before it was issued (%s)", out.Expiry.UTC().Format(time.RFC3339), out.IssuedAt.UTC().Format(time.RFC3339))
	}
	return out, nil
}

// RefreshAt is the earliest point at which the importer may refresh the token.
func (c Claims) RefreshAt() time.Time {
	lifetime := c.Expiry.Sub(c.IssuedAt)
	return c.IssuedAt.Add(time.Duration(float64(lifetime) * RefreshFraction))
}

// Expiration is the credential's expiration at now: the token's refresh point; Retry after now
// when that point has passed (the importer is about to refresh it); never later than Margin
// before the token expires. Zero means never (a token without exp).
func (c Claims) Expiration(now time.Time) time.Time {
	if c.Expiry.IsZero() {
		return time.Time{}
	}
	at := c.RefreshAt()
	if !at.After(now) {
		at = now.Add(Retry)
	}
	if latest := c.Expiry.Add(-Margin); at.After(latest) {
		at = latest
	}
	return at
}

// Credential is the ExecCredential of token at now. An expired token, or one that is not a
// JWT, is an error: client-go would send it and get a 401.
func Credential(token string, now time.Time) (*clientauthv1.ExecCredential, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, errors.New("the token is empty")
	}
	c, err := ParseClaims(token)
	if err != nil {
		return nil, err
	}
	if !c.Expiry.IsZero() && !c.Expiry.After(now) {
		return nil, fmt.Errorf("the token expired at %s", c.Expiry.UTC().Format(time.RFC3339))
	}
	ec := &clientauthv1.ExecCredential{
		TypeMeta: metav1.TypeMeta{APIVersion: clientauthv1.SchemeGroupVersion.String(), Kind: "ExecCredential"},
		Status:   &clientauthv1.ExecCredentialStatus{Token: token},
	}
	if exp := c.Expiration(now); !exp.IsZero() {
		t := metav1.NewTime(exp)
		ec.Status.ExpirationTimestamp = &t
	}
	return ec, nil
}

// FromSecretData is the credential of an import's secret data.
func FromSecretData(data map[string][]byte, now time.Time) (*clientauthv1.ExecCredential, error) {
	if _, ok := data[v1alpha1.SecretKeyToken]; !ok {
		return nil, fmt.Errorf("the secret has no %q key", v1alpha1.SecretKeyToken)
	}
	return Credential(credential.Parse(data).Token, now)
}

// maxTokenSize bounds what is read from a mounted token file: a secret holds at most 1 MiB.
const maxTokenSize = 1 << 20

// FromDir is the credential of an import mounted at dir (its token file).
func FromDir(dir string, now time.Time) (*clientauthv1.ExecCredential, error) {
	path := filepath.Join(dir, v1alpha1.SecretKeyToken)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > maxTokenSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxTokenSize)
	}
	return Credential(string(b), now)
}

// Encode is the credential as client-go reads it on the plugin's stdout.
func Encode(ec *clientauthv1.ExecCredential) ([]byte, error) {
	b, err := json.Marshal(ec)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Exec says how a kubeconfig runs the credential plugin.
type Exec struct {
	// Command is the program (kubectl, or the kubectl-mcsa binary).
	Command string
	// Args are its arguments (e.g. mcsa credential NAME -n NS --context CTX).
	Args []string
	// Cluster is passed to the plugin as spec.cluster.config.
	Cluster ClusterConfig
}

// ExecConfig is how a kubeconfig, or a consumer of ClusterProfiles, runs the plugin: always
// with the cluster's exec extension (provideClusterInfo), which names the import, and never
// interactively.
func (e Exec) ExecConfig() clientcmdv1.ExecConfig {
	return clientcmdv1.ExecConfig{
		APIVersion:         clientauthv1.SchemeGroupVersion.String(),
		Command:            e.Command,
		Args:               e.Args,
		InteractiveMode:    clientcmdv1.NeverExecInteractiveMode,
		ProvideClusterInfo: true,
		InstallHint:        installHint,
	}
}

const installHint = "kubectl-mcsa is needed to use this kubeconfig: see https://github.com/kubectl-mcsa/kubectl-mcsa/blob/main/docs/install.md"

// Provider is an entry of a ClusterProfile consumer's provider file
// (sigs.k8s.io/cluster-inventory-api/pkg/access, KEP-5339): the exec plugin that gets a token
// for the clusters whose profiles list the access provider of that name.
type Provider struct {
	Name       string                 `json:"name"`
	ExecConfig clientcmdv1.ExecConfig `json:"execConfig"`
}

// ProviderFile is the provider file (the --clusterprofile-provider-file of multicluster-runtime,
// Kueue, …) that makes a consumer run e for the profiles kubectl-mcsa publishes. Profile-sourced
// arguments and environment variables are left off (pkg/access's default, Ignore): the
// profile's exec extension says everything per cluster, and a profile's writer should not
// choose what the consumer's plugin runs with.
func ProviderFile(e Exec) ([]byte, error) {
	if e.Command == "" {
		return nil, errors.New("no exec command")
	}
	b, err := json.MarshalIndent(struct {
		Providers []Provider `json:"providers"`
	}{[]Provider{{Name: v1alpha1.AccessProviderName, ExecConfig: e.ExecConfig()}}}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Kubeconfig is a kubeconfig for the remote cluster of d (server, CA, default namespace) whose
// user runs e: it keeps working as long as the import does.
func Kubeconfig(d credential.Data, e Exec) ([]byte, error) {
	if d.ClusterName == "" || d.Server == "" {
		return nil, errors.New("credential: no cluster name or server")
	}
	if e.Command == "" {
		return nil, errors.New("no exec command")
	}
	ext, err := json.Marshal(e.Cluster)
	if err != nil {
		return nil, err
	}
	cluster := &clientcmdapi.Cluster{
		Server:                   d.Server,
		CertificateAuthorityData: d.CAData,
		Extensions:               map[string]runtime.Object{ClusterExtensionKey: &runtime.Unknown{Raw: ext, ContentType: runtime.ContentTypeJSON}},
	}
	user := &clientcmdapi.AuthInfo{Exec: &clientcmdapi.ExecConfig{
		APIVersion:         clientauthv1.SchemeGroupVersion.String(),
		Command:            e.Command,
		Args:               e.Args,
		InteractiveMode:    clientcmdapi.NeverExecInteractiveMode,
		ProvideClusterInfo: true,
		InstallHint:        installHint,
	}}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[d.ClusterName] = cluster
	cfg.AuthInfos[d.ClusterName] = user
	cfg.Contexts[d.ClusterName] = &clientcmdapi.Context{Cluster: d.ClusterName, AuthInfo: d.ClusterName, Namespace: d.Namespace}
	cfg.CurrentContext = d.ClusterName
	return clientcmd.Write(*cfg)
}
