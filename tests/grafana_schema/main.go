// Command grafana_schema strict-parses Grafana dashboard JSON files with Grafana's own published schema types,
// those of the Grafana Foundation SDK (github.com/grafana/grafana-foundation-sdk/go, generated from Grafana's
// CUE schemas: the dashboard, each panel plugin's options and fieldConfig.defaults.custom, each datasource's query).
//
//	go run . FILE.json [FILE.json ...]
//
// For each file it prints one line, "ok FILE" or "FAIL FILE (N problems)", the latter followed by one indented
// line per problem, "  $.json.path: message". It exits 1 if any file has a problem, 2 on a usage error.
//
// The SDK's dashboard.Dashboard.UnmarshalJSONStrict rejects unknown fields, wrong types and missing required fields,
// and dispatches each panel's options and fieldConfig.defaults.custom to its panel type's strict unmarshaler and
// each query target to its datasource type's (plugins.RegisterDefaultPlugins). Where that leaves something
// unchecked, this program checks it too (see checkPanels):
//   - a panel's fieldConfig is decoded leniently by the SDK (only its "custom" part strictly): decode it strictly;
//   - a panel type or a datasource type the SDK has no schema for is accepted as an opaque bag: report it;
//   - a query target without its own datasource is decoded without a schema (the panel's datasource is read after
//     the targets): decode it strictly with the panel's datasource type;
//   - the Validate() constraints (ranges, lengths) of the dashboard, of the panel options and of the queries, which
//     run on the SDK's lenient decoding (see checkFile).
//
// Not checked, because the SDK's types do not encode it: enum values ("colorMode": "purple" is accepted, the SDK's
// enums being Go string types with no membership check). "Required" is the SDK's: every field that Grafana's CUE
// schema declares without "?", including those the schema gives a default (which Grafana fills in when absent).
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

type problem struct {
	path    string // JSON path, "$" for the document
	message string
}

func (p problem) String() string { return p.path + ": " + p.message }

type validator interface{ Validate() error }

// The SDK names an unexpected field's place by the type it was found in: "panels[0].Panel", "Dashboard".
var unexpectedField = regexp.MustCompile(`^unexpected field '(.*)'$`)

// toProblems flattens an SDK error (cog.BuildErrors, or a bare encoding/json error) into problems under root.
func toProblems(root string, err error) []problem {
	if err == nil {
		return nil
	}
	var buildErrs cog.BuildErrors
	if errors.As(err, &buildErrs) {
		// The SDK returns its (possibly empty) cog.BuildErrors as an error: an empty one is no problem.
		var out []problem
		for _, e := range buildErrs {
			out = append(out, fromBuildError(root, e))
		}
		return out
	}
	var buildErr *cog.BuildError
	if errors.As(err, &buildErr) {
		return []problem{fromBuildError(root, buildErr)}
	}
	return []problem{{path: root, message: err.Error()}}
}

func fromBuildError(root string, e *cog.BuildError) problem {
	path, message := e.Path, e.Message
	if m := unexpectedField.FindStringSubmatch(message); m != nil {
		// "panels[0].Panel: unexpected field 'foo'" -> "panels[0].foo: unknown field (not in the schema of Panel)"
		typeName := path
		if i := strings.LastIndex(path, "."); i >= 0 {
			typeName, path = path[i+1:], path[:i]
		} else {
			path = ""
		}
		path = joinPath(path, m[1])
		message = fmt.Sprintf("unknown field %q (not in the schema of %s)", m[1], typeName)
	}
	return problem{path: unionMember.ReplaceAllString(joinPath(root, path), "]"), message: message}
}

// Validate() names the member of a panels[] entry it descended into: "panels[0].Panel.gridPos".
var unionMember = regexp.MustCompile(`\]\.(Panel|RowPanel)\b`)

// joinPath joins JSON path parts: joinPath("$", "panels[0]") == "$.panels[0]", joinPath("$.a", "[2]") == "$.a[2]".
func joinPath(base, rest string) string {
	switch {
	case rest == "":
		return base
	case base == "":
		return rest
	case strings.HasPrefix(rest, "["):
		return base + rest
	default:
		return base + "." + rest
	}
}

