// SPDX-License-Identifier: MIT

// Package securelink is a client for securelinkd, the daemon that signs
// nginx secure_link URLs. The application never holds the signing secret: it
// asks securelinkd over its Unix socket, in the line protocol of
// docs/protocol.md. Standard library only.
//
//	c := securelink.New(securelink.Options{}) // $SECURELINK_SOCKET or the default path
//	defer c.Close()
//	url, err := c.Sign(ctx, "/media/private/report 2024.pdf", securelink.TTL(10*time.Minute))
//	urls, err := c.SignMany(ctx, paths) // pipelined: thousands per round trip
//
// Targets are URL paths as they appear in a link: "%XX" escapes are decoded
// by the daemon, raw UTF-8 is fine. Bytes the protocol cannot carry raw
// (space, control bytes, DEL) are percent-encoded here, so "a b.pdf" is sent
// as "a%20b.pdf" and means the same file. A literal '%', '?' or '#' in a file
// name must be percent-encoded by the caller (url.PathEscape does it),
// because in a URL path they are an escape, a query and a fragment.
//
// Failures are *Error values; their Code is the daemon's ERR code or one of
// the client's own (see Error).
//
// A Client keeps one connection, opened on first use. It is safe for
// concurrent use: a mutex serialises calls on that connection, so
// goroutines that share a Client take turns (each call is one pipelined
// exchange, a few microseconds per request). For parallel signing, give each
// worker its own Client, or batch with SignMany, which is faster than either.
package securelink

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultSocket is where securelinkd.socket listens.
const DefaultSocket = "/run/securelink/securelinkd.sock"

// LineMax is the daemon's limit: a request line is at most 8192 bytes
// including the LF. A longer line gets "ERR line-too-long" and the daemon
// closes the connection, which would break pipelining, so such a request is
// refused before it is sent.
const LineMax = 8192

// DefaultTimeout is how long a call may go without progress.
const DefaultTimeout = 5 * time.Second

// How much request data is handed to the socket at a time. Answers are read
// while requests are still being written: the daemon stops reading once its
// bounded output buffer is full, so a client that wrote everything before
// reading would deadlock with it.
const chunk = 64 * 1024

// Requests up to this size are written before reading, without a writer
// goroutine: the socket's buffers hold them and their answers.
const smallExchange = 16 * 1024

// Longest answer line accepted (STATUS lists every key, still far below).
const answerMax = 1 << 20

// Error is a failed request. Code is the daemon's ERR code ("bad-target",
// "bad-ttl", "ttl-too-long", "bad-ip", "forbidden", "unavailable", ...;
// "unavailable" also when securelinkd refused the connection at its
// max_connections, with its reason) or one of the client's own:
// "unreachable" (cannot connect), "disconnected" (connection lost twice in
// one call), "timeout" (no progress for Options.Timeout, or the context's
// deadline passed), "canceled" (the context was canceled), "protocol" (an
// answer that makes no sense), "line-too-long" (refused before sending).
type Error struct {
	Code    string
	Message string
	// Index is the position of the target that failed in SignMany, else -1.
	Index int
	err   error
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Unwrap gives context.Canceled or context.DeadlineExceeded when the
// context ended the call.
func (e *Error) Unwrap() error { return e.err }

func newError(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Index: -1}
}

// Options configure a Client; the zero value is the default.
type Options struct {
	// Socket is the daemon's socket; default $SECURELINK_SOCKET, else
	// DefaultSocket.
	Socket string
	// Timeout is how long connect, a write or an answer may take before the
	// call fails with "timeout"; default DefaultTimeout.
	Timeout time.Duration
}

// Client is a connection to securelinkd, opened on first use and kept. A
// connection that broke (the daemon restarted, or closed it after its
// idle_timeout) is reopened once per call and the unanswered requests are
// sent again: every request a Client makes is idempotent.
type Client struct {
	socket  string
	timeout time.Duration

	mu   sync.Mutex // one exchange at a time on conn
	conn *net.UnixConn
	in   *bufio.Reader
}

