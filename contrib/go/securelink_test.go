// SPDX-License-Identifier: MIT

// These tests run against servers that tests/integration/test_go_client.py
// starts and names in the environment (see ../../tests/integration/
// clientsite.py): the real securelinkd and nginx, and three fakes (echo,
// hang, drop). Without them a test skips, or fails when
// SECURELINK_TEST_STRICT is set, as the driver sets it.
package securelink

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func need(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if os.Getenv("SECURELINK_TEST_STRICT") != "" {
			t.Fatalf("%s is not set: the driver must provide it", name)
		}
		t.Skipf("%s is not set: run through tests/integration/test_go_client.py", name)
	}
	return v
}

// control sends one command to the driver and returns its answer after "ok".
func control(t *testing.T, command string) string {
	t.Helper()
	conn, err := net.Dial("unix", need(t, "SECURELINK_TEST_CONTROL"))
	if err != nil {
		t.Fatalf("control: %v", err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "%s\n", command)
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ok") {
		t.Fatalf("control %q: %q %v", command, line, err)
	}
	return strings.TrimSpace(strings.TrimPrefix(line, "ok"))
}

// httpGet fetches url's path and query from nginx exactly as written (no
// re-quoting) and returns the status code and body.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	return httpGetCookie(t, url, "")
}

// httpGetCookie is httpGet with "Cookie: securelink_grant=<cookie>" when
// cookie is not empty.
func httpGetCookie(t *testing.T, url, cookie string) (int, string) {
	t.Helper()
	header := ""
	if cookie != "" {
		header = "Cookie: " + GrantCookieName + "=" + cookie + "\r\n"
	}
	addr := need(t, "SECURELINK_TEST_HTTP")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("connect to nginx: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n%s\r\n", url, header)
	r := bufio.NewReader(conn)
	status, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	var proto string
	var code int
	fmt.Sscanf(status, "%s %d", &proto, &code)
	for {
		h, err := r.ReadString('\n')
		if err != nil || h == "\r\n" {
			break
		}
	}
	var body strings.Builder
	bufio.NewReader(r).WriteTo(&body)
	return code, body.String()
}

func realClient(t *testing.T) *Client {
	c := New(Options{Socket: need(t, "SECURELINK_TEST_SOCKET"), Timeout: 20 * time.Second})
	t.Cleanup(func() { c.Close() })
	return c
}

func codeOf(t *testing.T, err error) string {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want a *securelink.Error, got %T %v", err, err)
	}
	return e.Code
}

var ctx = context.Background()

// construction

func TestSocketFromOptionsThenEnvironmentThenDefault(t *testing.T) {
	t.Setenv("SECURELINK_SOCKET", "/tmp/env.sock")
	if s := New(Options{}).Socket(); s != "/tmp/env.sock" {
		t.Errorf("from the environment: %q", s)
	}
	if s := New(Options{Socket: "/tmp/arg.sock"}).Socket(); s != "/tmp/arg.sock" {
		t.Errorf("from the options: %q", s)
	}
	os.Unsetenv("SECURELINK_SOCKET")
	if s := New(Options{}).Socket(); s != "/run/securelink/securelinkd.sock" {
		t.Errorf("default: %q", s)
	}
}

// the wire, seen through the echo fake (it answers "OK <request line>")

func TestRequestsAreSentAsDocumented(t *testing.T) {
	c := New(Options{Socket: need(t, "SECURELINK_TEST_ECHO_SOCKET")})
	defer c.Close()
	for _, tc := range []struct {
		got  func() (string, error)
		want string
	}{
		{func() (string, error) { return c.Sign(ctx, "/m/a") }, "SIGN /m/a"},
		{func() (string, error) { return c.Sign(ctx, "/m/a", TTL(60*time.Second)) }, "SIGN /m/a ttl=60"},
		{func() (string, error) { return c.Sign(ctx, "/m/b", Expires(time.Unix(1700000000, 0)), IP("10.0.0.1")) },
			"SIGN /m/b expires=1700000000 ip=10.0.0.1"},
		{func() (string, error) { return c.Sign(ctx, "/media/a b\tc\x7f/é+;%41.pdf") },
			"SIGN /media/a%20b%09c%7F/é+;%41.pdf"},
	} {
		got, err := tc.got()
		if err != nil || got != tc.want {
			t.Errorf("got %q, %v; want %q", got, err, tc.want)
		}
	}
	urls, err := c.SignMany(ctx, []string{"/m/1", "/m/2 x"}, TTL(5*time.Second))
	if err != nil || strings.Join(urls, "|") != "SIGN /m/1 ttl=5|SIGN /m/2%20x ttl=5" {
		t.Errorf("SignMany: %q %v", urls, err)
	}
}

