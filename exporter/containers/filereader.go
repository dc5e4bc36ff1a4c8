package containers

import (
	"bytes"
	"fmt"
	"io/fs"
	"strconv"
	"syscall"
)

// fileReader reads small kernel pseudo-files (cgroup and procfs) with one
// open, reads until EOF and one close, into a reused buffer. os.ReadFile
// also stats each file and tries to register it with the runtime's poller:
// at a dozen files per container and a hundred containers per scrape those
// extra system calls cost more than the reads. A fileReader is not safe for
// concurrent use; the data it returns is valid until its next read.
type fileReader struct {
	buf []byte
}

func newFileReader() *fileReader { return &fileReader{buf: make([]byte, 8192)} }

func (r *fileReader) read(path string) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	for err == syscall.EINTR {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	n := 0
	for {
		if n == len(r.buf) {
			r.buf = append(r.buf, make([]byte, len(r.buf))...)
		}
		m, err := syscall.Read(fd, r.buf[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if m <= 0 {
			return r.buf[:n], nil
		}
		n += m
	}
}

// uint reads a file holding one unsigned integer.
func (r *fileReader) uint(path string) (uint64, error) {
	data, err := r.read(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(string(bytes.TrimSpace(data)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing %s: %w", path, err)
	}
	return v, nil
}

// int reads a file holding one signed integer (cpu.cfs_quota_us is -1 when
// unlimited).
func (r *fileReader) int(path string) (int64, error) {
	data, err := r.read(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(string(bytes.TrimSpace(data)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing %s: %w", path, err)
	}
	return v, nil
}

// keyValues parses a flat-keyed file ("key value" per line, as cpu.stat,
// memory.stat, memory.events and memory.oom_control) and stores the values
// of the keys asked for; keys absent from the file are left untouched.
func (r *fileReader) keyValues(path string, want map[string]*uint64) error {
	data, err := r.read(path)
	if err != nil {
		return err
	}
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		key, value, ok := bytes.Cut(line, []byte{' '})
		if !ok {
			continue
		}
		dst, ok := want[string(key)]
		if !ok {
			continue
		}
		v, err := strconv.ParseUint(string(bytes.TrimSpace(value)), 10, 64)
		if err != nil {
			return fmt.Errorf("parsing %s: key %s: %w", path, key, err)
		}
		*dst = v
	}
	return nil
}
