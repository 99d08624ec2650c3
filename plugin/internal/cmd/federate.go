package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/federation"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// FederateOptions are `kubectl mcsa federate`'s.
type FederateOptions struct {
	genericiooptions.IOStreams
	ui          *ui.UI
	configFlags *genericclioptions.ConfigFlags
	// connect builds the clients of a context of a kubeconfig ("" for the default rules).
	connect func(kubeconfig, context string) (*kube.Clients, error)

	clusterPair
	SourceServer, IssuerServer string
	AuthenticationConfig       string
	DryRun                     string
	Output                     string
	Wait                       bool
	Timeout                    time.Duration

	engine federation.Federate
}

// NewFederateOptions are federate's defaults.
func NewFederateOptions(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *FederateOptions {
	return &FederateOptions{
		IOStreams:   streams,
		ui:          ui.New(streams.ErrOut),
		configFlags: configFlags,
		connect: func(kubeconfig, context string) (*kube.Clients, error) {
			return kube.New(kube.ForContext(kubeconfig, context))
		},
		DryRun: "none",
		Wait:   true,
		// B reloads its file about 10 s after a change, after a health check of the new
		// authenticator; two minutes ride out a slow first fetch of A's keys.
		Timeout: 2 * time.Minute,
	}
}

// NewCmdFederate is `kubectl mcsa federate`.
func NewCmdFederate(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *cobra.Command {
	o := NewFederateOptions(streams, configFlags)
	cmd := &cobra.Command{
		Use:   "federate [TARGET_CONTEXT SOURCE_CONTEXT]",
		Short: "Let a target cluster's pods call a source cluster with their own tokens (secretless)",
		Long: `Let the target cluster (A) import from the source cluster (B) without copying any token: B
trusts A's service-account issuer, and A's pods present their own short-lived tokens (audience
` + v1alpha1.FederatedAudiencePrefix + `B) to B, where they act as the service accounts B grants
with ` + "`kubectl mcsa allow --federated`" + `. Same order and names as bootstrap: target first.

1. Reads A's issuer (refusing a default every cluster shares, such as
   https://kubernetes.default.svc.cluster.local: give A its own first) and A's key IDs.
2. In A, lets anonymous callers read A's issuer discovery and keys, and nothing else
   (ClusterRoleBinding ` + grant.DiscoveryBindingName + `), so that B can fetch them.
3. In B, a JWT authenticator for A's issuer, naming A's key IDs: with --authentication-config,
   in the file given to B's kube-apiserver --authentication-config (reachable from here: a
   self-managed control plane), written atomically and only after checking that B can fetch
   every issuer of the file, since one unreachable issuer blocks every reload of it. Without
   it, the entry is printed, with the steps for managed platforms.
4. Waits until B has loaded its file (when B's metrics tell) and accepts a token of A's
   importer (--wait, up to --timeout; B reloads its file in about 10 s).
5. In A, the federated cluster credential: the import named after B (mode Federated) and a
   ConfigMap with B's server and CA, unless A already has bootstrap's credential for B.

Running it again changes nothing that is in place. To rotate A's signing key, publish the
new public key beside the old one in A, run this again, and only then sign with the new key:
B's entry names A's key IDs, so it changes, and B fetches A's keys anew (it does not by itself
on an unknown key ID). A's API URL as B reaches it defaults to A's kubeconfig's, and B's as A's
pods reach it to B's: loopback URLs are refused unless --issuer-server and --source-server give
them. Exits with 4 when B does not load its file or accept A's tokens in time: run it again to
wait longer. With -o yaml or json, everything written (or, with --dry-run, that would be) is
printed at the end as one List, B's configuration included.`,
		Example: `  kubectl mcsa federate cluster1 cluster2 --authentication-config /etc/kubernetes/authentication-config.yaml
  kubectl mcsa federate cluster1 cluster2 --issuer-server https://cluster1.internal:6443 --source-server https://cluster2.internal:6443
  kubectl mcsa federate cluster1 cluster2 --wait=false   # prints B's jwt entry, for a managed platform
  kubectl mcsa federate cluster1 cluster2 --dry-run=client -o yaml`,
		Args:              cobra.RangeArgs(0, 2),
		ValidArgsFunction: completeContextPair(configFlags),
		RunE:              runE(o),
	}
	o.addFlags(cmd, configFlags)
	f := cmd.Flags()
	f.StringVar(&o.SourceServer, "source-server", o.SourceServer, "the source's API URL as the target's pods reach it (default: the kubeconfig's, unless it is loopback)")
	f.StringVar(&o.IssuerServer, "issuer-server", o.IssuerServer, "the target's API URL as the source's kube-apiserver reaches it, to fetch the target's keys (default: the kubeconfig's, unless it is loopback)")
	f.StringVar(&o.AuthenticationConfig, "authentication-config", o.AuthenticationConfig, "the source's kube-apiserver --authentication-config file, to edit in place (default: print the entry to add)")
	f.StringVar(&o.DryRun, "dry-run", o.DryRun, `"client" prints what would be written; "server" also sends the target's writes with dryRun; "none" writes`)
	f.Lookup("dry-run").NoOptDefVal = "client"
	f.StringVarP(&o.Output, "output", "o", o.Output, "yaml or json: print the objects and the authentication configuration written (or that would be)")
	f.BoolVar(&o.Wait, "wait", o.Wait, "wait until the source accepts the target's tokens before writing the credential")
	f.DurationVar(&o.Timeout, "timeout", o.Timeout, "how long --wait waits")
	must(cmd.MarkFlagFilename("authentication-config", "yaml", "yml", "json"))
	for _, name := range []string{"source-server", "issuer-server"} {
		must(cmd.RegisterFlagCompletionFunc(name, noCompletion))
	}
	must(cmd.RegisterFlagCompletionFunc("dry-run", cobra.FixedCompletions([]string{"none", "client", "server"}, cobra.ShellCompDirectiveNoFileComp)))
	must(cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"yaml", "json"}, cobra.ShellCompDirectiveNoFileComp)))
	return cmd
}