func TestBadOptionsAreRefusedBeforeSending(t *testing.T) {
	c := New(Options{Socket: need(t, "SECURELINK_TEST_ECHO_SOCKET")})
	defer c.Close()
	if _, err := c.Sign(ctx, "/m/a", TTL(time.Second), Expires(time.Now())); err == nil {
		t.Error("TTL and Expires together were accepted")
	}
	for _, ip := range []string{"10.0.0.1 ttl=5", "1.2.3.4\n", "::1\x00"} {
		if _, err := c.Sign(ctx, "/m/a", IP(ip)); codeOf(t, err) != "bad-ip" {
			t.Errorf("ip %q: %v", ip, err)
		}
	}
	_, err := c.Sign(ctx, "/"+strings.Repeat("a", 8200))
	if codeOf(t, err) != "line-too-long" {
		t.Errorf("overlong: %v", err)
	}
	// The longest line that fits: "SIGN " + target + LF == 8192 bytes.
	long := "/" + strings.Repeat("a", 8192-6-1)
	if got, err := c.Sign(ctx, long); err != nil || got != "SIGN "+long {
		t.Errorf("longest line: %v", err)
	}
	_, err = c.SignMany(ctx, []string{"/ok", "/" + strings.Repeat("b", 8200)})
	var e *Error
	if !errors.As(err, &e) || e.Code != "line-too-long" || e.Index != 1 {
		t.Errorf("SignMany overlong: %v", err)
	}
	if n := control(t, "lines echo"); n != "1" {
		t.Errorf("the echo server got %s lines, want 1: the refused ones are never sent", n)
	}
}

// failures

func TestUnreachableSocketNamesThePathAndTheFix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.sock")
	err := New(Options{Socket: path}).Ping(ctx)
	var e *Error
	if !errors.As(err, &e) || e.Code != "unreachable" || !strings.Contains(e.Message, path) ||
		!strings.Contains(e.Message, "no such file or directory") || !strings.Contains(e.Message, "SECURELINK_SOCKET") {
		t.Fatalf("got %v", err)
	}
}

func TestNeverAnsweringSocketTimesOut(t *testing.T) {
	c := New(Options{Socket: need(t, "SECURELINK_TEST_HANG_SOCKET"), Timeout: 300 * time.Millisecond})
	defer c.Close()
	if _, err := c.Sign(ctx, "/m/a"); codeOf(t, err) != "timeout" {
		t.Errorf("Sign: %v", err)
	}
	if _, err := c.SignMany(ctx, []string{"/m/a", "/m/b"}); codeOf(t, err) != "timeout" {
		t.Errorf("SignMany: %v", err)
	}
}

func TestContextDeadlineAndCancelEndTheCall(t *testing.T) {
	c := New(Options{Socket: need(t, "SECURELINK_TEST_HANG_SOCKET"), Timeout: time.Hour})
	defer c.Close()
	dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	err := c.Ping(dctx)
	if codeOf(t, err) != "timeout" || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline: %v", err)
	}
	cctx, cancel2 := context.WithCancel(ctx)
	go func() { time.Sleep(100 * time.Millisecond); cancel2() }()
	err = c.Ping(cctx)
	if codeOf(t, err) != "canceled" || !errors.Is(err, context.Canceled) {
		t.Errorf("cancel: %v", err)
	}
}