func checkFile(path string) []problem {
	raw, err := os.ReadFile(path)
	if err != nil {
		return []problem{{path: "$", message: err.Error()}}
	}
	if !json.Valid(raw) {
		var v any
		return []problem{{path: "$", message: "not JSON: " + json.Unmarshal(raw, &v).Error()}}
	}
	var object map[string]json.RawMessage
	if err := json.Unmarshal(raw, &object); err != nil {
		return []problem{{path: "$", message: "a dashboard is a JSON object: " + err.Error()}}
	}

	strict := dashboard.Dashboard{}
	problems := toProblems("$", strict.UnmarshalJSONStrict(raw))
	if len(problems) == 1 && problems[0].path == "$" {
		// A bare encoding/json error aborts the SDK's whole decoding (e.g. "panels": {}): say which field it was.
		if located := locateBareError(object); len(located) > 0 {
			problems = located
		}
	}
	// The SDK's strict decoding reports problems right but loses what it decoded (its strict unmarshalers return
	// an empty cog.BuildErrors as a non-nil error, so PanelOrRowPanel and the plugin variants drop their result):
	// the Validate() constraints run on the SDK's lenient decoding instead.
	lenient := dashboard.Dashboard{}
	if json.Unmarshal(raw, &lenient) == nil {
		problems = append(problems, toProblems("$", lenient.Validate())...)
	}
	problems = append(problems, checkPanels("$.panels", object["panels"])...)
	return dedupe(problems)
}

// locateBareError names the top-level fields the SDK decodes as arrays that are not arrays.
func locateBareError(object map[string]json.RawMessage) []problem {
	var out []problem
	for _, field := range []string{"panels", "links", "tags"} {
		value, found := object[field]
		if !found || string(value) == "null" {
			continue
		}
		var array []json.RawMessage
		if err := json.Unmarshal(value, &array); err != nil {
			out = append(out, problem{path: "$." + field, message: "must be an array: " + err.Error()})
		}
	}
	return out
}

// rawPanel is what checkPanels reads of a panel; the SDK has already reported any type error in these fields.
type rawPanel struct {
	Type        *string           `json:"type"`
	Datasource  *datasourceRef    `json:"datasource"`
	FieldConfig json.RawMessage   `json:"fieldConfig"`
	Options     json.RawMessage   `json:"options"`
	Targets     []json.RawMessage `json:"targets"`
	Panels      []json.RawMessage `json:"panels"` // a row's panels
}

type datasourceRef struct {
	Type *string `json:"type"`
}

type rawTarget struct {
	Datasource *datasourceRef `json:"datasource"`
}

// checkPanels checks what the SDK's strict decoding of panels leaves unchecked (see the package comment).
func checkPanels(base string, rawPanels json.RawMessage) []problem {
	var panels []json.RawMessage
	if rawPanels == nil || json.Unmarshal(rawPanels, &panels) != nil {
		return nil // absent, or not an array: reported by the SDK
	}
	var out []problem
	for i, rawP := range panels {
		at := base + "[" + strconv.Itoa(i) + "]"
		var panel rawPanel
		if json.Unmarshal(rawP, &panel) != nil || panel.Type == nil {
			continue // reported by the SDK
		}
		if *panel.Type == "row" {
			if panel.Panels != nil {
				nested, _ := json.Marshal(panel.Panels)
				out = append(out, checkPanels(at+".panels", nested)...)
			}
			continue
		}
		variant, known := cog.ConfigForPanelcfgVariant(*panel.Type)
		if !known {
			out = append(out, problem{path: at + ".type", message: fmt.Sprintf(
				"panel type %q has no schema in the Grafana Foundation SDK: its options and fieldConfig are unchecked",
				*panel.Type)})
		}
		if panel.FieldConfig != nil && string(panel.FieldConfig) != "null" {
			fieldConfig := dashboard.FieldConfigSource{}
			out = append(out, toProblems(at+".fieldConfig", fieldConfig.UnmarshalJSONStrict(panel.FieldConfig))...)
			out = append(out, toProblems(at+".fieldConfig", fieldConfig.Validate())...)
		}
		if known && variant.FieldConfigUnmarshaler != nil {
			var source struct {
				Defaults struct {
					Custom json.RawMessage `json:"custom"`
				} `json:"defaults"`
			}
			if json.Unmarshal(panel.FieldConfig, &source) == nil && source.Defaults.Custom != nil &&
				string(source.Defaults.Custom) != "null" {
				custom, err := variant.FieldConfigUnmarshaler(source.Defaults.Custom)
				out = append(out, validate(at+".fieldConfig.defaults.custom", custom, err)...)
			}
		}
		if known && variant.OptionsUnmarshaler != nil && panel.Options != nil && string(panel.Options) != "null" {
			options, err := variant.OptionsUnmarshaler(panel.Options)
			out = append(out, validate(at+".options", options, err)...)
		}
		panelDatasource := ""
		if panel.Datasource != nil && panel.Datasource.Type != nil {
			panelDatasource = *panel.Datasource.Type
		}
		for j, rawT := range panel.Targets {
			out = append(out, checkTarget(at+".targets["+strconv.Itoa(j)+"]", rawT, panelDatasource)...)
		}
	}
	return out
}

