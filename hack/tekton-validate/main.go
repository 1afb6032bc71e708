// tekton-validate checks Tekton objects with Tekton's own code, as its admission webhook does:
// strict decoding (unknown and duplicate fields are errors), SetDefaults, then Validate in a
// create context carrying Tekton's default config and feature flags. On top of that it checks
// what the webhook cannot see because it needs the referenced Task or Pipeline: result
// references, params and workspaces passed to a Task or Pipeline found among the given files.
//
// Usage: tekton-validate FILE_OR_FOLDER...
// Prints `<file>: <Kind>/<name>: <field path>: <message>` per problem and exits 1 if there is
// any; otherwise prints one summary line and exits 0. Other kinds (Secret, RBAC, ...) are skipped,
// and so are Tekton Triggers' own kinds (EventListener, TriggerBinding, ...: Triggers' webhook
// validates those), except that the Tekton objects a TriggerTemplate creates (its
// spec.resourcetemplates) are validated and cross-checked like any other, with each
// $(tt.params.<name>) replaced by a stand-in and reported when the template does not declare it.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/tektoncd/pipeline/pkg/apis/config"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"knative.dev/pkg/apis"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// object is one Tekton document: where it came from, its decoded v1 form and its raw JSON tree
// (the tree gives field paths for references found in strings).
type object struct {
	file, kind, name string
	prefix           string // for a TriggerTemplate's resource: "spec.resourcetemplates[<i>]."
	tree             map[string]any
	reported         map[string]bool // field paths with a problem already printed
	validated        map[string]bool // those Tekton's validation reported
	task             *v1.Task
	pipeline         *v1.Pipeline
	taskRun          *v1.TaskRun
	pipelineRun      *v1.PipelineRun
}

type checker struct {
	problems, warnings int
	objects            []*object // every decoded one, for the cross-object checks
	seen, files        int
}

func (c *checker) report(file, kind, name, path, msg string) {
	c.problems++
	msg = strings.Join(strings.Fields(msg), " ") // one line per problem
	fmt.Printf("%s: %s/%s: %s: %s\n", file, kind, name, path, msg)
}

// problem reports on an object and remembers the path, so a cross-object check does not repeat
// what Tekton's own validation already said about the same field.
func (c *checker) problem(o *object, path, msg string) {
	if o.reported == nil {
		o.reported = map[string]bool{}
	}
	o.reported[path] = true
	c.report(o.file, o.kind, o.name, o.at(path), msg)
}

// at is a field path as printed: inside a TriggerTemplate, under its resource's prefix.
func (o *object) at(path string) string {
	if o.prefix == "" {
		return path
	}
	if path == "-" {
		return strings.TrimSuffix(o.prefix, ".")
	}
	return o.prefix + path
}

// reportField prints each leaf of a knative FieldError once per path; warnings do not count.
func (c *checker) reportField(o *object, fe *apis.FieldError) {
	for _, e := range fe.WrappedErrors() {
		msg := e.Message
		if e.Details != "" {
			msg += " (" + strings.ReplaceAll(e.Details, "\n", " ") + ")"
		}
		paths := e.Paths
		if len(paths) == 0 {
			paths = []string{"-"}
		}
		for _, p := range paths {
			if e.Level == apis.WarningLevel {
				c.warnings++
				fmt.Fprintf(os.Stderr, "%s: %s/%s: %s: warning: %s\n", o.file, o.kind, o.name, o.at(p), msg)
				continue
			}
			c.problem(o, p, msg)
		}
	}
}

// webhookContext is what Tekton's webhook hands to SetDefaults and Validate on a create: the
// config store's defaults and feature flags (here the built-in ones) and apis.WithinCreate.
func webhookContext() context.Context {
	ctx := context.Background()
	ctx = config.ToContext(ctx, config.FromContextOrDefaults(ctx))
	return apis.WithinCreate(ctx)
}

// resource is what every Tekton kind implements: defaulting and validation as the webhook calls them.
type resource interface {
	SetDefaults(context.Context)
	Validate(context.Context) *apis.FieldError
}

func newResource(apiVersion, kind string) resource {
	switch apiVersion + "/" + kind {
	case "tekton.dev/v1/Task":
		return &v1.Task{}
	case "tekton.dev/v1/Pipeline":
		return &v1.Pipeline{}
	case "tekton.dev/v1/TaskRun":
		return &v1.TaskRun{}
	case "tekton.dev/v1/PipelineRun":
		return &v1.PipelineRun{}
	case "tekton.dev/v1beta1/Task":
		return &v1beta1.Task{}
	case "tekton.dev/v1beta1/Pipeline":
		return &v1beta1.Pipeline{}
	case "tekton.dev/v1beta1/TaskRun":
		return &v1beta1.TaskRun{}
	case "tekton.dev/v1beta1/PipelineRun":
		return &v1beta1.PipelineRun{}
	}
	return nil
}