func TestConnectionLostTwiceInOneCallIsReported(t *testing.T) {
	// The drop fake closes every connection at its first request.
	c := New(Options{Socket: need(t, "SECURELINK_TEST_DROP_SOCKET")})
	defer c.Close()
	err := c.Ping(ctx)
	if codeOf(t, err) != "disconnected" {
		t.Fatalf("got %v", err)
	}
	if n := control(t, "conns drop"); n != "2" {
		t.Errorf("connections: %s, want 2 (one reconnect, no more)", n)
	}
}

func TestBatchCutInTheMiddleResendsOnlyTheUnanswered(t *testing.T) {
	// The cut fake echoes, but closes its first connection at the third
	// request: the answers to the first two are kept, and only the rest is
	// sent again, in order.
	c := New(Options{Socket: need(t, "SECURELINK_TEST_CUT_SOCKET")})
	defer c.Close()
	targets := make([]string, 2000) // more than is written without the writer goroutine
	for i := range targets {
		targets[i] = fmt.Sprintf("/m/%d", i)
	}
	urls, err := c.SignMany(ctx, targets)
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range urls {
		if want := "SIGN " + targets[i]; u != want {
			t.Fatalf("answer %d: %q, want %q", i, u, want)
		}
	}
	if n := control(t, "conns cut"); n != "2" {
		t.Errorf("connections: %s, want 2", n)
	}
	if n := control(t, "lines cut"); n != "2001" {
		t.Errorf("lines received: %s, want 2001 (3, then the 1,998 unanswered)", n)
	}
}

// the real securelinkd and nginx

func TestRealSignedLinksAreServedByNginx(t *testing.T) {
	c := realClient(t)
	// '%', '#' and '?' are not path characters: the caller encodes them;
	// space and UTF-8 go as they are (the client encodes the space).
	for _, name := range []string{"a b.pdf", "ünï €.txt", "plus+semi;colon.txt", "100%.txt", "hash#tag.txt", "q?.txt"} {
		body := control(t, "add private/"+name)
		enc := strings.NewReplacer("%", "%25", "#", "%23", "?", "%3F").Replace(name)
		url, err := c.Sign(ctx, "/media/private/"+enc, TTL(60*time.Second))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !strings.Contains(url, "?token=") || !strings.Contains(url, "&kid=") {
			t.Errorf("%s: %q has no token and kid", name, url)
		}
		if code, got := httpGet(t, url); code != 200 || got != body {
			t.Errorf("%s: GET %s -> %d %q", name, url, code, got)
		}
		if v, err := c.Verify(ctx, url); err != nil || v.Status != "valid" || !v.Valid() || v.Kid == 0 {
			t.Errorf("%s: verify %+v %v", name, v, err)
		}
		if code, _ := httpGet(t, strings.SplitN(url, "?", 2)[0]); code != 403 {
			t.Errorf("%s: without the token %d, want 403", name, code)
		}
	}
}

func TestRealTamperedLinkIsRefusedAndPublicComesBackPlain(t *testing.T) {
	c := realClient(t)
	control(t, "add private/a.txt")
	control(t, "add private/b.txt")
	url, err := c.Sign(ctx, "/media/private/a.txt")
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(url, "/a.txt?", "/b.txt?", 1)
	if code, _ := httpGet(t, bad); code != 403 {
		t.Errorf("tampered: %d", code)
	}
	if v, err := c.Verify(ctx, bad); err != nil || v.Status != "invalid" || v.Valid() {
		t.Errorf("verify tampered: %+v %v", v, err)
	}
	body := control(t, "add public/a b.css")
	pub, err := c.Sign(ctx, "/media/public/a b.css")
	if err != nil || pub != "/media/public/a%20b.css" {
		t.Errorf("public: %q %v", pub, err)
	}
	if code, got := httpGet(t, pub); code != 200 || got != body {
		t.Errorf("public GET %d", code)
	}
	if v, err := c.Verify(ctx, pub); err != nil || v.Status != "public" {
		t.Errorf("verify public: %+v %v", v, err)
	}
}

