package manifests_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
)

const (
	observabilityDoc = "../docs/observability.md"
	inCluster        = "../incluster"
)

// The generated sections of docs/observability.md, each between its markers.
var (
	metricsSection = section{"METRICS", "`make docs` rewrites this table from the code's metrics"}
	eventsSection  = section{"EVENTS", "`make docs` rewrites this table from the code's events; only the meaning column is written by hand"}
	alertsSection  = section{"ALERTS", "`make docs` rewrites this table from manifests/monitoring/prometheusrule.yaml"}
)

// dynamicReasons are the event reasons of call sites whose reason is a variable, not a constant:
// the test cannot read them off the call, so this says what the variable may hold. A new such
// call site fails the test until it is added here.
var dynamicReasons = map[string]func(consts map[string]string) []string{
	// report emits a Warning when the Ready condition turns False, with its reason.
	"internal/importer: out.reason": func(c map[string]string) []string {
		return withPrefix(c, "v1alpha1.Reason", "v1alpha1.ReasonTokenIssued", "v1alpha1.ReasonFederated")
	},
	// The rotator's plan names its changes with the package's reasons; injection has its own call.
	"internal/servingcert: c.reason": func(c map[string]string) []string {
		return withPrefix(c, "servingcert.Reason", "servingcert.ReasonCABundleInjected")
	},
}

// TestObservabilityDoc: docs/observability.md lists exactly the metrics the controller's code
// registers (name, type, labels, help), the event reasons it emits (each with a meaning written
// by hand), and the shipped alerts; `make docs` regenerates the tables, keeping the meanings.
func TestObservabilityDoc(t *testing.T) {
	code := parseInCluster(t)
	doc, err := os.ReadFile(observabilityDoc)
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	meanings := eventMeanings(eventsSection.body(t, text))
	events := code.events(t)
	for _, e := range events {
		if meanings[e.reason] == "" {
			t.Errorf("event reason %s has no meaning in %s: write one in its row of the events table (run `make docs` to add the row)", e.reason, observabilityDoc)
		}
	}
	want := metricsSection.replace(t, text, metricsTable(code.metrics(t)))
	want = eventsSection.replace(t, want, eventsTable(events, meanings))
	want = alertsSection.replace(t, want, alertsTable(t))
	if *update {
		if err := os.WriteFile(observabilityDoc, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if text != want {
		t.Errorf("%s differs from the code's metrics, events or the shipped alerts: run `make docs` and review the change", observabilityDoc)
	}
}

// TestMonitoringComponent renders the base with the monitoring component, as a user's
// kustomization would, and checks that the ServiceMonitor selects the metrics Service by its
// labels and port, and that the alerts and the dashboard query only metrics the code defines.
func TestMonitoringComponent(t *testing.T) {
	res := renderWith(t, "../default", "../monitoring")
	var svcLabels map[string]string
	var svcPorts []string
	var selector map[string]string
	var port string
	for _, r := range res.Resources() {
		m, err := r.Map()
		if err != nil {
			t.Fatal(err)
		}
		switch r.GetKind() {
		case "Service":
			if r.GetLabels()["app.kubernetes.io/component"] != "metrics" {
				continue
			}
			svcLabels = r.GetLabels()
			for _, p := range dig[[]any](m, "spec", "ports") {
				svcPorts = append(svcPorts, p.(map[string]any)["name"].(string))
			}
		case "ServiceMonitor":
			for k, v := range dig[map[string]any](m, "spec", "selector", "matchLabels") {
				if selector == nil {
					selector = map[string]string{}
				}
				selector[k] = v.(string)
			}
			port, _ = dig[[]any](m, "spec", "endpoints")[0].(map[string]any)["port"].(string)
		}
	}
	if svcLabels == nil || selector == nil {
		t.Fatalf("rendered no metrics Service (%v) or no ServiceMonitor (%v)", svcLabels, selector)
	}
	for k, v := range selector {
		if svcLabels[k] != v {
			t.Errorf("the ServiceMonitor selects %s=%s; the metrics Service has labels %v", k, v, svcLabels)
		}
	}
	if !slices.Contains(svcPorts, port) {
		t.Errorf("the ServiceMonitor scrapes port %q; the metrics Service has %v", port, svcPorts)
	}

	defined := map[string]bool{}
	for _, m := range parseInCluster(t).metrics(t) {
		defined[m.name] = true
		if m.kind == "histogram" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				defined[m.name+s] = true
			}
		}
	}
	for _, file := range []string{"monitoring/prometheusrule.yaml", "monitoring/grafana-dashboard.json"} {
		b, err := manifests.FS.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range regexp.MustCompile(`\bmcsa_[a-z_]+`).FindAllString(string(b), -1) {
			if !defined[name] {
				t.Errorf("%s queries %s, which the code does not define", file, name)
			}
		}
	}
}

