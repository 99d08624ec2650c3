package cmd

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
)

// controllerAt is a fake cluster whose controller Deployment runs image; none when image is "".
func controllerAt(image string) clientsFunc {
	c, connect := fakeCluster("cluster1")
	if image != "" {
		c.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: manifests.Namespace}},
			&appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Namespace: manifests.Namespace, Name: manifests.ControllerDeployment},
				Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "controller", Image: image}},
				}}},
			})
	}
	return connect
}

func TestVersionOptions(t *testing.T) {
	refused := func() (*kube.Clients, error) { return nil, errors.New("connection refused") }
	for _, tt := range []struct {
		name, plugin, output string
		client               bool
		connect              clientsFunc
		want                 VersionInfo // Plugin.Version only, and what the cluster tells
		wantWarn, wantErr    string
	}{
		{name: "same version", plugin: "v0.2.0", output: "json", connect: controllerAt("ghcr.io/kubectl-mcsa/mcsa-controller:v0.2.0"),
			want: VersionInfo{Controller: &ControllerVersion{Context: "cluster1", Version: "v0.2.0", Image: "ghcr.io/kubectl-mcsa/mcsa-controller:v0.2.0"}, Skew: SkewNone}},
		{name: "plugin newer", plugin: "v0.3.0", output: "yaml", connect: controllerAt("ghcr.io/kubectl-mcsa/mcsa-controller:v0.2.1"),
			want:     VersionInfo{Controller: &ControllerVersion{Context: "cluster1", Version: "v0.2.1", Image: "ghcr.io/kubectl-mcsa/mcsa-controller:v0.2.1"}, Skew: SkewPluginNewer},
			wantWarn: "`kubectl mcsa install --context cluster1` upgrades the controller"},
		{name: "controller newer, tag and digest, registry port", plugin: "v0.2.0", output: "json", connect: controllerAt("registry:5000/mcsa-controller:v0.10.0@sha256:abc"),
			want:     VersionInfo{Controller: &ControllerVersion{Context: "cluster1", Version: "v0.10.0", Image: "registry:5000/mcsa-controller:v0.10.0@sha256:abc"}, Skew: SkewControllerNewer},
			wantWarn: "upgrade the plugin"},
		{name: "prerelease older than its release", plugin: "v0.2.0", output: "json", connect: controllerAt("mcsa-controller:v0.2.0-rc.1"),
			want:     VersionInfo{Controller: &ControllerVersion{Context: "cluster1", Version: "v0.2.0-rc.1", Image: "mcsa-controller:v0.2.0-rc.1"}, Skew: SkewPluginNewer},
			wantWarn: "upgrades the controller"},
		{name: "digest only", plugin: "v0.2.0", output: "json", connect: controllerAt("registry:5000/mcsa-controller@sha256:abc"),
			want:     VersionInfo{Controller: &ControllerVersion{Context: "cluster1", Image: "registry:5000/mcsa-controller@sha256:abc"}, Skew: SkewUnknown},
			wantWarn: "compatibility is unknown"},
		{name: "development build", plugin: "dev", output: "json", connect: controllerAt("mcsa-controller:latest"),
			want:     VersionInfo{Controller: &ControllerVersion{Context: "cluster1", Version: "latest", Image: "mcsa-controller:latest"}, Skew: SkewUnknown},
			wantWarn: "compatibility is unknown"},
		{name: "not installed", plugin: "v0.2.0", output: "json", connect: controllerAt(""),
			want: VersionInfo{}, wantWarn: "kubectl mcsa install --context cluster1"},
		{name: "--client does not connect", plugin: "v0.2.0", output: "json", client: true, connect: refused,
			want: VersionInfo{}},
		{name: "unreachable: the plugin's version, then the error", plugin: "v0.2.0", output: "json", connect: refused,
			want: VersionInfo{}, wantErr: "connection refused"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			streams, _, out, errOut := genericiooptions.NewTestIOStreams()
			o := NewVersionOptions(streams, genericclioptions.NewConfigFlags(false))
			o.connect, o.pluginVersion, o.Output, o.Client = tt.connect, tt.plugin, tt.output, tt.client
			err := completeAndRun(t, o, func() error { return o.Complete(nil, nil) })
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			var got VersionInfo
			if tt.output == "json" {
				err = json.Unmarshal(out.Bytes(), &got)
			} else {
				err = yaml.Unmarshal(out.Bytes(), &got)
			}
			if err != nil {
				t.Fatalf("%v in:\n%s", err, out)
			}
			if got.Plugin.Version != tt.plugin || got.Plugin.GoVersion == "" || got.Plugin.Platform == "" {
				t.Errorf("plugin %+v, want version %s with Go and platform", got.Plugin, tt.plugin)
			}
			got.Plugin = PluginVersion{}
			if gotJSON, wantJSON := mustJSON(t, got), mustJSON(t, tt.want); gotJSON != wantJSON {
				t.Errorf("got %s\nwant %s", gotJSON, wantJSON)
			}
			if tt.wantWarn == "" && errOut.Len() > 0 || !strings.Contains(errOut.String(), tt.wantWarn) {
				t.Errorf("stderr %q, want %q", errOut, tt.wantWarn)
			}
		})
	}
}

// The plain and --short outputs stay offline and as they were.
func TestVersionPlain(t *testing.T) {
	for _, tt := range []struct {
		name     string
		short    bool
		output   string
		want     string
		validErr string
	}{
		{name: "plain", want: "kubectl-mcsa v0.2.0 ("},
		{name: "short", short: true, want: "v0.2.0\n"},
		{name: "short and -o", short: true, output: "json", validErr: "cannot be combined"},
		{name: "bad -o", output: "wide", validErr: "must be json or yaml"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			streams, _, out, _ := genericiooptions.NewTestIOStreams()
			o := NewVersionOptions(streams, genericclioptions.NewConfigFlags(false))
			o.connect = func() (*kube.Clients, error) { t.Fatal("connected"); return nil, nil }
			o.pluginVersion, o.Short, o.Output = "v0.2.0", tt.short, tt.output
			err := completeAndRun(t, o, func() error { return o.Complete(nil, nil) })
			if tt.validErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.validErr) {
					t.Fatalf("error %v, want %q", err, tt.validErr)
				}
				return
			}
			if err != nil || !strings.HasPrefix(out.String(), tt.want) {
				t.Fatalf("got %q, %v; want %q…", out, err, tt.want)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
