package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// checkToken reports whether the request carries one of the tokens, in
// X-Private-Token or Authorization: Bearer. The presented token is hashed
// and the fixed-size hashes compared in constant time, every configured
// token each time: neither the position of the first wrong byte nor the
// token's length shows in the timing.
func checkToken(r *http.Request, tokens [][32]byte) bool {
	t := r.Header.Get("X-Private-Token")
	if t == "" {
		if auth := r.Header.Get("Authorization"); len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
			t = strings.TrimSpace(auth[7:])
		}
	}
	if t == "" {
		return false
	}
	sum := hashToken(t)
	ok := 0
	for i := range tokens {
		ok |= subtle.ConstantTimeCompare(sum[:], tokens[i][:])
	}
	return ok == 1
}

// precheckHook checks what of a delivery's credentials can be checked
// before its body is read: a GitLab token whole; a signature header's
// presence and form; a Standard Webhooks timestamp's tolerance. A request
// refused here costs no body memory.
func precheckHook(h *hookDef, r *http.Request, now time.Time) (bool, string) {
	if h.secret == nil {
		return true, ""
	}
	switch h.kind {
	case "gitlab":
		return verifyHook(h, r, nil, now) // the token does not depend on the body
	case "github":
		sig, ok := strings.CutPrefix(r.Header.Get("X-Hub-Signature-256"), "sha256=")
		if !ok {
			return false, "missing X-Hub-Signature-256"
		}
		if len(sig) != hex.EncodedLen(sha256.Size) {
			return false, "malformed X-Hub-Signature-256"
		}
		if _, err := hex.DecodeString(sig); err != nil {
			return false, "malformed X-Hub-Signature-256"
		}
		return true, ""
	case "generic":
		_, _, sigs, why := standardHeaders(h, r, now)
		if why != "" {
			return false, why
		}
		if !strings.Contains(sigs, "v1,") {
			return false, "no v1 signature in webhook-signature"
		}
		return true, ""
	}
	return false, "unknown kind"
}

// verifyHook checks a delivery's token or signature over the raw body.
// It returns a short reason on failure (never the secret or the header).
func verifyHook(h *hookDef, r *http.Request, body *chunks, now time.Time) (bool, string) {
	if h.secret == nil { // insecure_no_auth and no secret
		return true, ""
	}
	switch h.kind {
	case "gitlab":
		t := r.Header.Get("X-Gitlab-Token")
		if t == "" {
			return false, "missing X-Gitlab-Token"
		}
		sum := hashToken(t)
		return subtle.ConstantTimeCompare(sum[:], h.secret) == 1, "wrong X-Gitlab-Token"
	case "github":
		sig, ok := strings.CutPrefix(r.Header.Get("X-Hub-Signature-256"), "sha256=")
		if !ok {
			return false, "missing X-Hub-Signature-256"
		}
		got, err := hex.DecodeString(sig)
		if err != nil {
			return false, "malformed X-Hub-Signature-256"
		}
		m := hmac.New(sha256.New, h.secret)
		body.writeTo(m)
		return hmac.Equal(got, m.Sum(nil)), "wrong X-Hub-Signature-256"
	case "generic":
		return verifyStandardWebhook(h, r, body, now)
	}
	return false, "unknown kind"
}

// verifyStandardWebhook checks a Standard Webhooks signature
// (https://www.standardwebhooks.com): webhook-signature holds
// space-separated "v1,BASE64" HMAC-SHA256 signatures of
// "webhook-id.webhook-timestamp.body"; the timestamp must be within the
// tolerance, so a captured delivery cannot be replayed later.
func verifyStandardWebhook(h *hookDef, r *http.Request, body *chunks, now time.Time) (bool, string) {
	id, ts, sigs, why := standardHeaders(h, r, now)
	if why != "" {
		return false, why
	}
	m := hmac.New(sha256.New, h.secret)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	body.writeTo(m)
	want := m.Sum(nil)
	ok := false
	for _, s := range strings.Fields(sigs) {
		v, b64, found := strings.Cut(s, ",")
		if !found || v != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && hmac.Equal(got, want) {
			ok = true
		}
	}
	return ok, "wrong webhook-signature"
}

// standardHeaders reads a Standard Webhooks delivery's headers and checks
// the timestamp's tolerance; why is "" when they pass.
func standardHeaders(h *hookDef, r *http.Request, now time.Time) (id, ts, sigs, why string) {
	id, ts, sigs = r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return "", "", "", "missing webhook-id, webhook-timestamp or webhook-signature"
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "", "", "", "malformed webhook-timestamp"
	}
	if d := now.Sub(time.Unix(sec, 0)); d > h.tolerance || d < -h.tolerance {
		return "", "", "", "webhook-timestamp outside the tolerance"
	}
	return id, ts, sigs, ""
}

// deliveryID is the key duplicates are recognized by. With a Standard
// Webhooks signature it is the signed webhook-id only: an unsigned header
// (Idempotency-Key) taking precedence would let a captured delivery be
// replayed within the tolerance by adding one. Without a signature over an
// id, every id header is as good as another.
func deliveryID(h *hookDef, r *http.Request) string {
	if h.kind == "generic" && h.secret != nil {
		return r.Header.Get("webhook-id")
	}
	for _, h := range []string{"Idempotency-Key", "X-Gitlab-Event-UUID", "X-GitHub-Delivery", "webhook-id"} {
		if v := r.Header.Get(h); v != "" {
			return v
		}
	}
	return ""
}
