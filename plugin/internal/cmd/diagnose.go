package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/credential"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/diagnose"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/imports"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/inspect"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
)

// printStructured prints v as YAML or JSON for -o; it reports false for human output.
func printStructured(c *common, output string, v any) (bool, error) {
	switch output {
	case "":
		return false, nil
	case "json":
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return true, err
		}
		_, err = fmt.Fprintln(c.streams.Out, string(b))
		return true, err
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return true, err
		}
		_, err = c.streams.Out.Write(b)
		return true, err
	}
	return true, fmt.Errorf("--output must be yaml or json, not %q", output)
}

// InspectOptions are `kubectl mcsa inspect`'s.
type InspectOptions struct {
	*common
	Name, Secret, TokenFile string
	RemoteServer, RemoteCA  string
	CanI                    []string
	Output                  string
	Offline                 bool
}

func newInspectCmd(c *common) *cobra.Command {
	o := &InspectOptions{common: c}
	cmd := &cobra.Command{
		Use:   "inspect [NAME | --secret NAME | --token-file PATH]",
		Short: "Show whose identity a credential carries in the remote cluster and what it may do there",
		Long: `Show an import's credential: the token's claims (decoded, not verified) with the time left, the
remote server and its CA, then live checks in the remote cluster made with the token itself: who
it authenticates as, and what it may do in the remote namespace. Works on an import, a secret,
or a token file (e.g. inside a pod: the folder of a mounted import also gives the server and CA).`,
		Example: `  kubectl mcsa inspect cluster2-default-pod-lister
  kubectl mcsa inspect cluster2-default-pod-lister --can-i list pods
  kubectl mcsa inspect --token-file /var/run/secrets/admiralty.io/serviceaccountimports/cluster2-default-pod-lister/token`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeImportNames(c),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.Name = args[0]
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context(), time.Now())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Secret, "secret", "", "inspect this secret (with the keys of an import's secret) instead of an import")
	f.StringVar(&o.TokenFile, "token-file", "", "inspect a token file; server and CA come from the files beside it, or the flags below")
	f.StringVar(&o.RemoteServer, "remote-server", "", "with --token-file: the remote API server's URL")
	f.StringVar(&o.RemoteCA, "remote-ca-file", "", "with --token-file: the remote cluster's CA bundle")
	f.StringSliceVar(&o.CanI, "can-i", nil, "also ask whether the token may VERB RESOURCE, e.g. --can-i list,pods or --can-i create,deployments.apps")
	f.StringVarP(&o.Output, "output", "o", "", "yaml or json")
	f.BoolVar(&o.Offline, "offline", false, "only decode: no live check")
	return cmd
}

// Validate checks that exactly one credential is named.
func (o *InspectOptions) Validate() error {
	n := 0
	for _, s := range []string{o.Name, o.Secret, o.TokenFile} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return errors.New("name one credential: an import NAME, --secret NAME or --token-file PATH")
	}
	if len(o.CanI) != 0 && len(o.CanI) != 2 {
		return errors.New("--can-i takes VERB,RESOURCE, e.g. --can-i list,pods")
	}
	return nil
}

// Run loads the credential, checks it and prints.
func (o *InspectOptions) Run(ctx context.Context, now time.Time) error {
	d, source, err := o.load(ctx)
	if err != nil {
		return err
	}
	r := inspect.FromCredential(source, d)
	if !o.Offline {
		if d.Server == "" {
			return errors.New("no server for the live checks: pass --remote-server (or --offline)")
		}
		var q *inspect.CanI
		if len(o.CanI) == 2 {
			q = &inspect.CanI{Verb: o.CanI[0], Resource: o.CanI[1]}
		}
		r.CheckLive(ctx, d, q)
	}
	if done, err := printStructured(o.common, o.Output, r); done {
		return err
	}
	r.Print(o.streams.Out, now, o.ui.Mark)
	return nil
}

func (o *InspectOptions) load(ctx context.Context) (credential.Data, string, error) {
	if o.TokenFile != "" {
		return o.loadFiles()
	}
	cl, err := o.clients()
	if err != nil {
		return credential.Data{}, "", err
	}
	if o.Secret != "" {
		s, err := cl.Kube.CoreV1().Secrets(cl.Namespace).Get(ctx, o.Secret, metav1.GetOptions{})
		if err != nil {
			return credential.Data{}, "", cl.APIError(err)
		}
		return credential.Parse(s.Data), fmt.Sprintf("secret %s/%s", cl.Namespace, o.Secret), nil
	}
	client := &imports.Client{Clients: cl}
	sai, err := client.Get(ctx, cl.Namespace, o.Name)
	if err != nil {
		return credential.Data{}, "", err
	}
	s, err := client.Secret(ctx, sai)
	if err != nil {
		return credential.Data{}, "", err
	}
	d := credential.Parse(s.Data)
	d.ClusterName = sai.Spec.ClusterName
	return d, fmt.Sprintf("import %s/%s → %s/%s/%s (secret %s)", sai.Namespace, sai.Name, sai.Spec.ClusterName, sai.Spec.Namespace, sai.Spec.Name, s.Name), nil
}