func TestRealErrorsCarryTheDaemonsCodesAndKeepTheConnection(t *testing.T) {
	c := realClient(t)
	for _, tc := range []struct {
		target string
		opts   []Option
		code   string
	}{
		{"/media/private/x?y=1", nil, "bad-target"},
		{"/media/../etc/passwd", nil, "bad-target"},
		{"/media/private/x", []Option{TTL(0)}, "bad-ttl"},
		{"/media/private/x", []Option{Expires(time.Unix(1000, 0))}, "bad-ttl"},
		{"/media/private/x", []Option{TTL(1e9 * time.Second)}, "ttl-too-long"},
		{"/media/private/x", []Option{IP("not-an-ip")}, "bad-ip"},
	} {
		_, err := c.Sign(ctx, tc.target, tc.opts...)
		if got := codeOf(t, err); got != tc.code {
			t.Errorf("%s %d: %v, want %s", tc.target, len(tc.opts), err, tc.code)
		}
	}
	if err := c.Ping(ctx); err != nil {
		t.Error(err)
	}
	s, err := c.Status(ctx)
	errors, _ := s.Counters["errors"].(float64)
	if err != nil || s.ActiveKid == 0 || len(s.Keys) == 0 || errors < 6 {
		t.Errorf("status %+v %v", s, err)
	}
}

type vectors struct {
	Sign []struct {
		Target string `json:"target"`
		Path   string `json:"path"`
	} `json:"sign"`
	Refuse []struct {
		Target string `json:"target"`
		Code   string `json:"code"`
	} `json:"refuse"`
}

func TestRealSharedVectors(t *testing.T) {
	raw, err := os.ReadFile(need(t, "SECURELINK_TEST_VECTORS"))
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Sign) == 0 || len(v.Refuse) == 0 {
		t.Fatal("the vector table is empty")
	}
	c := realClient(t)
	targets := make([]string, len(v.Sign))
	for i, s := range v.Sign {
		targets[i] = s.Target
		url, err := c.Sign(ctx, s.Target)
		if err != nil || !(url == s.Path || strings.HasPrefix(url, s.Path+"?")) {
			t.Errorf("sign %q: %q %v, want %q", s.Target, url, err, s.Path)
		}
	}
	urls, err := c.SignMany(ctx, targets)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range v.Sign {
		if !(urls[i] == s.Path || strings.HasPrefix(urls[i], s.Path+"?")) {
			t.Errorf("SignMany %q: %q, want %q", s.Target, urls[i], s.Path)
		}
	}
	for _, r := range v.Refuse {
		url, err := c.Sign(ctx, r.Target)
		var e *Error
		if !errors.As(err, &e) || e.Code != r.Code {
			t.Errorf("sign %q: %q %v, want ERR %s", r.Target, url, err, r.Code)
		}
	}
}