var kinds = map[string]bool{"Task": true, "Pipeline": true, "TaskRun": true, "PipelineRun": true}

// load decodes and validates every Tekton document of one file.
func (c *checker) load(ctx context.Context, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		c.report(file, "-", "-", "-", err.Error())
		return
	}
	c.files++
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for doc := 1; ; doc++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			c.report(file, "-", "-", fmt.Sprintf("document %d", doc), err.Error())
			return
		}
		c.loadDocument(ctx, file, doc, raw)
	}
}

func (c *checker) loadDocument(ctx context.Context, file string, doc int, raw []byte) {
	where := fmt.Sprintf("document %d", doc)
	// YAMLToJSONStrict refuses duplicate keys, as the API server's strict field validation does.
	js, err := yaml.YAMLToJSONStrict(raw)
	if err != nil {
		kind, name := "-", "-"
		var meta struct {
			Kind     string
			Metadata struct{ Name, GenerateName string }
		}
		if yaml.Unmarshal(raw, &meta) == nil && meta.Kind != "" {
			kind, name = meta.Kind, meta.Metadata.Name+meta.Metadata.GenerateName
		}
		c.report(file, kind, name, where, err.Error())
		return
	}
	var tree map[string]any
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(js, &tree); err != nil || tree == nil {
		if err != nil {
			c.report(file, "-", "-", where, "not a YAML mapping: "+err.Error())
		}
		return // an empty document (comments only)
	}
	apiVersion, _ := tree["apiVersion"].(string)
	kind, _ := tree["kind"].(string)
	if apiVersion == "triggers.tekton.dev/v1beta1" && kind == "TriggerTemplate" {
		c.loadTriggerTemplate(ctx, file, where, tree)
		return
	}
	if !strings.HasPrefix(apiVersion, "tekton.dev/") || !kinds[kind] {
		return // Secrets, ServiceAccounts, RBAC, other Tekton and Triggers kinds: not ours
	}
	c.seen++
	o := &object{file: file, kind: kind, tree: tree, name: "(" + where + ")"}
	if md, ok := tree["metadata"].(map[string]any); ok {
		if n, _ := md["name"].(string); n != "" {
			o.name = n
		} else if g, _ := md["generateName"].(string); g != "" {
			o.name = g
		}
	}
	c.validate(ctx, o, apiVersion, kind, js)
}

// validate decodes one Tekton object strictly, defaults and validates it as the webhook does, and
// keeps its v1 form for the cross-object checks.
func (c *checker) validate(ctx context.Context, o *object, apiVersion, kind string, js []byte) {
	obj := newResource(apiVersion, kind)
	if obj == nil {
		c.problem(o, "apiVersion", fmt.Sprintf("unsupported %q (tekton.dev/v1 or v1beta1)", apiVersion))
		return
	}
	// Strict decoding, case-sensitive, with the path of each unknown or duplicate field (the
	// webhook's decoder rejects unknown fields too, but names no path).
	strict, err := sigsjson.UnmarshalStrict(js, obj)
	if err != nil {
		c.problem(o, decodePath(err), err.Error())
		return
	}
	for _, e := range strict {
		path := "-"
		if fe, ok := e.(sigsjson.FieldError); ok {
			path = fe.FieldPath()
		}
		c.problem(o, path, strings.TrimSuffix(e.Error(), " "+strconv.Quote(path))) // "unknown field"
	}
	// The webhook stops at an unknown field; going on shows the other problems in the same run.
	// The API server turns generateName into a name before validating admission runs.
	if m, ok := obj.(interface {
		GetName() string
		GetGenerateName() string
		SetName(string)
	}); ok && m.GetName() == "" && m.GetGenerateName() != "" {
		m.SetName(generatedName(m.GetGenerateName()))
	}
	obj.SetDefaults(ctx)
	c.reportField(o, obj.Validate(ctx))
	o.validated = maps.Clone(o.reported)
	if err := toV1(ctx, obj, o); err != nil {
		c.problem(o, "-", "conversion to tekton.dev/v1: "+err.Error())
		return
	}
	c.objects = append(c.objects, o)
}

