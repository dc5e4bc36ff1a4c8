package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
)

// TestIntegrationStalledBody: a client that sends its headers and then
// stalls in the body is answered (400, in the JSON error shape) once
// --web.read-timeout has passed, instead of holding its connection and a
// handler for ever.
func TestIntegrationStalledBody(t *testing.T) {
	bin := testenv.Binary(t, "berth-placement")
	dir := t.TempDir()
	addr := testenv.FreePort(t)
	testenv.Start(t, bin, "--web.listen-address="+addr, "--web.read-timeout=1s",
		"--storage.path="+filepath.Join(dir, "data"), "--scrape.exporter-address="+testenv.FreePort(t))
	testenv.WaitHTTP(t, "http://"+addr+"/-/healthy", 30*time.Second)

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The test's own bound, far above the read timeout: without one the
	// server would never answer and the read below would block.
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	body := `{"requirements":{"cpu":"1"}}`
	fmt.Fprintf(conn, "POST /api/v1/placements HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		addr, len(body)+100, body[:10])
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var shape struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if resp.StatusCode != http.StatusBadRequest || json.Unmarshal(b, &shape) != nil || shape.Error.Code != "invalid_argument" {
		t.Errorf("stalled body: %d %s, want 400 invalid_argument", resp.StatusCode, b)
	}
}
