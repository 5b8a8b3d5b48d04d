// SPDX-License-Identifier: MIT

package securelink

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"time"
)

// answer is one answer line: rest is the text after "OK ", or the message
// after "ERR <code> ".
type answer struct {
	ok   bool
	code string
	rest string
}

// broken means the connection ended (EOF, EPIPE, ECONNRESET): worth one
// reconnect.
type broken struct{ reason string }

func (b *broken) Error() string { return b.reason }

func (c *Client) one(ctx context.Context, line []byte) (string, error) {
	answers, err := c.exchange(ctx, [][]byte{line})
	if err != nil {
		return "", err
	}
	if !answers[0].ok {
		return "", &Error{Code: answers[0].code, Message: answers[0].rest, Index: -1}
	}
	return answers[0].rest, nil
}

// exchange sends lines (each ending in LF) and returns one answer per line,
// in order. A broken connection is reopened once per call and the
// unanswered requests are sent again: PING, SIGN, VERIFY and STATUS are
// idempotent, so a request the daemon got before the break does no harm
// when repeated.
func (c *Client) exchange(ctx context.Context, lines [][]byte) ([]answer, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	answers := make([]answer, 0, len(lines))
	retried := false
	for {
		if err := c.connect(ctx); err != nil {
			return nil, err
		}
		err := c.pump(ctx, lines, &answers)
		if err == nil {
			return answers, nil
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

// pump writes lines[len(*answers):] from a goroutine while reading their
// answers, appending them to *answers.
func (c *Client) pump(ctx context.Context, lines [][]byte, answers *[]answer) error {
	conn, in := c.conn, c.in
	start := len(*answers)
	want := len(lines)

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
	if small(lines[start:]) {
		out := lines[start]
		if want-start > 1 {
			out = bytes.Join(lines[start:], nil)
		}
		conn.SetWriteDeadline(c.deadline(ctx))
		_, err := conn.Write(out)
		wrote <- err
	} else {
		go c.write(ctx, conn, lines, start, wrote)
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

	for len(*answers) < want {
		// Only a read from the socket can wait: a whole answer already
		// buffered needs no new deadline (a batch reads thousands).
		if buffered, _ := in.Peek(in.Buffered()); bytes.IndexByte(buffered, '\n') < 0 {
			conn.SetReadDeadline(c.deadline(ctx))
		}
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
						c.socket, c.timeout, len(*answers), want)
				}
				return newError("timeout", "securelinkd at %s did not answer within %s (%d of %d answers)",
					c.socket, c.timeout, len(*answers), want)
			}
			if e, ok := err.(*Error); ok {
				return e
			}
			if refused := refusedAtConnect(*answers, start); refused != nil {
				*answers = (*answers)[:start]
				return newError(refused.code, "securelinkd at %s refused the connection: %s", c.socket, refused.rest)
			}
			reason := "end of file"
			if !errors.Is(err, io.EOF) {
				reason = err.Error()
			} else if werr != nil {
				reason = werr.Error()
			}
			return &broken{reason}
		}
		a, err := parseAnswer(raw)
		if err != nil {
			return err
		}
		*answers = append(*answers, a)
	}
	if in.Buffered() > 0 {
		return newError("protocol", "securelinkd sent more answers than the %d requests", want)
	}
	return nil
}

// small is true for requests that are written at once without a writer
// goroutine.
func small(lines [][]byte) bool {
	n := 0
	for _, l := range lines {
		if n += len(l); n > smallExchange {
			return false
		}
	}
	return true
}

// write writes lines[next:] in chunks and reports how it ended on wrote.
func (c *Client) write(ctx context.Context, conn *net.UnixConn, lines [][]byte, next int, wrote chan<- error) {
	var out bytes.Buffer
	for next < len(lines) {
		out.Reset()
		for next < len(lines) && (out.Len() == 0 || out.Len()+len(lines[next]) <= chunk) {
			out.Write(lines[next])
			next++
		}
		conn.SetWriteDeadline(c.deadline(ctx))
		if _, err := conn.Write(out.Bytes()); err != nil {
			wrote <- err
			return
		}
	}
	wrote <- nil
}

// refusedAtConnect: at the end of a connection, when its only answer was an
// ERR while more requests were outstanding, that ERR was no answer but
// securelinkd refusing the connection (max_connections) before reading a
// request.
func refusedAtConnect(answers []answer, start int) *answer {
	if len(answers)-start == 1 && !answers[start].ok {
		return &answers[start]
	}
	return nil
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

func parseAnswer(raw []byte) (answer, error) {
	raw = bytes.TrimSuffix(raw, []byte("\r"))
	if bytes.HasPrefix(raw, []byte("OK ")) || bytes.Equal(raw, []byte("OK")) {
		if len(raw) == 2 {
			return answer{ok: true}, nil
		}
		return answer{ok: true, rest: string(raw[3:])}, nil
	}
	if bytes.HasPrefix(raw, []byte("ERR ")) {
		code, msg, _ := bytes.Cut(raw[4:], []byte(" "))
		if len(code) > 0 {
			return answer{code: string(code), rest: string(msg)}, nil
		}
	}
	return answer{}, newError("protocol", "unexpected answer from securelinkd: %q", clip(string(raw)))
}