// ttParam matches a TriggerTemplate's $(tt.params.<name>); $(uid) is Triggers' other placeholder.
var (
	ttParam = regexp.MustCompile(`\$\(tt\.params\.([^()\s]+)\)`)
	ttUID   = regexp.MustCompile(`\$\(uid\)`)
)

// loadTriggerTemplate validates the Tekton objects a TriggerTemplate creates, as the webhook will
// see them when the EventListener creates them: each $(tt.params.<name>) becomes the param's
// default, or its name (a valid value in names, labels and params alike). They are reported as
// fields of the TriggerTemplate and are not counted among the objects of the summary line.
func (c *checker) loadTriggerTemplate(ctx context.Context, file, where string, tree map[string]any) {
	host := &object{file: file, kind: "TriggerTemplate", name: "(" + where + ")"}
	if md, ok := tree["metadata"].(map[string]any); ok {
		if n, _ := md["name"].(string); n != "" {
			host.name = n
		}
	}
	spec, _ := tree["spec"].(map[string]any)
	standIn := map[string]string{}
	params, _ := spec["params"].([]any)
	for _, p := range params {
		if m, ok := p.(map[string]any); ok {
			name, _ := m["name"].(string)
			standIn[name] = name
			if d, ok := m["default"].(string); ok {
				standIn[name] = d
			}
		}
	}
	templates, _ := spec["resourcetemplates"].([]any)
	for i, rt := range templates {
		prefix := fmt.Sprintf("spec.resourcetemplates[%d]", i)
		raw, err := json.Marshal(rt)
		if err != nil {
			c.problem(host, prefix, err.Error())
			continue
		}
		text := ttUID.ReplaceAllString(string(raw), generatedName(""))
		text = ttParam.ReplaceAllStringFunc(text, func(ref string) string {
			name := ttParam.FindStringSubmatch(ref)[1]
			value, ok := standIn[name]
			if !ok {
				c.problem(host, prefix, fmt.Sprintf("%s is not declared in spec.params", ref))
				return name
			}
			quoted, _ := json.Marshal(value)
			return string(quoted[1 : len(quoted)-1])
		})
		var inner map[string]any
		if err := json.Unmarshal([]byte(text), &inner); err != nil || inner == nil {
			continue // not an object; Triggers' webhook refuses it
		}
		apiVersion, _ := inner["apiVersion"].(string)
		kind, _ := inner["kind"].(string)
		if !strings.HasPrefix(apiVersion, "tekton.dev/") || !kinds[kind] {
			continue
		}
		o := &object{file: file, kind: host.kind, name: host.name, tree: inner, prefix: prefix + "."}
		c.validate(ctx, o, apiVersion, kind, []byte(text))
	}
}

// generatedName is what the API server's name generator makes of a prefix (5 random characters).
func generatedName(prefix string) string {
	if len(prefix) > 58 {
		prefix = prefix[:58]
	}
	return prefix + "x7k2q"
}

// decodePath digs the field out of a type error: "... into Go struct field Task.spec.steps of type ...".
func decodePath(err error) string {
	_, after, ok := strings.Cut(err.Error(), "Go struct field ")
	if !ok {
		return "-"
	}
	field, _, _ := strings.Cut(after, " ")
	if _, rest, ok := strings.Cut(field, "."); ok {
		return rest
	}
	return field
}

// toV1 keeps the v1 form for the cross-object checks (v1beta1 is converted as the API server would).
func toV1(ctx context.Context, obj resource, o *object) error {
	switch t := obj.(type) {
	case *v1.Task:
		o.task = t
	case *v1.Pipeline:
		o.pipeline = t
	case *v1.TaskRun:
		o.taskRun = t
	case *v1.PipelineRun:
		o.pipelineRun = t
	case *v1beta1.Task:
		o.task = &v1.Task{}
		return t.ConvertTo(ctx, o.task)
	case *v1beta1.Pipeline:
		o.pipeline = &v1.Pipeline{}
		return t.ConvertTo(ctx, o.pipeline)
	case *v1beta1.TaskRun:
		o.taskRun = &v1.TaskRun{}
		return t.ConvertTo(ctx, o.taskRun)
	case *v1beta1.PipelineRun:
		o.pipelineRun = &v1.PipelineRun{}
		return t.ConvertTo(ctx, o.pipelineRun)
	}
	return nil
}

// --- checks across objects: what the controller would find only at run time ---

// find returns the object of a kind and name, preferring one from the same file.
func (c *checker) find(kind, name, file string) *object {
	var found *object
	for _, o := range c.objects {
		if o.kind == kind && o.name == name {
			if o.file == file {
				return o
			}
			if found == nil {
				found = o
			}
		}
	}
	return found
}