func TestRealSignManyKeepsOrderOver10000Requests(t *testing.T) {
	c := realClient(t)
	const n = 10000
	bodies := map[int]string{}
	for i := 0; i < n; i += 997 {
		bodies[i] = control(t, fmt.Sprintf("add private/many/f%d.txt", i))
	}
	paths := make([]string, n)
	for i := range paths {
		paths[i] = fmt.Sprintf("/media/private/many/f%d.txt", i)
	}
	urls, err := c.SignMany(ctx, paths, TTL(600*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range urls {
		if !strings.HasPrefix(u, paths[i]+"?token=") {
			t.Fatalf("answer %d is %q, for %q", i, u, paths[i])
		}
	}
	for i, body := range bodies {
		if code, got := httpGet(t, urls[i]); code != 200 || got != body {
			t.Errorf("GET %s -> %d", urls[i], code)
		}
	}
}

func TestRealConcurrentGoroutinesShareOneClient(t *testing.T) {
	c := realClient(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				p := fmt.Sprintf("/media/private/g%d/%d", g, i)
				var u string
				var err error
				if i%10 == 0 {
					var us []string
					us, err = c.SignMany(ctx, []string{p, p + "b"})
					if err == nil {
						u = us[0]
					}
				} else {
					u, err = c.Sign(ctx, p)
				}
				if err != nil || !strings.HasPrefix(u, p+"?") {
					errs <- fmt.Errorf("goroutine %d: %q for %q: %v", g, u, p, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestRealDaemonRestartIsSurvivedOnceThenReported(t *testing.T) {
	c := realClient(t)
	body := control(t, "add private/r.txt")
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// The kept connection dies with the daemon; the next call reconnects.
	control(t, "restart")
	url, err := c.Sign(ctx, "/media/private/r.txt")
	if err != nil {
		t.Fatalf("after a restart: %v", err)
	}
	if code, got := httpGet(t, url); code != 200 || got != body {
		t.Errorf("GET %s -> %d", url, code)
	}
	control(t, "restart")
	urls, err := c.SignMany(ctx, []string{"/media/private/r.txt", "/media/private/s.txt"})
	if err != nil || len(urls) != 2 {
		t.Fatalf("after a restart, pipelined: %v", err)
	}
	// Gone for good: the reconnect fails, and the call says so at once.
	control(t, "stop")
	_, err = c.Sign(ctx, "/media/private/r.txt")
	if codeOf(t, err) != "unreachable" {
		t.Errorf("daemon stopped: %v", err)
	}
}

func TestRealOneConnectionRefusalCarriesTheDaemonsReason(t *testing.T) {
	// max_connections = 1, and this connection holds the one slot.
	held, err := net.Dial("unix", need(t, "SECURELINK_TEST_SOCKET"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	fmt.Fprintf(held, "PING\n")
	if line, err := bufio.NewReader(held).ReadString('\n'); err != nil || line != "OK pong\n" {
		t.Fatalf("held connection: %q %v", line, err)
	}
	// The daemon hangs up before or after the client wrote its request, a
	// race; both must give the daemon's reason, not "connection lost".
	for i := 0; i < 5; i++ {
		for _, call := range []func(c *Client) error{
			func(c *Client) error { return c.Ping(ctx) },
			func(c *Client) error { _, err := c.Sign(ctx, "/media/private/a"); return err },
			func(c *Client) error {
				_, err := c.SignMany(ctx, []string{"/media/private/a", "/media/private/b"})
				return err
			},
		} {
			c := realClient(t)
			err := call(c)
			c.Close()
			var e *Error
			if !errors.As(err, &e) || e.Code != "unavailable" || !strings.Contains(e.Message, "too many connections") || e.Index != -1 {
				t.Fatalf("got %v", err)
			}
		}
	}
	held.Close()
	// The daemon frees the slot when it reads the held connection's end,
	// which a new connection may overtake: it is refused until then.
	for i := 0; i < 1000; i++ {
		c := realClient(t)
		err = c.Ping(ctx)
		c.Close()
		var e *Error
		if err == nil || !errors.As(err, &e) || !strings.Contains(e.Message, "too many connections") {
			break
		}
	}
	if err != nil {
		t.Fatalf("after the slot is free: %v", err)
	}
}

// directory grants

func TestGrantRequestsAreSentAsDocumented(t *testing.T) {
	c := New(Options{Socket: need(t, "SECURELINK_TEST_ECHO_SOCKET")})
	defer c.Close()
	if got, err := c.Grant(ctx, "/m/p/d/", GrantOptions{}); err != nil || got != "SIGN /m/p/d/ grant=path" {
		t.Errorf("default form: %q %v", got, err)
	}
	got, err := c.Grant(ctx, "/m/p/d e/", GrantOptions{Form: GrantCookie, TTL: 60 * time.Second, IP: "10.0.0.1"})
	if err != nil || got != "SIGN /m/p/d%20e/ grant=cookie ttl=60 ip=10.0.0.1" {
		t.Errorf("cookie form: %q %v", got, err)
	}
	if _, err := c.Grant(ctx, "/m/p/d/", GrantOptions{Form: "file"}); err == nil {
		t.Error(`form "file" was accepted`)
	}
	if _, err := c.Grant(ctx, "/m/p/d/", GrantOptions{IP: "1.2.3.4 grant=cookie"}); codeOf(t, err) != "bad-ip" {
		t.Errorf("ip: %v", err)
	}
	if _, err := c.Grant(ctx, "/"+strings.Repeat("d", 8200)+"/", GrantOptions{}); codeOf(t, err) != "line-too-long" {
		t.Errorf("long dir: %v", err)
	}
	if n := control(t, "lines echo"); n != "2" {
		t.Errorf("%s requests reached the fake, want the 2 sendable ones", n)
	}
}

const stream = "private/videos/42/"

var streamFiles = []string{"master.m3u8", "f.ts", "v1/index.m3u8", "v1/seg0.ts"}
var outside = []string{"private/videos/420/f.ts", "private/videos/43/f.ts", "private/f.ts"}

func addStream(t *testing.T) map[string]string {
	bodies := map[string]string{}
	for _, f := range streamFiles {
		bodies[f] = control(t, "add "+stream+f)
	}
	for _, rel := range outside {
		control(t, "add "+rel)
	}
	return bodies
}

func TestRealGrantPathOpensFilesBelowAndNothingOutside(t *testing.T) {
	c := realClient(t)
	bodies := addStream(t)
	base, err := c.Grant(ctx, "/media/"+stream, GrantOptions{TTL: 600 * time.Second})
	if err != nil || !strings.HasSuffix(base, "/"+stream) {
		t.Fatalf("Grant: %q %v", base, err)
	}
	for _, f := range streamFiles {
		if code, body := httpGet(t, base+f); code != 200 || body != bodies[f] {
			t.Errorf("%s: %d %q", f, code, body)
		}
	}
	parent := strings.TrimSuffix(base, "42/")
	for _, u := range []string{parent + "420/f.ts", parent + "43/f.ts"} {
		if code, _ := httpGet(t, u); code != 403 {
			t.Errorf("%s: %d, want 403", u, code)
		}
	}
	if got, err := c.Grant(ctx, "/media/public/v/", GrantOptions{}); err != nil || got != "/media/public/v/" {
		t.Errorf("public: %q %v", got, err)
	}
}

func TestRealGrantCookieOpensPlainUrlsBelowAndNothingOutside(t *testing.T) {
	c := realClient(t)
	bodies := addStream(t)
	answer, err := c.Grant(ctx, "/media/"+stream, GrantOptions{Form: GrantCookie, TTL: 600 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(answer, "; ")
	if !strings.HasPrefix(parts[0], GrantCookieName+"=") {
		t.Fatalf("not a grant cookie: %q", answer)
	}
	attrs := strings.Join(parts[1:], "|")
	for _, want := range []string{"Path=/media/" + stream, "HttpOnly", "SameSite=Lax"} {
		if !strings.Contains("|"+attrs+"|", "|"+want+"|") {
			t.Errorf("no %s in %q", want, answer)
		}
	}
	value := strings.TrimPrefix(parts[0], GrantCookieName+"=")
	for _, f := range streamFiles {
		if code, body := httpGetCookie(t, "/media/"+stream+f, value); code != 200 || body != bodies[f] {
			t.Errorf("%s: %d %q", f, code, body)
		}
		if code, _ := httpGet(t, "/media/"+stream+f); code != 403 {
			t.Errorf("%s without the cookie: %d", f, code)
		}
	}
	for _, rel := range outside {
		if code, _ := httpGetCookie(t, "/media/"+rel, value); code != 403 {
			t.Errorf("%s: %d, want 403", rel, code)
		}
	}
}

func TestRealGrantWithoutTrailingSlashIsTheDaemonsBadTarget(t *testing.T) {
	c := realClient(t)
	for _, form := range []GrantForm{GrantPath, GrantCookie} {
		_, err := c.Grant(ctx, "/media/private/videos/42", GrantOptions{Form: form})
		if code := codeOf(t, err); code != "bad-target" {
			t.Errorf("%s: %v", form, err)
		}
	}
	if err := c.Ping(ctx); err != nil {
		t.Error(err)
	}
}
