// Command h2spec-run runs the h2spec HTTP/2 conformance suite (github.com/summerwind/h2spec)
// against one h2c server and exits non-zero when any selected test fails.
//
// Usage: h2spec-run -host 127.0.0.1 -port 8080 [section ...]
// Sections are h2spec's ids, such as "http2/5" or "hpack"; none selects every test.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/summerwind/h2spec"
	"github.com/summerwind/h2spec/config"
)

func main() {
	host := flag.String("host", "127.0.0.1", "server host")
	port := flag.Int("port", 0, "server port")
	timeout := flag.Duration("timeout", 2*time.Second, "how long to wait for each answer")
	flag.Parse()
	if *port == 0 {
		fmt.Fprintln(os.Stderr, "h2spec-run: -port is required")
		os.Exit(2)
	}
	passed, err := h2spec.Run(&config.Config{
		Host:         *host,
		Port:         *port,
		Path:         "/",
		Timeout:      *timeout,
		MaxHeaderLen: 4000,
		Sections:     flag.Args(),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "h2spec-run:", err)
		os.Exit(2)
	}
	if !passed {
		os.Exit(1)
	}
}
