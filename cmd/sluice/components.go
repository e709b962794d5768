package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/sluicehq/sluice/pipeline"
)

func listComponents(name string, asJSON bool, stdout, stderr io.Writer) int {
	var docs []pipeline.ComponentDoc
	for _, r := range pipeline.Registrations() {
		if name == "" || r.Name == name {
			docs = append(docs, pipeline.Describe(r))
		}
	}
	if name != "" && len(docs) == 0 {
		fmt.Fprintf(stderr, "sluice: no component named %q in this binary (see sluice components)\n", name)
		return 1
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(docs); err != nil {
			fmt.Fprintf(stderr, "sluice: %v\n", err)
			return 1
		}
		return 0
	}
	if name == "" {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSTABILITY\tKIND\tMODULE\tSUMMARY")
		for _, d := range docs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s %s\t%s\n", d.Name, d.Stability, d.Kind, d.Module, d.Version, d.Summary)
		}
		_ = tw.Flush()
		return 0
	}
	d := docs[0]
	fmt.Fprintf(stdout, "%s (%s, %s)\n%s\n\npackage: %s\nmodule:  %s %s\n\nArguments:\n", d.Name, d.Stability, d.Kind, d.Summary, d.Package, d.Module, d.Version)
	writeArgs(stdout, d.Args, "  ")
	fmt.Fprintln(stdout, "\nExports:")
	writeArgs(stdout, d.Exports, "  ")
	if d.Example != "" {
		fmt.Fprintf(stdout, "\nExample:\n\n%s\n", d.Example)
	}
	return 0
}

func writeArgs(w io.Writer, args []pipeline.ArgDoc, indent string) {
	for _, a := range args {
		req := "optional"
		if a.Required {
			req = "required"
		}
		extra := ""
		if a.Default != "" {
			extra = " default " + a.Default
		}
		if len(a.Labels) > 0 {
			extra += " labels " + strings.Join(a.Labels, ", ")
		}
		fmt.Fprintf(w, "%s%s  %s, %s%s\n", indent, a.Name, a.Type, req, extra)
		if len(a.Args) > 0 {
			writeArgs(w, a.Args, indent+"    ")
		}
	}
}