// New returns a Client; it connects on the first call.
func New(o Options) *Client {
	c := &Client{socket: o.Socket, timeout: o.Timeout}
	if c.socket == "" {
		c.socket = os.Getenv("SECURELINK_SOCKET")
	}
	if c.socket == "" {
		c.socket = DefaultSocket
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	return c
}

// Socket returns the path the client connects to.
func (c *Client) Socket() string { return c.socket }

// Close closes the kept connection; a later call opens a new one.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked()
	return nil
}

// Option is an optional argument of Sign, SignMany and Verify.
type Option func(*options)

type options struct {
	ttl     time.Duration
	hasTTL  bool
	expires time.Time
	ip      string
}

// TTL sets a link's lifetime, in whole seconds (default: the daemon's
// default_link_ttl).
func TTL(d time.Duration) Option {
	return func(o *options) { o.ttl, o.hasTTL = d, true }
}

// Expires sets a link's expiry time instead of a TTL.
func Expires(t time.Time) Option { return func(o *options) { o.expires = t } }

// IP binds a link to a client address (needed when the daemon has
// bind_ip = yes); for Verify, the address the link is checked for.
func IP(addr string) Option { return func(o *options) { o.ip = addr } }

// GrantForm is the form of a directory grant.
type GrantForm string

const (
	// GrantPath (the default): a base URL ending in "/", the token in its path.
	GrantPath GrantForm = "path"
	// GrantCookie: the value of one Set-Cookie header.
	GrantCookie GrantForm = "cookie"
)

// GrantCookieName is the cookie a GrantCookie answer sets.
const GrantCookieName = "securelink_grant"

// GrantOptions are the options of Grant; the zero value is a path grant
// with the daemon's default_link_ttl.
type GrantOptions struct {
	// Form is GrantPath (or "") or GrantCookie.
	Form GrantForm
	// TTL is the grant's lifetime, in whole seconds; 0: the daemon's default.
	TTL time.Duration
	// IP binds the grant to a client address (daemon with bind_ip = yes).
	IP string
}

// Verdict is VERIFY's answer. Status is "valid", "expired", "invalid" or
// "public"; Kid and Expires are set for valid and expired links, Reason
// for invalid ones.
type Verdict struct {
	Status  string
	Kid     uint32
	Expires int64
	Reason  string
}

// Valid reports whether nginx would serve the link: signed and unexpired,
// or public.
func (v Verdict) Valid() bool { return v.Status == "valid" || v.Status == "public" }

// Key is one key of STATUS's key ring (no secret: the daemon never sends one).
type Key struct {
	Kid       uint32 `json:"kid"`
	State     string `json:"state"`
	Published int64  `json:"published"`
	Activated int64  `json:"activated"`
	Retired   int64  `json:"retired"`
	DropAfter int64  `json:"drop_after"`
}

// Status is the daemon's STATUS; Raw holds the whole JSON, with the fields
// this struct does not name.
type Status struct {
	ActiveKid    uint32          `json:"active_kid"`
	NextRotation int64           `json:"next_rotation"`
	Keys         []Key           `json:"keys"`
	Nginx        map[string]any  `json:"nginx"`
	Counters     map[string]any  `json:"counters"`
	Raw          json.RawMessage `json:"-"`
}

// Ping returns nil when the daemon answers.
func (c *Client) Ping(ctx context.Context) error {
	rest, err := c.one(ctx, []byte("PING\n"))
	if err == nil && rest != "pong" {
		err = newError("protocol", "unexpected answer to PING: %q", clip(rest))
	}
	return err
}

// Sign returns the signed URL for target: a URL path beginning with '/', or
// an absolute http(s) URL whose scheme://host[:port] is kept. A target
// outside the private prefixes comes back as a plain, canonical URL.
func (c *Client) Sign(ctx context.Context, target string, opts ...Option) (string, error) {
	line, err := signLine(target, opts)
	if err != nil {
		return "", err
	}
	return c.one(ctx, line)
}

