package main

// The status UI in a real browser: Debian's chromium, headless, driven by
// chromedp, against the built binary serving under a path prefix (as
// behind an SSO proxy). scripts/ensure-deps.sh installs chromium; without
// it the test skips locally and fails under CI=true.

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluicehq/sluice/internal/testing/realpart"
)

const uiConfig = `
statsd_receiver "app" {
  listen_udp = "%s"
}

relabel "app" {
  input = statsd_receiver.app.metrics
  rule {
    action       = "replace"
    target_label = "pipeline"
    replacement  = "ui"
  }
}

metrics_sink "default" {
  inputs = [relabel.app.metrics]
}
`

// uiBadConfig has an error at line 4, column 3 (an unknown argument).
const uiBadConfig = `
statsd_receiver "app" {
  listen_udp = "%s"
  listen_udpp = "typo"
}

relabel "app" {
  input = statsd_receiver.app.metrics
}

metrics_sink "default" {
  inputs = [relabel.app.metrics]
}
`

// chromiumPath finds Debian's chromium; a missing browser skips the test
// locally and fails it under CI=true. Under -short it skips: the fast lane
// starts no browser.
func chromiumPath(t *testing.T) string {
	t.Helper()
	realpart.SkipShort(t, "a headless chromium")
	for _, p := range []string{"/usr/bin/chromium", "chromium"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (scripts/ensure-deps.sh installs it)")
	}
	t.Skip("chromium is not installed; run make deps")
	return ""
}

// newBrowser starts a headless chromium for the test.
func newBrowser(t *testing.T, width, height int) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancel := chromedp.NewContext(actx)
	// The first Do starts the browser, which lives as long as bctx: the
	// test's deadline goes on a context derived after it.
	if err := chromedp.Do(bctx); err != nil {
		cancel()
		acancel()
		t.Fatalf("starting chromium: %v", err)
	}
	ctx, tcancel := context.WithTimeout(bctx, 3*time.Minute)
	t.Cleanup(func() { tcancel(); cancel(); acancel() })
	return ctx
}

