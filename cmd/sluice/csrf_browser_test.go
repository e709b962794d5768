package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// Issue 19 item 9: a page on another origin that the operator's browser
// opens cannot reload the agent's config (a form POST, and a no-cors
// fetch), with --web.enable-lifecycle on; the agent's own pages and curl
// still can. Headless chromium, the built binary.
func TestCrossOriginPostRefusedInBrowser(t *testing.T) {
	ctx := newBrowser(t, 800, 600)
	a := startAgent(t, e2eConfigV1, "--web.enable-lifecycle")
	reloads := func() float64 {
		_, m := a.get("/metrics")
		return metricValue(t, m, `sluice_config_reloads_total{result="success"}`)
	}
	before := reloads()

	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><title>elsewhere</title>
<form method="POST" action="http://%[1]s/-/reload"><input type="hidden" name="x" value="1"></form>
<script>
fetch("http://%[1]s/-/reload", {method: "POST", mode: "no-cors"}).finally(() => document.forms[0].submit());
</script>`, a.addr)
	}))
	t.Cleanup(attacker.Close)

	// The form's answer replaces the attacker's page: the refusal.
	do(t, ctx, "cross-origin form", chromedp.Navigate(attacker.URL),
		waitJS(`document.body !== null && document.body.innerText.includes("cross-origin request refused")`))
	_, m := a.get("/metrics")
	if n := metricValue(t, m, "sluice_http_cross_origin_refused_total"); n != 2 {
		t.Errorf("cross-origin refusals = %v, want 2 (the fetch and the form):\n%s", n, grepLines(m, "cross_origin"))
	}
	if got := reloads(); got != before {
		t.Errorf("a cross-origin page reloaded the config: reloads %v -> %v", before, got)
	}

	// The agent's own page (same origin) may.
	do(t, ctx, "same-origin fetch", chromedp.Navigate("http://"+a.addr+"/-/healthy"),
		waitJS(`(window.__s === undefined && (window.__s = 0, fetch("/-/reload", {method: "POST"}).then(r => { window.__s = r.status }), false)) || window.__s === 200`))
	if got := reloads(); got != before+1 {
		t.Errorf("same-origin reload: reloads %v -> %v, want one more", before, got)
	}
	// And a client that is not a browser.
	if code, body := a.post("/-/reload"); code != 200 || !strings.Contains(body, "Config reloaded") {
		t.Errorf("POST /-/reload without a browser: %d %s", code, body)
	}
}
