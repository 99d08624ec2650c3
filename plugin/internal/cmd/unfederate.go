package cmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/federation"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// UnfederateOptions are `kubectl mcsa unfederate`'s.
type UnfederateOptions struct {
	genericiooptions.IOStreams
	ui          *ui.UI
	configFlags *genericclioptions.ConfigFlags
	connect     func(kubeconfig, context string) (*kube.Clients, error)

	clusterPair
	AuthenticationConfig string
	Discovery            bool
	DryRun               string
	Yes                  bool
	Wait                 bool
	Timeout              time.Duration

	engine federation.Unfederate
}

// NewUnfederateOptions are unfederate's defaults.
func NewUnfederateOptions(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *UnfederateOptions {
	return &UnfederateOptions{
		IOStreams:   streams,
		ui:          ui.New(streams.ErrOut),
		configFlags: configFlags,
		connect: func(kubeconfig, context string) (*kube.Clients, error) {
			return kube.New(kube.ForContext(kubeconfig, context))
		},
		DryRun: "none",
		// B reloads a file with a removed authenticator within about a minute.
		Timeout: 2 * time.Minute,
	}
}

// NewCmdUnfederate is `kubectl mcsa unfederate`.
func NewCmdUnfederate(streams genericiooptions.IOStreams, configFlags *genericclioptions.ConfigFlags) *cobra.Command {
	o := NewUnfederateOptions(streams, configFlags)
	cmd := &cobra.Command{
		Use:   "unfederate [TARGET_CONTEXT SOURCE_CONTEXT]",
		Short: "Undo federate: the source no longer trusts the target's tokens",
		Long: `Undo federate. In the source (B): its JWT authenticator for the target's (A's) issuer leaves
the file given with --authentication-config (written atomically), or is printed for you to
remove. In the target: its federated imports from the source (after a confirmation: pods
mounting them lose them) and its federated cluster credential; a credential from bootstrap
stays. A's discovery binding stays unless --discovery: other clusters may trust A too.
Running it again finds nothing to remove.

B reloads its file within about a minute and refuses A's tokens from then on; --wait checks
it (exit code 4 when B still accepts them after --timeout).`,
		Example: `  kubectl mcsa unfederate cluster1 cluster2 --authentication-config /etc/kubernetes/authentication-config.yaml --wait
  kubectl mcsa unfederate cluster1 cluster2 --dry-run=server
  kubectl mcsa unfederate cluster1 cluster2 --discovery --yes`,
		Args:              cobra.RangeArgs(0, 2),
		ValidArgsFunction: completeContextPair(configFlags),
		RunE:              runE(o),
	}
	o.addFlags(cmd, configFlags)
	f := cmd.Flags()
	f.StringVar(&o.AuthenticationConfig, "authentication-config", o.AuthenticationConfig, "the source's kube-apiserver --authentication-config file, to edit in place (default: print the entry to remove)")
	f.BoolVar(&o.Discovery, "discovery", o.Discovery, "also stop serving the target's issuer discovery to anonymous callers (every cluster trusting it stops accepting its tokens)")
	f.StringVar(&o.DryRun, "dry-run", o.DryRun, `"client" prints what would be removed; "server" also sends the target's deletions with dryRun; "none" removes`)
	f.Lookup("dry-run").NoOptDefVal = "client"
	f.BoolVarP(&o.Yes, "yes", "y", o.Yes, "delete the target's federated imports from the source without asking")
	f.BoolVar(&o.Wait, "wait", o.Wait, "wait until the source refuses the target's tokens")
	f.DurationVar(&o.Timeout, "timeout", o.Timeout, "how long --wait waits")
	must(cmd.MarkFlagFilename("authentication-config", "yaml", "yml", "json"))
	must(cmd.RegisterFlagCompletionFunc("dry-run", cobra.FixedCompletions([]string{"none", "client", "server"}, cobra.ShellCompDirectiveNoFileComp)))
	return cmd
}

// Complete connects to both clusters and names them as federate did.
func (o *UnfederateOptions) Complete(_ *cobra.Command, args []string) error {
	if err := o.complete("unfederate", args, o.configFlags, o.connect, o.ui); err != nil {
		return err
	}
	o.engine = federation.Unfederate{
		A: o.Target, AName: o.TargetName, B: o.Source, BName: o.SourceName,
		AuthenticationConfig: o.AuthenticationConfig, Discovery: o.Discovery, UI: o.ui,
	}
	return nil
}

// Validate checks the flags.
func (o *UnfederateOptions) Validate() error {
	dryRun, err := parseDryRun(o.DryRun)
	if err != nil {
		return err
	}
	o.engine.DryRun = dryRun
	if o.Wait {
		if o.Timeout <= 0 {
			return fmt.Errorf("--timeout %s: must be positive", o.Timeout)
		}
		o.engine.Wait = o.Timeout
	}
	return o.engine.Validate()
}

// Run asks before deleting imports, then removes in the source and the target.
func (o *UnfederateOptions) Run(ctx context.Context) error {
	e := &o.engine
	plan, err := e.Plan(ctx)
	if err != nil {
		return err
	}
	if len(plan.Imports) > 0 && !o.Yes && e.DryRun == federation.NoDryRun {
		names := make([]string, len(plan.Imports))
		for i, imp := range plan.Imports {
			names[i] = imp.Namespace + "/" + imp.Name
		}
		o.ui.Warn("%d federated imports in %s import from %s and will be deleted, and pods mounting them lose them: %s", len(plan.Imports), e.AName, e.BName, strings.Join(names, ", "))
		fmt.Fprint(o.ErrOut, "Delete them? [y/N] ")
		answer, _ := bufio.NewReader(o.In).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			return errors.New("nothing removed; pass --yes to delete without asking")
		}
	}
	results, err := e.Run(ctx, plan)
	if err := printWrites(o.Out, results, e.DryRun); err != nil {
		return err
	}
	if err != nil {
		return err
	}
	if plan.File == nil {
		o.untrustSteps(plan)
		if len(plan.Removed) > 0 {
			if err := printConfig(o.Out, federation.NewConfig(plan.Removed...)); err != nil {
				return err
			}
		}
	}
	if e.DryRun != federation.NoDryRun {
		return nil
	}
	if e.Wait > 0 {
		if _, err := e.Verify(ctx); err != nil {
			var nv *federation.NotVerifiedError
			if errors.As(err, &nv) {
				return checkFailed{nv.Error()}
			}
			return err
		}
	}
	if plan.File == nil {
		o.ui.Done("%s no longer has a federated credential for %s; %s trusts %s's tokens until its authenticator is removed as above", e.AName, e.BName, e.BName, e.AName)
		return nil
	}
	o.ui.Done("%s no longer gets federated access to %s; to federate them again: kubectl mcsa federate %s %s", e.AName, e.BName, o.TargetContext, o.SourceContext)
	return nil
}

// untrustSteps tells, on stderr, what to remove from B by hand.
func (o *UnfederateOptions) untrustSteps(p *federation.UnfederatePlan) {
	e := &o.engine
	if p.Issuer == "" {
		o.ui.Warn("remove from %s's authentication configuration the jwt entry whose claimMappings.extra maps %s to '%s'", e.BName, grant.ClusterExtraKey, e.AName)
		return
	}
	o.ui.Info(`Remove from %s's authentication configuration the jwt entry whose issuer.url is %s (on standard output):
  self-managed: from the file given to kube-apiserver --authentication-config on every control-plane node,
    or run this again with --authentication-config FILE where the file is reachable;
  EKS: disassociate the OIDC identity provider config of that issuer (aws eks disassociate-identity-provider-config);
  AKS: remove that JWT authenticator.`, e.BName, p.Issuer)
}