// Grant signs a directory grant, for a stream (a playlist and every file
// below it): dir is a target as Sign takes it, ending in "/", inside a
// private prefix. The path form returns a base URL ending in "/" under which
// every file of the directory opens (give the player base + "master.m3u8");
// the cookie form returns the value of a Set-Cookie header
// ("securelink_grant=...; Path=<dir>; Expires=...; HttpOnly; SameSite=Lax",
// "; Secure" with an https base_url), with which a browser fetches the files
// at their plain URLs. A public directory comes back as its plain URL in both
// forms (a cookie answer always starts with GrantCookieName + "="). A dir
// without its trailing "/" is the daemon's *Error with Code "bad-target".
func (c *Client) Grant(ctx context.Context, dir string, o GrantOptions) (string, error) {
	line, err := grantLine(dir, o)
	if err != nil {
		return "", err
	}
	return c.one(ctx, line)
}

// SignMany signs every target in one pipelined exchange and returns the
// URLs in the order of targets. Every target is checked before anything is
// sent. If the daemon refuses some, every answer is still read (the
// connection stays in step) and the first refusal is returned, its Index
// set. The URLs share memory with the answers read with them (a few
// hundred per 64 KiB read): one URL kept alone keeps its block.
func (c *Client) SignMany(ctx context.Context, targets []string, opts ...Option) ([]string, error) {
	if len(targets) == 0 {
		return []string{}, nil
	}
	// Every target's line in one buffer, with the options (the same for
	// all) formatted once: one allocation for the whole batch.
	suffix, err := signOptions(opts)
	if err != nil {
		if e, ok := err.(*Error); ok {
			e.Index = 0 // as if found on the first target's line
		}
		return nil, err
	}
	size := 0
	for _, t := range targets {
		size += len("SIGN ") + len(t) + len(suffix) + 1
	}
	req := make([]byte, 0, size)
	for i, t := range targets {
		if req, err = appendSignLine(req, t, suffix); err != nil {
			err.(*Error).Index = i
			return nil, err
		}
	}
	a, err := c.exchange(ctx, req, len(targets))
	if err != nil {
		return nil, err
	}
	for i := range a.codes {
		if a.codes[i] != "" {
			return nil, &Error{Code: a.codes[i], Message: fmt.Sprintf("%s (target %q)", a.rest[i], clip(targets[i])), Index: i}
		}
	}
	return a.rest, nil
}

// Verify asks the daemon whether url carries a valid signature (what nginx
// would decide, without fetching). Only the IP option applies.
func (c *Client) Verify(ctx context.Context, url string, opts ...Option) (Verdict, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	if o.hasTTL || !o.expires.IsZero() {
		return Verdict{}, errors.New("securelink: Verify takes no TTL or Expires option")
	}
	b, err := appendIP(appendField([]byte("VERIFY "), url), o.ip)
	if err != nil {
		return Verdict{}, err
	}
	b = append(b, '\n')
	if err := checkLine(b, "the url", ""); err != nil {
		return Verdict{}, err
	}
	rest, err := c.one(ctx, b)
	if err != nil {
		return Verdict{}, err
	}
	status, detail, _ := strings.Cut(rest, " ")
	switch status {
	case "valid", "expired":
		var v = Verdict{Status: status}
		var haveKid, haveExp bool
		for _, kv := range strings.Fields(detail) {
			k, val, _ := strings.Cut(kv, "=")
			switch k {
			case "kid":
				n, err := strconv.ParseUint(val, 10, 32)
				v.Kid, haveKid = uint32(n), err == nil
			case "expires":
				n, err := strconv.ParseInt(val, 10, 64)
				v.Expires, haveExp = n, err == nil
			}
		}
		if haveKid && haveExp {
			return v, nil
		}
	case "invalid":
		return Verdict{Status: status, Reason: detail}, nil
	case "public":
		if detail == "" {
			return Verdict{Status: status}, nil
		}
	}
	return Verdict{}, newError("protocol", "unexpected answer to VERIFY: %q", clip(rest))
}

