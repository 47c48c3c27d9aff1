package connectors

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// fakeDNS answers A and AAAA queries from a function, over an in-memory pipe: the
// *net.Resolver it returns never sends a packet, so tests can map names to forbidden
// addresses without any real network.
type fakeDNS struct {
	// answer returns every address of name (both families; the server picks those the
	// query asks for). n counts the queries of this type so far, for rebinding tests.
	answer  func(name string, qtype dnsmessage.Type, n int) []netip.Addr
	mu      sync.Mutex
	queries map[dnsmessage.Type]int
}

// newFakeResolver returns a resolver whose look-ups answer from records (name without
// trailing dot → addresses); unknown names are NXDOMAIN.
func newFakeResolver(t testing.TB, records map[string][]string) *net.Resolver {
	t.Helper()
	parsed := make(map[string][]netip.Addr)
	for name, addrs := range records {
		for _, a := range addrs {
			parsed[name] = append(parsed[name], netip.MustParseAddr(a))
		}
	}
	return (&fakeDNS{answer: func(name string, _ dnsmessage.Type, _ int) []netip.Addr {
		return parsed[name]
	}}).resolver()
}

func (f *fakeDNS) resolver() *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			client, server := net.Pipe()
			go f.serve(server)
			return client, nil // not a PacketConn, so the resolver speaks DNS-over-TCP framing
		},
	}
}

func (f *fakeDNS) serve(conn net.Conn) {
	defer conn.Close()
	for {
		var size [2]byte
		if _, err := io.ReadFull(conn, size[:]); err != nil {
			return
		}
		query := make([]byte, binary.BigEndian.Uint16(size[:]))
		if _, err := io.ReadFull(conn, query); err != nil {
			return
		}
		resp, err := f.respond(query)
		if err != nil {
			return
		}
		out := binary.BigEndian.AppendUint16(nil, uint16(len(resp)))
		if _, err := conn.Write(append(out, resp...)); err != nil {
			return
		}
	}
}

func (f *fakeDNS) respond(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	name := strings.TrimSuffix(q.Name.String(), ".")

	f.mu.Lock()
	if f.queries == nil {
		f.queries = make(map[dnsmessage.Type]int)
	}
	f.queries[q.Type]++
	n := f.queries[q.Type]
	f.mu.Unlock()

	all := f.answer(name, q.Type, n)
	var addrs []netip.Addr
	for _, a := range all {
		if (q.Type == dnsmessage.TypeA) == a.Is4() {
			addrs = append(addrs, a)
		}
	}
	rcode := dnsmessage.RCodeSuccess
	if len(all) == 0 {
		rcode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{
		ID: h.ID, Response: true, Authoritative: true, RecursionAvailable: true, RCode: rcode,
	})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1}
	for _, a := range addrs {
		if a.Is4() {
			err = b.AResource(rh, dnsmessage.AResource{A: a.As4()})
		} else {
			err = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
		if err != nil {
			return nil, err
		}
	}
	return b.Finish()
}
