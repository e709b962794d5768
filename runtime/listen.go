package runtime

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// socketClaim is one socket wanted by a component, or by the agent.
type socketClaim struct {
	family string // tcp, udp, unixgram
	host   string // normalized; "" is every address
	port   string
	path   string // unixgram
	owner  string // component ID, or "" for the agent
	flag   string // the agent's flag that set addr (owner "")
	rng    hcl.Range
	addr   ListenAddress
}

// checkListenAddresses refuses two claims on the same socket: same family,
// same port and overlapping hosts (":9102" and "127.0.0.1:9102" overlap; tcp
// and udp on one port do not), or the same unixgram path. Port 0 (any free
// port) never conflicts.
func checkListenAddresses(nodes []*loadedNode, opts LoadOptions) hcl.Diagnostics {
	var claims []socketClaim
	for _, a := range []struct{ addr, flag string }{
		{opts.AgentListenAddress, "--server.http.listen-addr"},
		{opts.AgentProbeListenAddress, "--web.probe-listen-address"},
	} {
		if a.addr == "" {
			continue
		}
		if c, ok := newClaim(ListenAddress{Network: "tcp", Address: a.addr}); ok {
			c.flag = a.flag
			claims = append(claims, c)
		}
	}
	var diags hcl.Diagnostics
	for _, n := range nodes {
		u, ok := argsAs[ListenAddressUser](n.args)
		if !ok {
			continue
		}
		for _, la := range u.ListenAddresses() {
			c, ok := newClaim(la)
			if !ok {
				continue // Validate reports a malformed address
			}
			c.owner = n.id
			c.rng = attrRange(n, la.Attr)
			for _, prev := range claims {
				if !c.conflicts(prev) {
					continue
				}
				d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Listen address used twice", Subject: c.rng.Ptr()}
				if prev.owner == "" {
					d.Detail = fmt.Sprintf("%s wants to listen on %s %s (%s), which the agent's own HTTP server uses (%s=%s); choose another port.", c.owner, c.addr.Network, c.addr.Address, c.addr.Attr, prev.flag, prev.addr.Address)
				} else {
					d.Detail = fmt.Sprintf("%s wants to listen on %s %s (%s), which %s already claims at %s (%s %s); only one of them could bind it.", c.owner, c.addr.Network, c.addr.Address, c.addr.Attr, prev.owner, prev.rng, prev.addr.Attr, prev.addr.Address)
				}
				diags = append(diags, d)
				break
			}
			claims = append(claims, c)
		}
	}
	return diags
}

func newClaim(la ListenAddress) (socketClaim, bool) {
	c := socketClaim{addr: la, family: strings.TrimRight(strings.ToLower(la.Network), "46")}
	switch c.family {
	case "tcp", "udp":
		host, port, err := net.SplitHostPort(la.Address)
		if err != nil || port == "0" || port == "" {
			return c, false
		}
		c.host, c.port = normalizeHost(host), port
	case "unix", "unixgram", "unixpacket":
		if la.Address == "" {
			return c, false
		}
		c.path = la.Address
		if !strings.HasPrefix(la.Address, "@") { // not an abstract socket
			c.path = filepath.Clean(la.Address)
		}
	default:
		return c, false
	}
	return c, true
}

// normalizeHost maps every spelling of "all addresses" to "" and of the
// loopback name to "localhost", and canonicalizes IP literals.
func normalizeHost(h string) string {
	h = strings.ToLower(strings.Trim(h, "[]"))
	switch h {
	case "", "0.0.0.0", "::", "*":
		return ""
	case "localhost":
		return "localhost"
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		ip = ip.Unmap()
		if ip.IsUnspecified() {
			return ""
		}
		return ip.String()
	}
	return h
}

func (c socketClaim) conflicts(o socketClaim) bool {
	if c.family != o.family {
		return false
	}
	if c.path != "" || o.path != "" {
		return c.path == o.path
	}
	if c.port != o.port {
		return false
	}
	if c.host == "" || o.host == "" || c.host == o.host {
		return true
	}
	// localhost is 127.0.0.1 and ::1 (and usually nothing else).
	isLoop := func(h string) bool {
		ip, err := netip.ParseAddr(h)
		return err == nil && ip.IsLoopback()
	}
	return (c.host == "localhost" && isLoop(o.host)) || (o.host == "localhost" && isLoop(c.host))
}

// attrRange is the range of a top-level attribute of a node's block, or its
// header when the attribute is not written (a default value).
func attrRange(n *loadedNode, name string) hcl.Range {
	if sb, ok := n.body.(*hclsyntax.Body); ok && name != "" {
		if a, ok := sb.Attributes[name]; ok {
			return a.Expr.Range()
		}
	}
	return n.rng
}