// Status returns the daemon's STATUS.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	rest, err := c.one(ctx, []byte("STATUS\n"))
	if err != nil {
		return nil, err
	}
	var s Status
	if err := json.Unmarshal([]byte(rest), &s); err != nil {
		return nil, newError("protocol", "STATUS answer is not JSON: %q", clip(rest))
	}
	s.Raw = json.RawMessage(rest)
	return &s, nil
}

// request lines

func unsafeByte(b byte) bool { return b <= 0x20 || b == 0x7f }

// appendField appends text with the bytes a target or URL cannot hold raw
// percent-encoded; everything else, raw UTF-8 included, goes as it is, as
// the daemon accepts it.
func appendField(b []byte, text string) []byte {
	for i := 0; i < len(text); i++ {
		if unsafeByte(text[i]) {
			b = append(b, text[:i]...)
			for ; i < len(text); i++ {
				if ch := text[i]; unsafeByte(ch) {
					b = append(b, '%', hex[ch>>4], hex[ch&15])
				} else {
					b = append(b, ch)
				}
			}
			return b
		}
	}
	return append(b, text...)
}

const hex = "0123456789ABCDEF"

func appendIP(b []byte, ip string) ([]byte, error) {
	if ip == "" {
		return b, nil
	}
	// Only what would break the framing is checked here; whether it is an
	// address is the daemon's call (it answers ERR bad-ip).
	for i := 0; i < len(ip); i++ {
		if unsafeByte(ip[i]) || ip[i] >= 0x80 {
			return nil, newError("bad-ip", "ip %q is not an IPv4 or IPv6 address", ip)
		}
	}
	return append(append(b, " ip="...), ip...), nil
}

// checkLine refuses a request longer than a line; what names its subject,
// formatted with arg (%q) only then: a batch checks every line.
func checkLine(line []byte, what, arg string) error {
	if len(line) > LineMax {
		if arg != "" {
			what = fmt.Sprintf("%s %q", what, clip(arg))
		}
		return newError("line-too-long", "%s makes a request of %d bytes, the daemon accepts at most %d",
			what, len(line), LineMax)
	}
	return nil
}

// signOptions formats the options of a SIGN request (" ttl=..." or
// " expires=...", " ip=...").
func signOptions(opts []Option) ([]byte, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	if o.hasTTL && !o.expires.IsZero() {
		return nil, errors.New("securelink: give TTL or Expires, not both")
	}
	var b []byte
	if o.hasTTL {
		b = strconv.AppendInt(append(b, " ttl="...), int64(o.ttl/time.Second), 10)
	}
	if !o.expires.IsZero() {
		b = strconv.AppendInt(append(b, " expires="...), o.expires.Unix(), 10)
	}
	return appendIP(b, o.ip)
}

func signLine(target string, opts []Option) ([]byte, error) {
	suffix, err := signOptions(opts)
	if err != nil {
		return nil, err
	}
	return appendSignLine(make([]byte, 0, len("SIGN ")+len(target)+len(suffix)+16), target, suffix)
}

// appendSignLine appends "SIGN <target><suffix>\n" to b, the target
// encoded as a field; an *Error when the line would be too long.
func appendSignLine(b []byte, target string, suffix []byte) ([]byte, error) {
	n := len(b)
	b = append(append(appendField(append(b, "SIGN "...), target), suffix...), '\n')
	if err := checkLine(b[n:], "target", target); err != nil {
		return nil, err
	}
	return b, nil
}

func grantLine(dir string, o GrantOptions) ([]byte, error) {
	form := o.Form
	if form == "" {
		form = GrantPath
	}
	if form != GrantPath && form != GrantCookie {
		return nil, fmt.Errorf("securelink: grant form must be %q or %q, not %q", GrantPath, GrantCookie, form)
	}
	b := make([]byte, 0, len(dir)+48)
	b = append(append(appendField(append(b, "SIGN "...), dir), " grant="...), form...)
	if o.TTL != 0 {
		b = strconv.AppendInt(append(b, " ttl="...), int64(o.TTL/time.Second), 10)
	}
	b, err := appendIP(b, o.IP)
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	if err := checkLine(b, "dir", dir); err != nil {
		return nil, err
	}
	return b, nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
