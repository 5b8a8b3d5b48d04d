// SPDX-License-Identifier: MIT

// The Go side of bench/run: the Go client's Sign one by one against a bare
// blocking round trip written in Go (net.Conn, one write and one line read
// per request, no framing checks), in alternating rounds on the same
// daemon, and SignMany of 1,024 targets per call (bench/report.py compares
// it with the C library's sl_client_sign_many).
//
//	go run . SOCKET SECONDS
//
// Prints one JSON object.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"securelink"
)

const nTargets = 1024

func targets() []string {
	t := make([]string, nTargets)
	for i := range t {
		t[i] = fmt.Sprintf("/media/private/docs/quarterly-report-%06d.pdf", i)
	}
	return t
}

// rate calls fn (which returns how many links it made) for d; links per second.
func rate(d time.Duration, fn func() int) float64 {
	fn() // warm-up
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		n += fn()
	}
	return float64(n) / time.Since(start).Seconds()
}

func die(what string, err error) {
	fmt.Fprintf(os.Stderr, "bench/go: %s: %v\n", what, err)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: bench/go SOCKET SECONDS")
		os.Exit(2)
	}
	socket := os.Args[1]
	seconds, err := strconv.ParseFloat(os.Args[2], 64)
	if err != nil {
		die("SECONDS", err)
	}
	ctx := context.Background()
	ts := targets()

	conn, err := net.Dial("unix", socket)
	if err != nil {
		die("connect", err)
	}
	in := bufio.NewReader(conn)
	i := 0
	bare := func() int {
		if _, err := conn.Write([]byte("SIGN " + ts[i%nTargets] + "\n")); err != nil {
			die("bare write", err)
		}
		line, err := in.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "OK ") {
			die("bare read", fmt.Errorf("%q %v", line, err))
		}
		i++
		return 1
	}
	c := securelink.New(securelink.Options{Socket: socket})
	one := func() int {
		if _, err := c.Sign(ctx, ts[i%nTargets]); err != nil {
			die("Sign", err)
		}
		i++
		return 1
	}
	many := func() int {
		urls, err := c.SignMany(ctx, ts)
		if err != nil {
			die("SignMany", err)
		}
		return len(urls)
	}

	// Alternating rounds, the client first in every other one: the load of
	// a shared machine drifts; a ratio of two runs back to back does not.
	round := time.Duration(seconds / 4 * float64(time.Second))
	var rounds [][2]float64
	for r := 0; r < 8; r++ {
		var b, o float64
		if r%2 == 0 {
			b, o = rate(round, bare), rate(round, one)
		} else {
			o, b = rate(round, one), rate(round, bare)
		}
		rounds = append(rounds, [2]float64{b, o})
	}
	out := map[string]any{
		"go":                 runtime.Version(),
		"rounds_bare_client": rounds,
		"sign_many_1024":     rate(time.Duration(seconds*float64(time.Second)), many),
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
