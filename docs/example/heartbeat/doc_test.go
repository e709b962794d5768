package heartbeat_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The code shown in docs/writing-components.md is this package's code.
func TestDocumentationShowsThisCode(t *testing.T) {
	doc, err := os.ReadFile("../../writing-components.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("heartbeat.go")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range regexp.MustCompile("(?s)```go\n(.*?)```").FindAllSubmatch(doc, -1) {
		block := string(m[1])
		if strings.Contains(block, "switchTo") || strings.Contains(block, "pipelinetest") || strings.Contains(block, "web.ServeHTTP") || strings.Contains(block, "pipeline.Schedule{") {
			continue // the sketches of an Update that binds, an HTTP listener and a schedule, and the test
		}
		for _, part := range strings.Split(block, "\n\n// ") {
			if !strings.Contains(string(src), strings.TrimPrefix(part, "// ")) {
				t.Errorf("the documentation shows code that is not in heartbeat.go:\n%s", part)
			}
		}
		n++
	}
	if n < 5 {
		t.Fatalf("found %d Go blocks in the documentation", n)
	}
}