func checkTarget(at string, raw json.RawMessage, panelDatasource string) []problem {
	var target rawTarget
	if json.Unmarshal(raw, &target) != nil {
		return nil // not an object: reported by the SDK
	}
	datasource := panelDatasource
	if target.Datasource != nil && target.Datasource.Type != nil && *target.Datasource.Type != "" {
		datasource = *target.Datasource.Type
	}
	if datasource == "" {
		return []problem{{path: at, message: "no datasource type on the query nor on its panel: the query is unchecked"}}
	}
	_, strictErr := cog.StrictUnmarshalDataquery(raw, datasource)
	out := toProblems(at, strictErr)
	query, err := cog.UnmarshalDataquery(raw, datasource)
	if err != nil {
		return out // a type error: reported by the strict decoding
	}
	if query.DataqueryType() == "unknown" {
		return append(out, problem{path: at, message: fmt.Sprintf(
			"datasource type %q has no query schema in the Grafana Foundation SDK: the query is unchecked", datasource)})
	}
	return append(out, toProblems(at, query.Validate())...)
}

// validate runs the Validate() constraints of a value decoded (leniently) by a plugin variant of the SDK.
func validate(at string, value any, err error) []problem {
	if err != nil {
		return nil // a type error: reported by the strict decoding
	}
	if v, ok := value.(validator); ok {
		return toProblems(at, v.Validate())
	}
	return nil
}

func dedupe(problems []problem) []problem {
	seen := map[string]bool{}
	var out []problem
	for _, p := range problems {
		if !seen[p.String()] {
			seen[p.String()] = true
			out = append(out, p)
		}
	}
	// In document order as far as paths tell (panels[2] before panels[10]), whatever the SDK's map order was.
	sort.SliceStable(out, func(i, j int) bool { return sortKey(out[i].path) < sortKey(out[j].path) })
	return out
}

var digits = regexp.MustCompile(`[0-9]+`)

func sortKey(path string) string {
	return digits.ReplaceAllStringFunc(path, func(n string) string { return fmt.Sprintf("%09s", n) })
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: grafana_schema DASHBOARD.json [DASHBOARD.json ...]")
		os.Exit(2)
	}
	plugins.RegisterDefaultPlugins()
	failed := false
	for _, path := range os.Args[1:] {
		problems := checkFile(path)
		if len(problems) == 0 {
			fmt.Printf("ok %s\n", path)
			continue
		}
		failed = true
		plural := "s"
		if len(problems) == 1 {
			plural = ""
		}
		fmt.Printf("FAIL %s (%d problem%s)\n", path, len(problems), plural)
		for _, p := range problems {
			fmt.Printf("  %s\n", p)
		}
	}
	if failed {
		os.Exit(1)
	}
}