// taskFor resolves a taskRef by name among the given files (resolver refs and other kinds: unknown).
func (c *checker) taskFor(ref *v1.TaskRef, file string) (*v1.TaskSpec, string) {
	if ref == nil || ref.Resolver != "" || ref.Name == "" || (ref.Kind != "" && ref.Kind != v1.NamespacedTaskKind) {
		return nil, ""
	}
	if o := c.find("Task", ref.Name, file); o != nil {
		return &o.task.Spec, "Task " + ref.Name
	}
	return nil, ""
}

func (c *checker) crossCheck() {
	for _, o := range c.objects {
		switch {
		case o.pipeline != nil:
			c.checkPipeline(o, &o.pipeline.Spec, "spec", subtree(o.tree, "spec"))
		case o.pipelineRun != nil:
			c.checkPipelineRun(o)
		case o.taskRun != nil:
			c.checkTaskRun(o)
		}
	}
}

// checkArgs compares params and workspaces passed to a Task or Pipeline with what it declares.
// A missing required param or workspace fails the run; Tekton silently drops an undeclared param
// (so a misspelt one quietly falls back to the default), which is why that is reported too.
func (c *checker) checkArgs(o *object, path, target string, declared []v1.ParamSpec, params v1.Params,
	extra []string, wsDeclared map[string]bool, wsBound []string) {
	known := map[string]bool{}
	for _, p := range declared {
		known[p.Name] = true
	}
	given := map[string]bool{}
	for _, n := range extra {
		given[n] = true
	}
	for j, p := range params {
		given[p.Name] = true
		if !known[p.Name] {
			c.problem(o, fmt.Sprintf("%s.params[%d].name", path, j),
				fmt.Sprintf("param %q is not declared by %s", p.Name, target))
		}
	}
	for _, p := range declared {
		if p.Default == nil && !given[p.Name] {
			c.problem(o, path+".params",
				fmt.Sprintf("%s requires param %q, which is not passed", target, p.Name))
		}
	}
	bound := map[string]bool{}
	for j, w := range wsBound {
		bound[w] = true
		if _, ok := wsDeclared[w]; !ok {
			c.problem(o, fmt.Sprintf("%s.workspaces[%d].name", path, j),
				fmt.Sprintf("workspace %q is not declared by %s", w, target))
		}
	}
	for _, w := range sortedKeys(wsDeclared) {
		if !wsDeclared[w] && !bound[w] { // value: optional
			c.problem(o, path+".workspaces",
				fmt.Sprintf("%s requires workspace %q, which is not bound", target, w))
		}
	}
}

func taskWorkspaces(ts *v1.TaskSpec) map[string]bool {
	m := map[string]bool{}
	for _, w := range ts.Workspaces {
		m[w.Name] = w.Optional
	}
	return m
}

// resultRef matches $(tasks.<t>.results.<r>...) and $(finally.<t>.results.<r>), also ["<r>"].
var resultRef = regexp.MustCompile(`\$\(\s*(tasks|finally)\.([^.\s)]+)\.results(?:\.([A-Za-z0-9_-]+)|\[["']([^"']+)["']\])`)

func (c *checker) checkPipeline(o *object, ps *v1.PipelineSpec, path string, tree any) {
	results := map[string]map[string]map[string]bool{"tasks": {}, "finally": {}} // nil: results unknown
	for _, section := range []string{"tasks", "finally"} {
		list := ps.Tasks
		if section == "finally" {
			list = ps.Finally
		}
		for i := range list {
			pt := &list[i]
			at := fmt.Sprintf("%s.%s[%d]", path, section, i)
			var ts *v1.TaskSpec
			target := ""
			if pt.TaskSpec != nil {
				ts, target = &pt.TaskSpec.TaskSpec, "the embedded taskSpec"
			} else {
				ts, target = c.taskFor(pt.TaskRef, o.file)
			}
			results[section][pt.Name] = nil
			if ts == nil {
				continue
			}
			names := map[string]bool{}
			for _, r := range ts.Results {
				names[r.Name] = true
			}
			results[section][pt.Name] = names
			var extra, bound []string
			if pt.Matrix != nil {
				for _, p := range pt.Matrix.Params {
					extra = append(extra, p.Name)
				}
				for _, inc := range pt.Matrix.Include {
					for _, p := range inc.Params {
						extra = append(extra, p.Name)
					}
				}
			}
			for _, w := range pt.Workspaces {
				bound = append(bound, w.Name)
			}
			c.checkArgs(o, at, target, ts.Params, pt.Params, extra, taskWorkspaces(ts), bound)
		}
	}
	walkStrings(tree, path, func(at, s string) {
		if o.validated[at] {
			return // Tekton's validation has already reported this field
		}
		for _, m := range resultRef.FindAllStringSubmatch(s, -1) {
			section, task, result := m[1], m[2], m[3]+m[4]
			names, ok := results[section][task]
			switch {
			case !ok:
				c.problem(o, at,
					fmt.Sprintf("%s refers to pipeline task %q, which is not in %s.%s", m[0]+")", task, path, section))
			case names != nil && !names[result]:
				c.problem(o, at,
					fmt.Sprintf("%s refers to result %q, which the task of %q does not declare", m[0]+")", result, task))
			}
		}
	})
}

