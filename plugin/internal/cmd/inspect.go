package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/credential"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/imports"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/inspect"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// InspectOptions are `kubectl mcsa inspect`'s.
type InspectOptions struct {
	genericiooptions.IOStreams
	ui      *ui.UI
	connect clientsFunc
	now     func() time.Time

	Name, Secret, TokenFile string
	RemoteServer, RemoteCA  string
	CanI                    []string
	Output                  string
	Offline                 bool
}

// NewInspectOptions are inspect's defaults.
func NewInspectOptions(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *InspectOptions {
	return &InspectOptions{IOStreams: streams, ui: ui.New(streams.ErrOut), connect: clientsFor(configFlags), now: time.Now}
}

// NewCmdInspect is `kubectl mcsa inspect`.
func NewCmdInspect(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *cobra.Command {
	o := NewInspectOptions(streams, configFlags)
	cmd := &cobra.Command{
		Use:   "inspect [NAME | --secret NAME | --token-file PATH]",
		Short: "Show whose identity a credential carries in the remote cluster and what it may do there",
		Long: `Show an import's credential: the token's claims (decoded, not verified) with the time left, the
remote server and its CA, then live checks in the remote cluster made with the token itself: who
it authenticates as, and what it may do in the remote namespace. Works on an import, a secret,
or a token file (e.g. inside a pod: the folder of a mounted import also gives the server and CA).`,
		Example: `  kubectl mcsa inspect cluster2-default-pod-lister
  kubectl mcsa inspect cluster2-default-pod-lister --can-i list,pods
  kubectl mcsa inspect --token-file /var/run/secrets/admiralty.io/serviceaccountimports/cluster2-default-pod-lister/token`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeImportNames(configFlags, false),
		RunE:              runE(o),
	}
	f := cmd.Flags()
	f.StringVar(&o.Secret, "secret", o.Secret, "inspect this secret (with the keys of an import's secret) instead of an import")
	f.StringVar(&o.TokenFile, "token-file", o.TokenFile, "inspect a token file; server and CA come from the files beside it, or the flags below")
	f.StringVar(&o.RemoteServer, "remote-server", o.RemoteServer, "with --token-file: the remote API server's URL")
	f.StringVar(&o.RemoteCA, "remote-ca-file", o.RemoteCA, "with --token-file: the remote cluster's CA bundle")
	f.StringSliceVar(&o.CanI, "can-i", o.CanI, "also ask whether the token may VERB RESOURCE, e.g. --can-i list,pods or --can-i create,deployments.apps")
	f.StringVarP(&o.Output, "output", "o", o.Output, "yaml or json")
	f.BoolVar(&o.Offline, "offline", o.Offline, "only decode: no live check")
	return cmd
}

// Complete reads the import's name. It does not connect: a token file needs no cluster.
func (o *InspectOptions) Complete(_ *cobra.Command, args []string) error {
	if len(args) == 1 {
		o.Name = args[0]
	}
	return nil
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
func (o *InspectOptions) Run(ctx context.Context) error {
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
	if done, err := printStructured(o.Out, o.Output, r); done {
		return err
	}
	r.Print(o.Out, o.now(), o.ui.Mark)
	return nil
}

func (o *InspectOptions) load(ctx context.Context) (credential.Data, string, error) {
	if o.TokenFile != "" {
		return o.loadFiles()
	}
	cl, err := o.connect()
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
