package system

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
)

// bufPool holds read buffers for /proc and /sys files. Those files report a
// size of 0, so os.ReadFile starts small and grows with several read(2)
// calls and allocations; one reused 64 KiB buffer reads a typical file in a
// single call, which matters because every scrape reads a dozen of them.
var bufPool = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, 64*1024)) }}

// withFile reads path into a pooled buffer and calls parse with its
// contents, which are only valid during the call.
func withFile(path string, parse func(data []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(io.LimitReader(f, 16<<20)); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	return parse(buf.Bytes())
}