func (c *checker) checkPipelineRun(o *object) {
	spec := &o.pipelineRun.Spec
	var ps *v1.PipelineSpec
	target := ""
	if spec.PipelineSpec != nil {
		ps, target = spec.PipelineSpec, "the embedded pipelineSpec"
		c.checkPipeline(o, ps, "spec.pipelineSpec", subtree(subtree(o.tree, "spec"), "pipelineSpec"))
	} else if ref := spec.PipelineRef; ref != nil && ref.Resolver == "" && ref.Name != "" {
		if p := c.find("Pipeline", ref.Name, o.file); p != nil {
			ps, target = &p.pipeline.Spec, "Pipeline "+ref.Name
		}
	}
	if ps == nil {
		return // a Pipeline installed from elsewhere: nothing to compare with
	}
	ws := map[string]bool{}
	for _, w := range ps.Workspaces {
		ws[w.Name] = w.Optional
	}
	var bound []string
	for _, w := range spec.Workspaces {
		bound = append(bound, w.Name)
	}
	c.checkArgs(o, "spec", target, ps.Params, spec.Params, nil, ws, bound)
	tasks := map[string]bool{}
	for _, t := range append(append([]v1.PipelineTask{}, ps.Tasks...), ps.Finally...) {
		tasks[t.Name] = true
	}
	for i, t := range spec.TaskRunSpecs {
		if !tasks[t.PipelineTaskName] {
			c.problem(o, fmt.Sprintf("spec.taskRunSpecs[%d].pipelineTaskName", i),
				fmt.Sprintf("%s has no pipeline task %q", target, t.PipelineTaskName))
		}
	}
}

func (c *checker) checkTaskRun(o *object) {
	spec := &o.taskRun.Spec
	ts, target := spec.TaskSpec, "the embedded taskSpec"
	if ts == nil {
		ts, target = c.taskFor(spec.TaskRef, o.file)
	}
	if ts == nil {
		return
	}
	var bound []string
	for _, w := range spec.Workspaces {
		bound = append(bound, w.Name)
	}
	c.checkArgs(o, "spec", target, ts.Params, spec.Params, nil, taskWorkspaces(ts), bound)
}

// --- helpers ---

func subtree(tree any, key string) any {
	if m, ok := tree.(map[string]any); ok {
		return m[key]
	}
	return nil
}

// walkStrings calls fn with the knative-style path (spec.tasks[1].params[0].value) of every string.
func walkStrings(node any, path string, fn func(path, s string)) {
	switch v := node.(type) {
	case string:
		fn(path, v)
	case []any:
		for i, e := range v {
			walkStrings(e, path+"["+strconv.Itoa(i)+"]", fn)
		}
	case map[string]any:
		for _, k := range sortedKeys(v) {
			walkStrings(v[k], path+"."+k, fn)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// files expands folders into their *.yaml and *.yml files, in a stable order.
func files(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		info, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			out = append(out, a)
			continue
		}
		err = filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
				out = append(out, p)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func main() {
	if len(os.Args) < 2 || strings.HasPrefix(os.Args[1], "-") {
		fmt.Fprintln(os.Stderr, "usage: tekton-validate FILE_OR_FOLDER...")
		os.Exit(2)
	}
	list, err := files(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "tekton-validate:", err)
		os.Exit(2)
	}
	c := &checker{}
	ctx := webhookContext()
	for _, f := range list {
		c.load(ctx, f)
	}
	c.crossCheck()
	if c.problems > 0 {
		fmt.Printf("tekton-validate: %d problems in %d objects (%d files)\n", c.problems, c.seen, c.files)
		os.Exit(1)
	}
	fmt.Printf("tekton-validate: %d objects in %d files, 0 problems\n", c.seen, c.files)
}