// loadFiles reads a token file and, from a mounted import's folder, the files beside it.
func (o *InspectOptions) loadFiles() (credential.Data, string, error) {
	token, err := os.ReadFile(o.TokenFile)
	if err != nil {
		return credential.Data{}, "", err
	}
	dir := filepath.Dir(o.TokenFile)
	sibling := func(name string) []byte {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		return b
	}
	d := credential.Data{
		Token:     strings.TrimSpace(string(token)),
		Server:    strings.TrimSpace(string(sibling(v1alpha1.SecretKeyServer))),
		CAData:    sibling(v1alpha1.SecretKeyCACert),
		Namespace: strings.TrimSpace(string(sibling(v1alpha1.SecretKeyNamespace))),
	}
	if o.RemoteServer != "" {
		d.Server = o.RemoteServer
	}
	if o.RemoteCA != "" {
		if d.CAData, err = os.ReadFile(o.RemoteCA); err != nil {
			return credential.Data{}, "", err
		}
	}
	return d, "token file " + o.TokenFile, nil
}

// MountsOptions are `kubectl mcsa mounts`'s.
type MountsOptions struct {
	*common
	Pod    string
	Output string
}

func newMountsCmd(c *common) *cobra.Command {
	o := &MountsOptions{common: c}
	cmd := &cobra.Command{
		Use:   "mounts POD",
		Short: "Show which imports a pod asks for, what the webhook mounted, and what is wrong",
		Example: `  kubectl mcsa mounts multicluster-client-abcde
  kubectl mcsa mounts my-pod -n team-a -o json`,
		Args: cobra.ExactArgs(1),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			cl, err := c.clients()
			if err != nil || len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			l, err := cl.Kube.CoreV1().Pods(cl.Namespace).List(ctxFor(cmd), metav1.ListOptions{})
			if err != nil {
				return nil, cobra.ShellCompDirectiveError
			}
			var names []string
			for _, p := range l.Items {
				if _, ok := p.Annotations[v1alpha1.ImportNameKey]; ok {
					names = append(names, p.Name)
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Pod = args[0]
			return o.Run(cmd.Context(), time.Now())
		},
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "yaml or json")
	return cmd
}

// Run inspects and prints; problems make the command fail, so scripts can test it.
func (o *MountsOptions) Run(ctx context.Context, now time.Time) error {
	cl, err := o.clients()
	if err != nil {
		return err
	}
	r, err := diagnose.Mounts(ctx, cl, cl.Namespace, o.Pod, now)
	if err != nil {
		return err
	}
	if done, err := printStructured(o.common, o.Output, r); done {
		if err == nil && len(r.Problems) > 0 {
			err = errSilent
		}
		return err
	}
	r.Print(o.streams.Out, now, o.ui.Mark)
	if len(r.Problems) > 0 {
		return fmt.Errorf("%d problem(s) found", len(r.Problems))
	}
	return nil
}

// errSilent fails a command whose output already said why.
var errSilent = errors.New("")

// DoctorOptions are `kubectl mcsa doctor`'s.
type DoctorOptions struct {
	*common
	AllContexts bool
	Output      string
}

func newDoctorCmd(c *common) *cobra.Command {
	o := &DoctorOptions{common: c}
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check an installation, its remote clusters and imports; every ✗ names its remedy",
		Long: `Check, per context: the ServiceAccountImport API is installed and current; the controller and
webhook are ready; the webhook's CA matches its serving certificate; every remote cluster is
reachable with a non-expired credential and what the importer may do there; and which imports
are not ready, grouped by reason. Exits non-zero when any check fails.`,
		Example: `  kubectl mcsa doctor --context cluster1
  kubectl mcsa doctor --all-contexts -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.Run(cmd.Context(), time.Now()) },
	}
	cmd.Flags().BoolVar(&o.AllContexts, "all-contexts", false, "check every context of the kubeconfig")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "json or yaml")
	return cmd
}

// Run checks and prints.
func (o *DoctorOptions) Run(ctx context.Context, now time.Time) error {
	var getters []kube.Getter
	if o.AllContexts {
		names := contextNames(o.flags)
		if len(names) == 0 {
			return errors.New("the kubeconfig has no context")
		}
		sort.Strings(names)
		kubeconfig := ""
		if o.flags.KubeConfig != nil {
			kubeconfig = *o.flags.KubeConfig
		}
		for _, n := range names {
			getters = append(getters, kube.ForContext(kubeconfig, n))
		}
	} else {
		getters = []kube.Getter{o.flags}
	}
	var checks []diagnose.Check
	for _, g := range getters {
		cl, err := kube.New(g)
		if err != nil {
			checks = append(checks, diagnose.Check{Name: "connect", Message: err.Error()})
			continue
		}
		checks = append(checks, diagnose.Doctor(ctx, cl, now)...)
	}
	failed := 0
	for _, c := range checks {
		if !c.OK {
			failed++
		}
	}
	if done, err := printStructured(o.common, o.Output, checks); done {
		if err == nil && failed > 0 {
			err = errSilent
		}
		return err
	}
	diagnose.PrintChecks(o.streams.Out, checks, o.ui.Mark)
	if failed > 0 {
		return fmt.Errorf("%d check(s) failed", failed)
	}
	return nil
}
