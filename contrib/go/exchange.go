// SPDX-License-Identifier: MIT

package securelink

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"time"
)

// answers is what one exchange got back, one entry per request line:
// rest[i] is the text after "OK ", or the message of an "ERR <code>
// <message>" whose code is codes[i]. codes stays nil while every answer is
// an OK (a batch's answers cost no more than its URLs).
type answers struct {
	rest  []string
	codes []string
}

func (a *answers) add(code, rest string) {
	if code != "" && a.codes == nil {
		a.codes = make([]string, len(a.rest), cap(a.rest))
	}
	a.rest = append(a.rest, rest)
	if a.codes != nil {
		a.codes = append(a.codes, code)
	}
}

// code is answer i's ERR code, "" for an OK.
func (a *answers) code(i int) string {
	if a.codes == nil {
		return ""
	}
	return a.codes[i]
}

func (a *answers) truncate(n int) {
	a.rest = a.rest[:n]
	if a.codes != nil {
		a.codes = a.codes[:n]
	}
}

// broken means the connection ended (EOF, EPIPE, ECONNRESET): worth one
// reconnect.
type broken struct{ reason string }

func (b *broken) Error() string { return b.reason }

func (c *Client) one(ctx context.Context, line []byte) (string, error) {
	a, err := c.exchange(ctx, line, 1)
	if err != nil {
		return "", err
	}
	if code := a.code(0); code != "" {
		return "", &Error{Code: code, Message: a.rest[0], Index: -1}
	}
	return a.rest[0], nil
}

// exchange sends req, n lines each ending in LF, and returns one answer per
// line, in order. A broken connection is reopened once per call and the
// unanswered requests are sent again: PING, SIGN, VERIFY and STATUS are
// idempotent, so a request the daemon got before the break does no harm
// when repeated.
func (c *Client) exchange(ctx context.Context, req []byte, n int) (*answers, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	a := &answers{rest: make([]string, 0, n)}
	retried := false
	for {
		if err := c.connect(ctx); err != nil {
			return nil, err
		}
		err := c.pump(ctx, req, n, a)
		if err == nil {
			return a, nil
		}
		// Whatever went wrong, answers may still be on their way: this
		// connection is out of step.
		c.closeLocked()
		var b *broken
		if !errors.As(err, &b) {
			return nil, err
		}
		if retried {
			return nil, newError("disconnected", "connection to %s lost again after reconnecting (%s); is securelinkd restarting?",
				c.socket, b.reason)
		}
		retried = true
	}
}

func (c *Client) connect(ctx context.Context) error {
	if c.conn != nil {
		return nil
	}
	d := net.Dialer{Timeout: c.timeout}
	conn, err := d.DialContext(ctx, "unix", c.socket)
	if err != nil {
		if ctxErr := contextError(ctx); ctxErr != nil {
			return ctxErr
		}
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return newError("unreachable", "cannot connect to %s: %s (%s)", c.socket, errno.Error(), connectHint(errno))
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return newError("unreachable", "cannot connect to %s: timed out after %s (is securelinkd overloaded or stopped?)",
				c.socket, c.timeout)
		}
		return newError("unreachable", "cannot connect to %s: %v (%s)", c.socket, err, connectHint(0))
	}
	c.conn = conn.(*net.UnixConn)
	c.in = bufio.NewReaderSize(c.conn, chunk)
	return nil
}

func connectHint(errno syscall.Errno) string {
	if errno == syscall.EACCES || errno == syscall.EPERM {
		return "the socket is mode 0660: run the application as a member of the socket's group (securelink)"
	}
	return "is securelinkd running (systemctl status securelinkd.socket)? Set SECURELINK_SOCKET or Options.Socket if it listens elsewhere"
}

func (c *Client) closeLocked() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.in = nil, nil
	}
}

func contextError(ctx context.Context) error {
	switch err := ctx.Err(); err {
	case nil:
		return nil
	case context.DeadlineExceeded:
		return &Error{Code: "timeout", Message: "the context's deadline passed before securelinkd answered", Index: -1, err: err}
	default:
		return &Error{Code: "canceled", Message: "the context was canceled before securelinkd answered", Index: -1, err: err}
	}
}

// deadline is now + the client's timeout, or the context's deadline when
// that comes first.
func (c *Client) deadline(ctx context.Context) time.Time {
	t := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(t) {
		return d
	}
	return t
}