type metric struct{ name, kind, help, source string }

type metricWithLabels struct {
	metric
	labels []string
}

type event struct{ reason, kind, source string }

// inClusterCode is the parsed non-test Go files of incluster/, by package folder.
type inClusterCode struct {
	fset  *token.FileSet
	files map[string][]*ast.File // folder relative to incluster/ → files
	// consts are every string constant, as package.Name → value.
	consts map[string]string
}

func parseInCluster(t *testing.T) *inClusterCode {
	t.Helper()
	c := &inClusterCode{fset: token.NewFileSet(), files: map[string][]*ast.File{}, consts: map[string]string{}}
	err := filepath.WalkDir(inCluster, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(c.fset, p, nil, 0)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(inCluster, filepath.Dir(p))
		if err != nil {
			return err
		}
		c.files[filepath.ToSlash(rel)] = append(c.files[filepath.ToSlash(rel)], f)
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i < len(vs.Values) {
						if s, ok := stringValue(vs.Values[i]); ok {
							c.consts[f.Name.Name+"."+n.Name] = s
						}
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// calls visits every call in the code, with its package folder and package name.
func (c *inClusterCode) calls(visit func(dir, pkg string, call *ast.CallExpr)) {
	for _, dir := range slices.Sorted(maps.Keys(c.files)) {
		for _, f := range c.files[dir] {
			ast.Inspect(f, func(n ast.Node) bool {
				if call, ok := n.(*ast.CallExpr); ok {
					visit(dir, f.Name.Name, call)
				}
				return true
			})
		}
	}
}

var metricKinds = map[string]string{
	"NewCounter": "counter", "NewCounterVec": "counter", "NewGauge": "gauge", "NewGaugeVec": "gauge",
	"NewHistogram": "histogram", "NewHistogramVec": "histogram", "NewSummary": "summary", "NewSummaryVec": "summary",
}

// metrics are the prometheus.New* calls, read off their literal options and label names.
func (c *inClusterCode) metrics(t *testing.T) []metricWithLabels {
	t.Helper()
	var out []metricWithLabels
	c.calls(func(dir, _ string, call *ast.CallExpr) {
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || metricKinds[sel.Sel.Name] == "" {
			return
		}
		if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "prometheus" {
			return
		}
		where := c.fset.Position(call.Pos()).String()
		opts, ok := call.Args[0].(*ast.CompositeLit)
		if !ok {
			t.Errorf("%s: the metric's options are no literal; this test reads names, help and labels off literals", where)
			return
		}
		m := metricWithLabels{metric: metric{kind: metricKinds[sel.Sel.Name], source: dir}}
		for _, el := range opts.Elts {
			kv := el.(*ast.KeyValueExpr)
			key := kv.Key.(*ast.Ident).Name
			if key == "Namespace" || key == "Subsystem" {
				t.Errorf("%s: %s is not read by this test: spell the metric's whole name in Name", where, key)
			}
			if key != "Name" && key != "Help" {
				continue
			}
			s, ok := stringValue(kv.Value)
			if !ok {
				t.Errorf("%s: %s is no string literal", where, key)
			}
			if key == "Name" {
				m.name = s
			} else {
				m.help = s
			}
		}
		if len(call.Args) > 1 {
			labels, ok := call.Args[1].(*ast.CompositeLit)
			if !ok {
				t.Errorf("%s: the metric's labels are no literal", where)
				return
			}
			for _, l := range labels.Elts {
				s, ok := stringValue(l)
				if !ok {
					t.Errorf("%s: a label name is no string literal", where)
				}
				m.labels = append(m.labels, s)
			}
		}
		out = append(out, m)
	})
	if len(out) == 0 {
		t.Fatalf("found no metric under %s", inCluster)
	}
	slices.SortFunc(out, func(a, b metricWithLabels) int { return strings.Compare(a.name, b.name) })
	return out
}

// events are the reasons of every Event/Eventf call of an events recorder (regarding, related,
// type, reason, action, note…), constants resolved, variables through dynamicReasons.
func (c *inClusterCode) events(t *testing.T) []event {
	t.Helper()
	seen := map[string]event{}
	c.calls(func(dir, pkg string, call *ast.CallExpr) {
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || (sel.Sel.Name != "Eventf" && sel.Sel.Name != "Event") {
			return
		}
		where := c.fset.Position(call.Pos()).String()
		if len(call.Args) < 5 {
			t.Errorf("%s: not the events API's Eventf(regarding, related, type, reason, action, note): this test reads that shape", where)
			return
		}
		kind, ok := c.resolve(pkg, call.Args[2])
		if !ok {
			t.Errorf("%s: the event's type is no constant", where)
			return
		}
		var reasons []string
		if r, ok := c.resolve(pkg, call.Args[3]); ok {
			reasons = []string{r}
		} else {
			key := dir + ": " + exprString(c.fset, call.Args[3])
			dyn, ok := dynamicReasons[key]
			if !ok {
				t.Errorf("%s: the event's reason is a variable: add %q to dynamicReasons with the reasons it may hold", where, key)
				return
			}
			reasons = dyn(c.consts)
		}
		for _, r := range reasons {
			if prev, dup := seen[r]; dup && (prev.kind != kind || prev.source != dir) {
				t.Errorf("%s: event reason %s is emitted as %s by %s and as %s by %s: one reason, one meaning", where, r, prev.kind, prev.source, kind, dir)
			}
			seen[r] = event{reason: r, kind: kind, source: dir}
		}
	})
	if len(seen) == 0 {
		t.Fatalf("found no event under %s", inCluster)
	}
	return slices.SortedFunc(maps.Values(seen), func(a, b event) int {
		return strings.Compare(a.kind+a.source+a.reason, b.kind+b.source+b.reason)
	})
}

// resolve is a string constant's value: a literal, a constant of the package or pkg.Name of
// another package of incluster/, or corev1's event types.
func (c *inClusterCode) resolve(pkg string, e ast.Expr) (string, bool) {
	if s, ok := stringValue(e); ok {
		return s, true
	}
	switch e := e.(type) {
	case *ast.Ident:
		s, ok := c.consts[pkg+"."+e.Name]
		return s, ok
	case *ast.SelectorExpr:
		x, ok := e.X.(*ast.Ident)
		if !ok {
			return "", false
		}
		if x.Name == "corev1" && strings.HasPrefix(e.Sel.Name, "EventType") {
			return strings.TrimPrefix(e.Sel.Name, "EventType"), true
		}
		s, ok := c.consts[x.Name+"."+e.Sel.Name]
		return s, ok
	}
	return "", false
}

// stringValue is a string literal's value, or that of a sum of them.
func stringValue(e ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(e.Value)
		return s, err == nil
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", false
		}
		l, ok1 := stringValue(e.X)
		r, ok2 := stringValue(e.Y)
		return l + r, ok1 && ok2
	}
	return "", false
}

// exprString spells a selector chain (out.reason), all that dynamicReasons keys need; other
// expressions by their position, which no key matches.
func exprString(fset *token.FileSet, e ast.Expr) string {
	switch e := e.(type) {
	case *ast.SelectorExpr:
		return exprString(fset, e.X) + "." + e.Sel.Name
	case *ast.Ident:
		return e.Name
	}
	return fset.Position(e.Pos()).String()
}

// withPrefix are the values of the constants whose qualified names start with prefix, but for
// those excluded.
func withPrefix(consts map[string]string, prefix string, exclude ...string) []string {
	var out []string
	for name, v := range consts {
		if strings.HasPrefix(name, prefix) && !slices.Contains(exclude, name) {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

func metricsTable(ms []metricWithLabels) string {
	var b strings.Builder
	b.WriteString("| metric | type | labels | meaning | from |\n| --- | --- | --- | --- | --- |\n")
	for _, m := range ms {
		labels := "—"
		if len(m.labels) > 0 {
			labels = "`" + strings.Join(m.labels, "`, `") + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | `incluster/%s` |\n", m.name, m.kind, labels, m.help, m.source)
	}
	return b.String()
}

func eventsTable(es []event, meanings map[string]string) string {
	var b strings.Builder
	b.WriteString("| reason | type | from | meaning |\n| --- | --- | --- | --- |\n")
	for _, e := range es {
		fmt.Fprintf(&b, "| `%s` | %s | `incluster/%s` | %s |\n", e.reason, e.kind, e.source, meanings[e.reason])
	}
	return b.String()
}

// eventMeanings reads the hand-written meaning column of the events table, by reason.
func eventMeanings(table string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(line, " | ")
		if len(cells) != 4 || !strings.HasPrefix(cells[0], "| `") {
			continue
		}
		out[strings.Trim(cells[0], "| `")] = strings.TrimSuffix(strings.TrimSpace(cells[3]), " |")
	}
	return out
}

func alertsTable(t *testing.T) string {
	t.Helper()
	b, err := manifests.FS.ReadFile("monitoring/prometheusrule.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rule struct {
		Spec struct {
			Groups []struct {
				Rules []struct {
					Alert, Expr, For string
					Labels           map[string]string
					Annotations      map[string]string
				}
			}
		}
	}
	if err := yaml.Unmarshal(b, &rule); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	out.WriteString("| alert | severity | fires when | for |\n| --- | --- | --- | --- |\n")
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			hold := r.For
			if hold == "" {
				hold = "—"
			}
			fmt.Fprintf(&out, "| `%s` | %s | `%s` | %s |\n", r.Alert, r.Labels["severity"], strings.ReplaceAll(r.Expr, "|", `\|`), hold)
		}
	}
	return out.String()
}

// section is a generated part of a document, between a BEGIN and an END marker.
type section struct{ name, note string }

func (s section) begin() string { return "<!-- BEGIN GENERATED " + s.name + ": " + s.note + " -->\n" }
func (s section) end() string   { return "<!-- END GENERATED " + s.name + " -->" }

func (s section) cut(t *testing.T, doc string) (before, body, after string) {
	t.Helper()
	before, rest, ok1 := strings.Cut(doc, s.begin())
	body, after, ok2 := strings.Cut(rest, s.end())
	if !ok1 || !ok2 {
		t.Fatalf("%s has no generated section between %q and %q", observabilityDoc, s.begin(), s.end())
	}
	return before, body, after
}

func (s section) body(t *testing.T, doc string) string {
	_, body, _ := s.cut(t, doc)
	return body
}

func (s section) replace(t *testing.T, doc, body string) string {
	before, _, after := s.cut(t, doc)
	return before + s.begin() + body + s.end() + after
}

// dig walks nested maps; the zero T when a key is missing.
func dig[T any](m map[string]any, keys ...string) T {
	var cur any = m
	for _, k := range keys {
		mm, _ := cur.(map[string]any)
		cur = mm[k]
	}
	v, _ := cur.(T)
	return v
}

// renderWith renders the base at dir with the components, as a user's kustomization that
// lists them would.
func renderWith(t *testing.T, dir string, components ...string) resmap.ResMap {
	t.Helper()
	mem := manifestsFS(t)
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [\"" + dir + "\"]\ncomponents: [\"" + strings.Join(components, "\", \"") + "\"]\n"
	if err := mem.WriteFile("/user/kustomization.yaml", []byte(k)); err != nil {
		t.Fatal(err)
	}
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(mem, "/user")
	if err != nil {
		t.Fatal(err)
	}
	return res
}
