package cmd

import (
	"encoding/json"
	"fmt"
	"io"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
)

// printResults prints what a write did to each object, in kubectl's words
// ("deployment.apps/x created"), with cli-runtime's name printer as `kubectl apply` does; a
// server dry run marks every line as kubectl does.
func printResults(w io.Writer, results []kube.Result, serverDryRun bool) error {
	for _, r := range results {
		flags := genericclioptions.NewPrintFlags(string(r.Action)).WithTypeSetter(scheme)
		if serverDryRun {
			if err := flags.Complete("%s (server dry run)"); err != nil {
				return err
			}
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

// printStructured prints a report of inspect, mounts or doctor as YAML or JSON for -o, and
// reports false for human output. The reports are not Kubernetes objects (no apiVersion or
// kind), which cli-runtime's printers require, so they are marshalled here.
func printStructured(w io.Writer, output string, v any) (bool, error) {
	switch output {
	case "":
		return false, nil
	case "json":
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return true, err
		}
		_, err = fmt.Fprintln(w, string(b))
		return true, err
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return true, err
		}
		_, err = w.Write(b)
		return true, err
	}
	return true, fmt.Errorf("--output must be yaml or json, not %q", output)
}
