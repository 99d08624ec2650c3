package cmd

import (
	"errors"
	"net"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
)

// Exit codes, so that scripts can tell a mistake in the command line from a cluster they
// cannot reach from a check that ran and found problems (doctor, mounts).
const (
	ExitOK          = 0
	ExitError       = 1 // anything else: refused, not found, conflicting…
	ExitUsage       = 2 // unknown command or flag, wrong arguments
	ExitConnection  = 3 // no kubeconfig or context, the API server unreachable, credentials refused (401)
	ExitCheckFailed = 4 // doctor or mounts ran and found problems; federate's (unfederate's) verification timed out
)

// exitCodesHelp is the root command's documentation of the exit codes.
const exitCodesHelp = `Exit codes: 0 success; 1 error; 2 usage (unknown command or flag, wrong arguments);
3 connection (no kubeconfig or context, API server unreachable, credentials refused);
4 a check found problems (doctor, mounts; federate and unfederate --wait when the
other cluster does not accept, or refuse, the tokens in time).`

// usageError is a mistake in the command line.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// checkFailed is the result of a check that ran and found problems; silent when the output
// already said so.
type checkFailed struct{ msg string }

func (e checkFailed) Error() string { return e.msg }

// markUsageErrors makes the flag and argument errors of every command usage errors.
func markUsageErrors(c *cobra.Command) {
	c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	if args := c.Args; args != nil {
		c.Args = func(cmd *cobra.Command, a []string) error {
			if err := args(cmd, a); err != nil {
				return usageError{err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		markUsageErrors(sub)
	}
}

// exitCode classifies err for Execute.
func exitCode(err error) int {
	var usage usageError
	var check checkFailed
	var urlErr *url.Error
	var netErr net.Error
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &usage), strings.HasPrefix(err.Error(), "unknown command "):
		return ExitUsage
	case errors.As(err, &check):
		return ExitCheckFailed
	case errors.As(err, &urlErr), errors.As(err, &netErr), apierrors.IsUnauthorized(err),
		errors.Is(err, kube.ErrNoKubeconfig), errors.Is(err, kube.ErrKubeconfig), clientcmd.IsContextNotFound(err), clientcmd.IsConfigurationInvalid(err):
		return ExitConnection
	}
	return ExitError
}