// Complete resolves contexts, kubeconfigs and cluster names, and connects to both clusters.
func (o *FederateOptions) Complete(_ *cobra.Command, args []string) error {
	if err := o.complete("federate", args, o.configFlags, o.connect, o.ui); err != nil {
		return err
	}
	o.engine = federation.Federate{
		A: o.Target, AName: o.TargetName, B: o.Source, BName: o.SourceName,
		IssuerServer: o.IssuerServer, SourceServer: o.SourceServer,
		AuthenticationConfig: o.AuthenticationConfig, UI: o.ui,
	}
	return nil
}

// Validate checks the flags and names before anything is read from the clusters.
func (o *FederateOptions) Validate() error {
	dryRun, err := parseDryRun(o.DryRun)
	if err != nil {
		return err
	}
	o.engine.DryRun = dryRun
	if o.Output != "" && o.Output != "yaml" && o.Output != "json" {
		return fmt.Errorf("--output must be yaml or json, not %q", o.Output)
	}
	if o.Wait {
		if o.Timeout <= 0 {
			return fmt.Errorf("--timeout %s: must be positive (or --wait=false)", o.Timeout)
		}
		o.engine.Wait = o.Timeout
	}
	if o.Output != "" && o.Wait && o.AuthenticationConfig == "" && dryRun == federation.NoDryRun {
		return fmt.Errorf("-o %s prints everything at the end, once the source accepts the target's tokens, but the source needs the printed entry first: add --wait=false (or --authentication-config FILE), or drop -o", o.Output)
	}
	return o.engine.Validate()
}

func parseDryRun(s string) (federation.DryRun, error) {
	switch s {
	case "none":
		return federation.NoDryRun, nil
	case "client":
		return federation.ClientDryRun, nil
	case "server":
		return federation.ServerDryRun, nil
	}
	return "", fmt.Errorf(`--dry-run must be "none", "client" or "server", not %q`, s)
}

