package cmd

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilversion "k8s.io/apimachinery/pkg/util/version"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/version"
	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// VersionOptions are `kubectl mcsa version`'s.
type VersionOptions struct {
	genericiooptions.IOStreams
	ui *ui.UI
	// connect builds the clients of the selected context; only -o json|yaml without --client
	// calls it, so that the plain output needs no cluster (and stays as fast as a no-op).
	connect clientsFunc
	// pluginVersion is the build's, a field so that tests can give the plugin any version.
	pluginVersion string

	Short  bool
	Client bool
	Output string
}

// NewVersionOptions are version's defaults.
func NewVersionOptions(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *VersionOptions {
	return &VersionOptions{IOStreams: streams, ui: ui.New(streams.ErrOut), connect: clientsFor(configFlags), pluginVersion: version.Version}
}

// NewCmdVersion is `kubectl mcsa version`.
func NewCmdVersion(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *cobra.Command {
	o := NewVersionOptions(streams, configFlags)
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the plugin's version, and with -o the controller's and their skew",
		Long: `Print the plugin's version. With -o json or -o yaml, also the version of the controller
installed in the context's cluster (the tag of its Deployment's image) and the skew between them;
a warning on stderr says how to bring them together when they differ. --client prints the
plugin's version only, without contacting the cluster.`,
		Example: `  kubectl mcsa version
  kubectl mcsa version -o json --context cluster1
  kubectl mcsa version -o yaml --client`,
		Args: cobra.NoArgs,
		RunE: runE(o),
	}
	cmd.Flags().BoolVar(&o.Short, "short", o.Short, "print only the version number")
	cmd.Flags().BoolVar(&o.Client, "client", o.Client, "with -o, the plugin's version only: do not contact the cluster")
	cmd.Flags().StringVarP(&o.Output, "output", "o", o.Output, "json or yaml, with the controller's version and the skew")
	must(cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"json", "yaml"}, cobra.ShellCompDirectiveNoFileComp)))
	return cmd
}

// Complete has nothing to derive.
func (o *VersionOptions) Complete(*cobra.Command, []string) error { return nil }

// Validate checks the output format before anything is printed or fetched.
func (o *VersionOptions) Validate() error {
	switch o.Output {
	case "", "json", "yaml":
	default:
		return fmt.Errorf("--output must be json or yaml, not %q", o.Output)
	}
	if o.Short && o.Output != "" {
		return errors.New("--short and --output cannot be combined")
	}
	return nil
}

// Skew between the plugin and the controller.
const (
	SkewNone            = "none"
	SkewPluginNewer     = "plugin-newer"
	SkewControllerNewer = "controller-newer"
	// SkewUnknown: the versions differ and one is no semantic version (a development build,
	// an image pinned by digest only or tagged otherwise), so neither can be called newer.
	SkewUnknown = "unknown"
)

// VersionInfo is what -o json|yaml prints.
type VersionInfo struct {
	Plugin PluginVersion `json:"plugin"`
	// Controller is absent with --client and when the cluster has no controller installed.
	Controller *ControllerVersion `json:"controller,omitempty"`
	// Skew is one of the Skew constants; absent when there is no controller to compare with.
	Skew string `json:"skew,omitempty"`
}

// PluginVersion is the plugin's build.
type PluginVersion struct {
	Version   string `json:"version"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// ControllerVersion is the controller installed in the context's cluster.
type ControllerVersion struct {
	Context string `json:"context,omitempty"`
	// Version is the tag of the Deployment's image, which `kubectl mcsa install` sets to the
	// plugin's version unless --image says otherwise; empty for an image pinned by digest only.
	Version string `json:"version,omitempty"`
	Image   string `json:"image"`
}

// Run prints the version.
func (o *VersionOptions) Run(ctx context.Context) error {
	plugin := PluginVersion{Version: o.pluginVersion, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	switch {
	case o.Short:
		_, err := fmt.Fprintln(o.Out, plugin.Version)
		return err
	case o.Output == "":
		_, err := fmt.Fprintf(o.Out, "kubectl-mcsa %s (%s, %s)\n", plugin.Version, plugin.GoVersion, plugin.Platform)
		return err
	}
	info := VersionInfo{Plugin: plugin}
	var connErr error
	if !o.Client {
		info.Controller, connErr = o.controller(ctx)
		if info.Controller != nil {
			info.Skew = skew(plugin.Version, info.Controller.Version)
		}
	}
	// What is known is printed before the error, as kubectl version does with an unreachable
	// server, so that scripts get the plugin's version either way.
	if _, err := printStructured(o.Out, o.Output, info); err != nil {
		return err
	}
	if connErr != nil {
		return connErr
	}
	o.warnSkew(info)
	return nil
}

// controller reads the controller's version from its Deployment; nil without error when the
// cluster has none.
func (o *VersionOptions) controller(ctx context.Context) (*ControllerVersion, error) {
	cl, err := o.connect()
	if err != nil {
		return nil, err
	}
	d, err := cl.Kube.AppsV1().Deployments(manifests.Namespace).Get(ctx, manifests.ControllerDeployment, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		o.ui.Warn("no controller in context %q (deployment %s/%s not found): `kubectl mcsa install --context %s` installs this plugin's version", cl.Context, manifests.Namespace, manifests.ControllerDeployment, cl.Context)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the controller's version: %w", err)
	}
	if len(d.Spec.Template.Spec.Containers) == 0 {
		return nil, fmt.Errorf("deployment %s/%s has no container", manifests.Namespace, manifests.ControllerDeployment)
	}
	image := d.Spec.Template.Spec.Containers[0].Image
	return &ControllerVersion{Context: cl.Context, Version: imageTag(image), Image: image}, nil
}

// warnSkew says on stderr how to bring differing versions together.
func (o *VersionOptions) warnSkew(info VersionInfo) {
	c := info.Controller
	switch info.Skew {
	case SkewPluginNewer:
		o.ui.Warn("the plugin (%s) is newer than the controller (%s) in context %q: `kubectl mcsa install --context %s` upgrades the controller", info.Plugin.Version, c.Version, c.Context, c.Context)
	case SkewControllerNewer:
		o.ui.Warn("the controller (%s) in context %q is newer than the plugin (%s): upgrade the plugin (`kubectl krew upgrade mcsa`, or a release archive)", c.Version, c.Context, info.Plugin.Version)
	case SkewUnknown:
		o.ui.Warn("the plugin (%s) and the controller's image (%s) in context %q differ, and one is no release version: their compatibility is unknown", info.Plugin.Version, c.Image, c.Context)
	}
}

// imageTag is the tag of an image reference ("name:tag", "name:tag@sha256:…"); "" without
// one. A colon before the last slash belongs to a registry's port, not a tag.
func imageTag(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i:], "/") {
		return ""
	}
	return ref[i+1:]
}

// skew compares two versions as semantic versions, each with or without a leading v.
func skew(plugin, controller string) string {
	if plugin == controller {
		return SkewNone
	}
	p, perr := utilversion.ParseSemantic(plugin)
	c, cerr := utilversion.ParseSemantic(controller)
	if perr != nil || cerr != nil {
		return SkewUnknown
	}
	switch {
	case c.LessThan(p):
		return SkewPluginNewer
	case p.LessThan(c):
		return SkewControllerNewer
	}
	// Equal but for a leading v or build metadata.
	return SkewNone
}