// pump writes the lines of req not answered yet (those past
// len(a.rest)) from a goroutine while reading their answers into a.
func (c *Client) pump(ctx context.Context, req []byte, want int, a *answers) error {
	conn, in := c.conn, c.in
	start := len(a.rest)
	// After a reconnect, from the first unanswered line on.
	for i := 0; i < start; i++ {
		req = req[bytes.IndexByte(req, '\n')+1:]
	}

	// A canceled context interrupts the blocked read and write at once.
	stop := make(chan struct{})
	defer close(stop)
	if ctx.Done() != nil {
		go func() {
			select {
			case <-ctx.Done():
				conn.SetDeadline(time.Unix(1, 0))
			case <-stop:
			}
		}()
	}

	// The writer. When the daemon stops reading (it hung up), nothing more
	// is written, but what it said before hanging up is still read. A small
	// exchange (one SIGN, the common case) is written here before reading:
	// it fits the socket's buffer, and a goroutine per call would cost more
	// than the round trip.
	wrote := make(chan error, 1)
	if len(req) <= smallExchange {
		conn.SetWriteDeadline(c.deadline(ctx))
		_, err := conn.Write(req)
		wrote <- err
	} else {
		go c.write(ctx, conn, req, wrote)
	}
	var werr error
	writerDone := false
	defer func() {
		if !writerDone {
			// The caller closes conn on error, which ends the writer; on
			// success every line was read by the daemon, so it has ended.
			conn.SetWriteDeadline(time.Unix(1, 0))
			<-wrote
		}
	}()

	for len(a.rest) < want {
		// Every whole answer already buffered, taken at once: one string
		// for the block, each answer a slice of it (a batch reads
		// thousands; a URL kept alone keeps its block, at most a chunk).
		if block := buffered(in); block != nil {
			if err := parseBlock(block, want, a); err != nil {
				return err
			}
			in.Discard(len(block))
			continue
		}
		// Only a read from the socket can wait.
		conn.SetReadDeadline(c.deadline(ctx))
		raw, err := readLine(in)
		if err != nil {
			if !writerDone {
				select {
				case werr = <-wrote:
					writerDone = true
				default:
				}
			}
			if ctxErr := contextError(ctx); ctxErr != nil {
				return ctxErr
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// The read deadline may have been the context's, reached
				// before the context's own timer marked it done.
				if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
					return &Error{Code: "timeout", Message: "the context's deadline passed before securelinkd answered",
						Index: -1, err: context.DeadlineExceeded}
				}
				if werr != nil && errors.As(werr, &ne) && ne.Timeout() {
					return newError("timeout", "securelinkd at %s did not read requests within %s (%d of %d answers)",
						c.socket, c.timeout, len(a.rest), want)
				}
				return newError("timeout", "securelinkd at %s did not answer within %s (%d of %d answers)",
					c.socket, c.timeout, len(a.rest), want)
			}
			if e, ok := err.(*Error); ok {
				return e
			}
			if len(a.rest)-start == 1 && a.code(start) != "" {
				// The only answer on this connection was an ERR while
				// more were outstanding: no answer but securelinkd
				// refusing the connection (max_connections) before
				// reading a request.
				code, msg := a.code(start), a.rest[start]
				a.truncate(start)
				return newError(code, "securelinkd at %s refused the connection: %s", c.socket, msg)
			}
			reason := "end of file"
			if !errors.Is(err, io.EOF) {
				reason = err.Error()
			} else if werr != nil {
				reason = werr.Error()
			}
			return &broken{reason}
		}
		code, rest, err := parseAnswer(string(raw))
		if err != nil {
			return err
		}
		a.add(code, rest)
	}
	if in.Buffered() > 0 {
		return newError("protocol", "securelinkd sent more answers than the %d requests", want)
	}
	return nil
}

// buffered returns the whole answer lines in's buffer holds, nil if none.
func buffered(in *bufio.Reader) []byte {
	b, _ := in.Peek(in.Buffered())
	if end := bytes.LastIndexByte(b, '\n'); end >= 0 {
		return b[:end+1]
	}
	return nil
}

// parseBlock adds the answers of block (whole lines) to a.
func parseBlock(block []byte, want int, a *answers) error {
	text := string(block)
	for len(text) > 0 {
		if len(a.rest) == want {
			return newError("protocol", "securelinkd sent more answers than the %d requests", want)
		}
		nl := strings.IndexByte(text, '\n')
		code, rest, err := parseAnswer(text[:nl])
		if err != nil {
			return err
		}
		a.add(code, rest)
		text = text[nl+1:]
	}
	return nil
}

// write writes req in chunks and reports how it ended on wrote.
func (c *Client) write(ctx context.Context, conn *net.UnixConn, req []byte, wrote chan<- error) {
	for len(req) > 0 {
		n := len(req)
		if n > chunk {
			n = chunk
		}
		conn.SetWriteDeadline(c.deadline(ctx))
		if _, err := conn.Write(req[:n]); err != nil {
			wrote <- err
			return
		}
		req = req[n:]
	}
	wrote <- nil
}

// readLine returns one answer line without its LF.
func readLine(in *bufio.Reader) ([]byte, error) {
	line, err := in.ReadSlice('\n')
	if err == nil {
		return line[:len(line)-1], nil
	}
	if err != bufio.ErrBufferFull {
		return nil, err
	}
	long := append([]byte(nil), line...)
	for {
		line, err = in.ReadSlice('\n')
		long = append(long, line...)
		if len(long) > answerMax {
			return nil, newError("protocol", "securelinkd sent more than %d bytes without ending the answer line", answerMax)
		}
		if err == nil {
			return long[:len(long)-1], nil
		}
		if err != bufio.ErrBufferFull {
			return nil, err
		}
	}
}

// parseAnswer splits one answer line (without its LF): code is "" for an
// "OK <rest>", the ERR code of an "ERR <code> <rest>".
func parseAnswer(raw string) (code, rest string, err error) {
	if len(raw) > 3 && raw[:3] == "OK " && raw[len(raw)-1] != '\r' {
		return "", raw[3:], nil // the common answer
	}
	raw = strings.TrimSuffix(raw, "\r")
	if raw == "OK" {
		return "", "", nil
	}
	if strings.HasPrefix(raw, "OK ") {
		return "", raw[3:], nil
	}
	if strings.HasPrefix(raw, "ERR ") {
		code, msg, _ := strings.Cut(raw[4:], " ")
		if code != "" {
			return code, msg, nil
		}
	}
	return "", "", newError("protocol", "unexpected answer from securelinkd: %q", clip(raw))
}