// Run plans, trusts, verifies and writes the credential, printing as it goes (or everything at
// the end for -o).
func (o *FederateOptions) Run(ctx context.Context) error {
	e := &o.engine
	human := o.Output == ""
	plan, err := e.Plan(ctx)
	if err != nil {
		return err
	}
	trusted, err := e.Trust(ctx, plan)
	if human {
		if err := printWrites(o.Out, trusted, e.DryRun); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	if plan.File == nil && human {
		if err := printConfig(o.Out, plan.Config); err != nil {
			return err
		}
		o.managedSteps(plan)
	}
	if e.DryRun == federation.NoDryRun && e.Wait > 0 {
		if _, err := e.Verify(ctx, plan); err != nil {
			var nv *federation.NotVerifiedError
			if errors.As(err, &nv) {
				return checkFailed{nv.Error()}
			}
			return err
		}
	}
	creds, err := e.Credential(ctx, plan)
	if human {
		if err := printWrites(o.Out, creds, e.DryRun); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	if !human {
		_, err := printStructured(o.Out, o.Output, objectList(append(trusted, creds...), plan.Config))
		return err
	}
	if e.DryRun != federation.NoDryRun {
		return nil
	}
	if e.Wait == 0 {
		o.ui.Done("%s trusts %s's issuer once its kube-apiserver has the authenticator; not verified (--wait=false)", e.BName, e.AName)
	} else {
		o.ui.Done("%s's pods can call %s with their own tokens", e.AName, e.BName)
	}
	o.ui.Info(`Next: in %s, let namespaces of %s act as a service account there:
  %s`, e.BName, e.AName, grant.AllowFederatedCommand(e.AName, e.B.Context, "NAMESPACE", "SERVICEACCOUNT", "NAMESPACE_OF_"+e.AName))
	return nil
}

// managedSteps tells, on stderr, how to give B the authenticator printed on stdout.
func (o *FederateOptions) managedSteps(p *federation.Plan) {
	e := &o.engine
	o.ui.Info(`%s's kube-apiserver must trust %s's issuer with the jwt entry printed above:
  self-managed: add it to the jwt list of the file given to kube-apiserver --authentication-config on
    every control-plane node (it reloads the file in about 10 s), or run this again with
    --authentication-config FILE where the file is reachable: it is checked and written for you;
  EKS: associate an OIDC identity provider config (aws eks associate-identity-provider-config) with
    issuerUrl %s, clientId %s, usernameClaim sub, usernamePrefix %s: EKS fetches the issuer's
    discovery itself, publicly, with a publicly trusted certificate, and maps no groups from these
    tokens, so grants to namespaces of %s do not match there;
  AKS: add a JWT authenticator (AKS structured authentication) with this entry.`,
		e.BName, e.AName, p.Issuer.URL, v1alpha1.FederatedAudience(e.BName), e.AName+":", e.AName)
}

// printConfig prints an authentication configuration as YAML, as a document of its own.
func printConfig(w io.Writer, cfg *apiserverv1.AuthenticationConfiguration) error {
	b, err := federation.MarshalConfig(cfg)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "---\n%s", b)
	return err
}

// objectList is what -o prints: the objects written in the target and the source's
// authentication configuration, as a kubectl List.
func objectList(results []kube.Result, cfg *apiserverv1.AuthenticationConfiguration) map[string]any {
	items := []any{}
	for _, r := range results {
		if r.Object != nil {
			items = append(items, r.Object.Object)
		}
	}
	if cfg != nil {
		if m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(cfg); err == nil {
			items = append(items, m)
		}
	}
	return map[string]any{"apiVersion": "v1", "kind": "List", "items": items}
}

// printWrites prints results as printResults does, marking dry runs as kubectl does.
func printWrites(w io.Writer, results []kube.Result, dryRun federation.DryRun) error {
	if dryRun != federation.ClientDryRun {
		return printResults(w, results, dryRun == federation.ServerDryRun)
	}
	for _, r := range results {
		flags := genericclioptions.NewPrintFlags(string(r.Action)).WithTypeSetter(scheme)
		if err := flags.Complete("%s (dry run)"); err != nil {
			return err
		}
		p, err := flags.ToPrinter()
		if err != nil {
			return err
		}
		if err := p.PrintObj(r.Object, w); err != nil {
			return err
		}
	}
	return nil
}