// run runs an action that returns a value, failing the test on error.
func run[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// waitJS waits until the JavaScript expression is true in the page. It
// evaluates from Go, again and again, rather than with chromedp.Poll: a
// poll started before a navigation dies with the old page's context.
func waitJS(expr string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tgt *chromedp.Target) (chromedp.Void, error) {
		deadline := time.Now().Add(45 * time.Second)
		var last error
		for {
			ok, err := chromedp.Evaluate[bool](expr)(ctx, tgt)
			if err == nil && ok {
				return chromedp.Void{}, nil
			}
			if err != nil {
				last = err
			}
			if ctx.Err() != nil || time.Now().After(deadline) {
				return chromedp.Void{}, fmt.Errorf("waiting for %s: timed out (last error: %v)", expr, last)
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

func artifactDir(t *testing.T) string {
	if d := os.Getenv("SLUICE_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

func TestStatusUIInBrowser(t *testing.T) {
	chromiumPath(t)
	udp := freeUDPAddr(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "sluice.hcl")
	a := startAgentIn(t, path, fmt.Sprintf(uiConfig, udp), nil, "--web.external-url", "http://127.0.0.1/sluice/")
	a.waitFor("ready under the prefix", func() bool { code, _ := a.get("/sluice/-/ready"); return code == 200 })
	conn, err := net.Dial("udp", udp)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	a.waitFor("the statsd series in the sink", func() bool {
		_, _ = conn.Write([]byte("ui_e2e.hits:1|c\n"))
		code, body := a.get("/sluice/metrics/default")
		return code == 200 && strings.Contains(body, `ui_e2e_hits{pipeline="ui"}`)
	})

	ctx := newBrowser(t, 1200, 900)
	base := "http://" + a.addr + "/sluice/"

	// Overview: three components, each in the graph with its health as text.
	do(t, ctx, "overview",
		chromedp.Navigate(base),
		waitJS(`document.querySelectorAll('svg.graph a.node').length === 3`),
	)
	graphNodes := run(t, ctx, "graph nodes", chromedp.Evaluate[int](`document.querySelectorAll('svg.graph a.node[aria-label$=", healthy"]').length`))
	tableText := run(t, ctx, "components table", chromedp.Text(chromedp.CSS(`#components tbody`)))
	if graphNodes != 3 {
		t.Errorf("%d healthy graph nodes, want 3", graphNodes)
	}
	for _, id := range []string{"statsd_receiver.app", "relabel.app", "metrics_sink.default"} {
		if !strings.Contains(tableText, id) {
			t.Errorf("components table lacks %s:\n%s", id, tableText)
		}
	}
	shot := run(t, ctx, "screenshot", chromedp.FullScreenshot(100))
	shotPath := filepath.Join(artifactDir(t), "status-ui-overview.png")
	if err := os.WriteFile(shotPath, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("overview screenshot: %s", shotPath)

	// Keyboard: the first Tab reaches the skip link.
	do(t, ctx, "Tab", chromedp.KeyEvent("\t"))
	focused := run(t, ctx, "focus", chromedp.Evaluate[string](`document.activeElement.textContent`))
	if focused != "Skip to content" {
		t.Errorf("first Tab focused %q", focused)
	}

	// Follow the relabel node of the graph to its page: the series preview
	// shows what relabel did (the pipeline="ui" label).
	do(t, ctx, "component page",
		chromedp.Click(chromedp.CSS(`svg.graph a.node[aria-label^="relabel.app,"]`)),
		waitJS(`document.querySelector('h1') !== null && document.querySelector('h1').textContent === 'relabel.app'`),
		waitJS(`[...document.querySelectorAll('.preview table.series code')].some(c => c.textContent === 'ui_e2e_hits{pipeline="ui"}')`),
	)
	url := run(t, ctx, "location", chromedp.Location())
	if shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		_ = os.WriteFile(filepath.Join(artifactDir(t), "status-ui-component.png"), shot, 0o644)
	}
	if url != base+"component/relabel.app" {
		t.Errorf("the graph node led to %s", url)
	}
	// The filter box narrows the preview (server side).
	do(t, ctx, "filter",
		chromedp.SendKeys(chromedp.CSS(`#filter-0`), "no_such_series"),
		chromedp.Submit(chromedp.CSS(`#filter-0`)),
		waitJS(`location.search === '?filter=no_such_series' && document.querySelector('.preview .count') !== null`),
	)
	// Read the text in one evaluation: the page refreshes itself, and a
	// query-then-read of a node can find it replaced in between.
	count := run(t, ctx, "count", chromedp.Evaluate[string](`document.querySelector('.preview .count').textContent`))
	if !strings.HasPrefix(count, "Showing 0 of 0 matching series") {
		t.Errorf("filtered preview count: %q", count)
	}

	// Back on the overview, a bad config: the page refreshes itself and
	// shows the diagnostic at its position, then a good one clears it.
	do(t, ctx, "overview again", chromedp.Navigate(base), waitJS(`document.querySelector('.reload-result.ok') !== null`))
	a.write(fmt.Sprintf(uiBadConfig, udp))
	do(t, ctx, "bad config shown", waitJS(`document.querySelector('.diagnostic .position') !== null`))
	pos := run(t, ctx, "position", chromedp.Text(chromedp.CSS(`.diagnostic .position`)))
	snippet := run(t, ctx, "snippet", chromedp.TextContent(chromedp.CSS(`.diagnostic .snippet`)))
	if pos != path+":4:3" {
		t.Errorf("diagnostic position %q, want %s:4:3", pos, path)
	}
	if !strings.Contains(snippet, `listen_udpp = "typo"`) {
		t.Errorf("snippet %q", snippet)
	}
	if errShot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		_ = os.WriteFile(filepath.Join(artifactDir(t), "status-ui-reload-error.png"), errShot, 0o644)
	}
	a.write(fmt.Sprintf(uiConfig, udp))
	do(t, ctx, "the error clears after a good config",
		waitJS(`document.querySelector('.diagnostic') === null && document.querySelector('.reload-result.ok') !== null`))
}

// TestStatusUIOnPhone: at a phone's width the overview needs no horizontal
// scrolling, and health is still written out.
func TestStatusUIOnPhone(t *testing.T) {
	chromiumPath(t)
	a := startAgent(t, e2eConfigV1)
	ctx := newBrowser(t, 1000, 900)
	do(t, ctx, "overview", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate("http://"+a.addr+"/"), waitJS(`document.querySelectorAll('svg.graph a.node').length === 2`))
	overflow := run(t, ctx, "overflow", chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`))
	health := run(t, ctx, "health", chromedp.Text(chromedp.CSS(`#components tbody .health`)))
	if overflow {
		t.Error("the overview scrolls horizontally on a phone-sized viewport")
	}
	if !strings.Contains(health, "healthy") {
		t.Errorf("health text %q", health)
	}
	if shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		p := filepath.Join(artifactDir(t), "status-ui-phone.png")
		_ = os.WriteFile(p, shot, 0o644)
		t.Logf("phone screenshot: %s", p)
	}
}
